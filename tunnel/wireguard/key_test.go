package wireguard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TestKeyFileBackup: a created key has a backup; a key from before
// backups gets one; a garbled key file is restored from the backup (the
// same key) and kept as .corrupt; without a usable backup the error says
// what is wrong and what to do, and the file is left alone.
func TestKeyFileBackup(t *testing.T) {
	good, _ := wgtypes.GeneratePrivateKey()
	const absent = "\x00absent"
	tests := []struct {
		name, file, backup string
		ok                 bool     // good is returned
		errHas             []string // else, in the error
	}{
		{"good key, no backup yet", good.String() + "\n", absent, true, nil},
		{"garbage key, good backup", "garbage\n", good.String() + "\n", true, nil},
		{"empty key file, good backup", "", good.String(), true, nil},
		{"truncated key, good backup", good.String()[:20], good.String(), true, nil},
		{"garbage key, no backup", "garbage\n", absent, false, []string{"does not hold a private key", "delete", "new public key through gossip", ".bak"}},
		{"garbage key and backup", "garbage\n", "junk\n", false, []string{"does not hold a private key", "unusable", "delete"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "wireguard.key")
			for p, content := range map[string]string{path: tt.file, keyBackup(path): tt.backup} {
				if content != absent {
					if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			k, err := LoadOrCreateKey(path)
			if !tt.ok {
				for _, w := range append(tt.errHas, path) {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v, want one saying %q", err, w)
					}
				}
				if b, _ := os.ReadFile(path); string(b) != tt.file {
					t.Errorf("the key file was changed to %q", b)
				}
				return
			}
			if err != nil || k != good {
				t.Fatalf("LoadOrCreateKey = %v, %v; want the good key", k, err)
			}
			for _, p := range []string{path, keyBackup(path)} {
				b, err := os.ReadFile(p)
				if err != nil || strings.TrimSpace(string(b)) != good.String() {
					t.Errorf("%s holds %q (%v), want the good key", p, b, err)
				}
				if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v (%v), want 0600", p, fi.Mode().Perm(), err)
				}
			}
			if tt.file != good.String()+"\n" {
				if b, err := os.ReadFile(path + ".corrupt"); err != nil || string(b) != tt.file {
					t.Errorf(".corrupt holds %q (%v), want what the key file held", b, err)
				}
			}
		})
	}

	// A new key gets its backup at once.
	path := filepath.Join(t.TempDir(), "new", "wireguard.key")
	k, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(keyBackup(path)); err != nil || strings.TrimSpace(string(b)) != k.String() {
		t.Errorf("backup of a new key: %q, %v", b, err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".wireguard-key-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}
