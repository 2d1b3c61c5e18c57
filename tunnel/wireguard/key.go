package wireguard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// LoadOrCreateKey reads the private key at path, or generates one and
// stores it there (mode 0600, directory 0700) when the file does not exist.
// A file that exists but does not hold a key is an error naming the path;
// it is never overwritten.
func LoadOrCreateKey(path string) (wgtypes.Key, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, perr := wgtypes.ParseKey(strings.TrimSpace(string(b)))
		if perr != nil {
			return wgtypes.Key{}, fmt.Errorf("invalid WireGuard private key in %s (delete the file to generate a new key): %w", path, perr)
		}
		return k, nil
	case !errors.Is(err, os.ErrNotExist):
		return wgtypes.Key{}, fmt.Errorf("failed to read WireGuard key file %s: %w", path, err)
	}

	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("failed to generate WireGuard private key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return wgtypes.Key{}, fmt.Errorf("failed to create key directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".wireguard-key-*")
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("failed to create key file in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return wgtypes.Key{}, fmt.Errorf("failed to chmod key file %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.WriteString(k.String() + "\n"); err != nil {
		tmp.Close()
		return wgtypes.Key{}, fmt.Errorf("failed to write key file %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return wgtypes.Key{}, fmt.Errorf("failed to sync key file %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return wgtypes.Key{}, fmt.Errorf("failed to close key file %s: %w", tmp.Name(), err)
	}
	// Link, not rename: if another process created path meanwhile, keep
	// its key rather than silently replacing it.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateKey(path)
		}
		return wgtypes.Key{}, fmt.Errorf("failed to store key file %s: %w", path, err)
	}
	return k, nil
}
