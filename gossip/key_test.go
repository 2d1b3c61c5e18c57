package gossip

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateAndLoadKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gossip.key")
	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	key, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 {
		t.Errorf("key is %d bytes", len(key))
	}
	if err := GenerateKeyFile(path); err == nil {
		t.Errorf("GenerateKeyFile overwrote an existing key")
	}
	again, _ := LoadKey(path)
	if string(again) != string(key) {
		t.Errorf("key changed")
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		wantLen int
		wantErr string
	}{
		{"32 bytes with whitespace", "  MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n\n", 32, ""},
		{"16 bytes", "MDEyMzQ1Njc4OWFiY2RlZg==", 0, "16-byte key, want 32"},
		{"24 bytes", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3", 0, "24-byte key, want 32"},
		{"empty", "\n", 0, "empty"},
		{"not base64", "not base64!!", 0, "base64"},
		{"wrong size", "MDEyMzQ1Njc4OQ==", 0, "10-byte key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			key, err := LoadKey(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want one containing %q and the path", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(key) != tt.wantLen {
				t.Fatalf("LoadKey = %d bytes, %v", len(key), err)
			}
		})
	}
	missing := filepath.Join(dir, "missing")
	if _, err := LoadKey(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
}

// TestLoadKeyMode: a key file other users may read or write is refused,
// naming the file and its mode; the owner's and group's bits are the
// operator's choice.
func TestLoadKeyMode(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o640, true}, {0o440, true},
		{0o644, false}, {0o604, false}, {0o602, false}, {0o666, false}, {0o601, false},
	} {
		path := filepath.Join(dir, tt.mode.String())
		if err := os.WriteFile(path, []byte("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKey(path)
		switch {
		case tt.ok && err != nil:
			t.Errorf("mode %#o: %v", tt.mode, err)
		case !tt.ok && (err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprintf("mode %#o", tt.mode))):
			t.Errorf("mode %#o: err = %v, want a refusal naming the file and its mode", tt.mode, err)
		}
	}
}
