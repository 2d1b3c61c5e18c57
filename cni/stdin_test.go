package cni

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// TestConfigScreening: what Main refuses before skel runs, and the size
// limit that ParseConfig applies as well.
func TestConfigScreening(t *testing.T) {
	big := `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni","cni.dev/x":"` + strings.Repeat("a", MaxConfigSize) + `"}`
	tests := []struct {
		name  string
		stdin string
		code  uint   // 0: passed on
		want  string // in the message
	}{
		{"valid", `{"cniVersion":"1.1.0","name":"weft","type":"weft-cni"}`, 0, ""},
		{"no cniVersion", `{"name":"weft","type":"weft-cni"}`, types.ErrInvalidNetworkConfig, `"cniVersion" is required`},
		{"empty cniVersion", `{"cniVersion":"","name":"weft"}`, types.ErrInvalidNetworkConfig, `"cniVersion" is required`},
		{"garbage: left to skel", `{"cniVersion":`, 0, ""},
		{"not an object: left to skel", `[]`, 0, ""},
		{"over the limit", big, types.ErrInvalidNetworkConfig, "1 MiB"},
		{"exactly the limit", `{"name":"` + strings.Repeat("a", MaxConfigSize-11) + `"}`, types.ErrInvalidNetworkConfig, "cniVersion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := readConfig(strings.NewReader(tt.stdin))
			if err == nil {
				if !bytes.Equal(b, []byte(tt.stdin)) {
					t.Fatalf("read %d bytes of %d", len(b), len(tt.stdin))
				}
				err = screenConfig(b)
			}
			var e *types.Error
			switch {
			case tt.code == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.code == 0:
			case !errors.As(err, &e) || e.Code != tt.code || !strings.Contains(e.Msg, tt.want):
				t.Fatalf("error %v, want code %d mentioning %q", err, tt.code, tt.want)
			}
		})
	}
	if _, err := ParseConfig([]byte(big)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("ParseConfig of %d bytes = %v, want the limit", len(big), err)
	}
	wantCode(t, func() error { _, err := ParseConfig([]byte(big)); return err }(), types.ErrInvalidNetworkConfig)
}
