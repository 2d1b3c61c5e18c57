package wireguard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// A key file is kept with a backup beside it (<file>.bak, 0600), written
// when the key is created and, for a key from before backups, when it is
// first loaded. A key file that exists but does not hold a key is
// restored from the backup (the same key, so peers notice nothing), and
// what it held is kept as <file>.corrupt for inspection. Without a usable
// backup it is an error that says what to do; the file is never
// overwritten with a new key, as that would change the node's identity
// without anyone asking.

// keyBackup is the path of a key file's backup copy.
func keyBackup(path string) string { return path + ".bak" }

// LoadOrCreateKey reads the private key at path, or generates one and
// stores it there (mode 0600, directory 0700) when the file does not exist.
// A file that exists but does not hold a key is restored from its backup,
// or else is an error naming the path and what to do.
func LoadOrCreateKey(path string) (wgtypes.Key, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, perr := wgtypes.ParseKey(strings.TrimSpace(string(b)))
		if perr != nil {
			return restoreKey(path, b, perr)
		}
		if _, serr := os.Stat(keyBackup(path)); errors.Is(serr, os.ErrNotExist) {
			_ = writeKeyFile(keyBackup(path), k) // best effort: the key itself is fine
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
	tmp, err := tempKeyFile(dir, k)
	if err != nil {
		return wgtypes.Key{}, err
	}
	defer os.Remove(tmp) // no-op after the link
	// Link, not rename: if another process created path meanwhile, keep
	// its key rather than silently replacing it.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return LoadOrCreateKey(path)
		}
		return wgtypes.Key{}, fmt.Errorf("failed to store key file %s: %w", path, err)
	}
	if err := writeKeyFile(keyBackup(path), k); err != nil {
		return wgtypes.Key{}, err
	}
	return k, nil
}

// restoreKey handles a key file at path that holds bad (perr: why it is
// not a key): it puts the backup's key back in its place, or says what to
// do.
func restoreKey(path string, bad []byte, perr error) (wgtypes.Key, error) {
	bak := keyBackup(path)
	b, err := os.ReadFile(bak)
	if err == nil {
		k, kerr := wgtypes.ParseKey(strings.TrimSpace(string(b)))
		if kerr == nil {
			_ = os.WriteFile(path+".corrupt", bad, 0o600) // evidence only
			if werr := writeKeyFile(path, k); werr != nil {
				return wgtypes.Key{}, fmt.Errorf("WireGuard key file %s is corrupt (%v) and restoring it from %s failed: %w", path, perr, bak, werr)
			}
			return k, nil
		}
		err = kerr
	}
	return wgtypes.Key{}, fmt.Errorf("WireGuard key file %s does not hold a private key (%v), and its backup %s is unusable (%v): "+
		"delete %s to generate a new key; peers learn the new public key through gossip "+
		"(for a peering gateway's key, export the bundle to the peered clusters again)", path, perr, bak, err, path)
}

// writeKeyFile replaces path with k atomically (temp file, fsync,
// rename), mode 0600.
func writeKeyFile(path string, k wgtypes.Key) error {
	tmp, err := tempKeyFile(filepath.Dir(path), k)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("failed to store key file %s: %w", path, err)
	}
	return nil
}

// tempKeyFile writes k to a new 0600 file in dir, synced, and returns its
// name.
func tempKeyFile(dir string, k wgtypes.Key) (string, error) {
	tmp, err := os.CreateTemp(dir, ".wireguard-key-*")
	if err != nil {
		return "", fmt.Errorf("failed to create key file in %s: %w", dir, err)
	}
	name := tmp.Name()
	fail := func(what string, err error) (string, error) {
		tmp.Close()
		os.Remove(name)
		return "", fmt.Errorf("failed to %s key file %s: %w", what, name, err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fail("chmod", err)
	}
	if _, err := tmp.WriteString(k.String() + "\n"); err != nil {
		return fail("write", err)
	}
	if err := tmp.Sync(); err != nil {
		return fail("sync", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(name)
		return "", fmt.Errorf("failed to close key file %s: %w", name, err)
	}
	return name, nil
}
