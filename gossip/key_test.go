package gossip

import (
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
		{"16 bytes", "MDEyMzQ1Njc4OWFiY2RlZg==", 16, ""},
		{"empty", "\n", 0, "empty"},
		{"not base64", "not base64!!", 0, "base64"},
		{"wrong size", "MDEyMzQ1Njc4OQ==", 0, "10 bytes"},
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
