package gossip

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// keySize is the size of a gossip key file's key (AES-256): what
// GenerateKeyFile writes and LoadKey requires. In-process configurations
// (Config.Key) may also use memberlist's 16 and 24.
const keySize = 32

// LoadKey reads a memberlist encryption key from path. The file holds the
// standard base64 encoding of 32 bytes; surrounding whitespace is ignored.
// A file that other users may read or write (any of mode 0007) is refused,
// as ssh refuses such a private key: the key is the whole of the cluster's
// gossip security.
func LoadKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read gossip key file %q: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat gossip key file %q: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return nil, fmt.Errorf("gossip key file %q has mode %#o: other users may read or change it; chmod 600 (or 400) it, then restart", path, perm)
	}
	raw, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("failed to read gossip key file %q: %w", path, err)
	}
	text := strings.TrimSpace(string(raw))
	if text == "" {
		return nil, fmt.Errorf("gossip key file %q is empty", path)
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("gossip key file %q does not hold base64: %w", path, err)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("gossip key file %q holds a %d-byte key, want %d bytes (base64 of %d random bytes, as `weft keygen --gossip FILE` writes)",
			path, len(key), keySize, keySize)
	}
	return key, nil
}

// GenerateKeyFile writes a new random 32-byte key, base64 encoded, to path
// with mode 0600. It refuses to overwrite an existing file: replacing the key
// of a running cluster would cut this node off from it.
func GenerateKeyFile(path string) error {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("failed to generate gossip key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("failed to create gossip key file %q: %w", path, err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("failed to write gossip key file %q: %w", path, err)
	}
	return nil
}

func validateKey(key []byte) error {
	switch len(key) {
	case 16, 24, 32:
		return nil
	}
	return fmt.Errorf("key is %d bytes, want 16, 24 or 32", len(key))
}
