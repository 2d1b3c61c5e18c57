package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// leaseRecord is the persisted lease: the block and when it was first
// claimed, so a restarted node keeps its place in conflict resolution.
type leaseRecord struct {
	CIDR      netip.Prefix `json:"cidr"`
	ClaimedAt time.Time    `json:"claimedAt"`
}

// readLeaseFile returns the persisted lease. A missing file returns an
// error matching os.ErrNotExist.
func readLeaseFile(path string) (leaseRecord, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return leaseRecord{}, fmt.Errorf("failed to read lease file %q: %w", path, err)
	}
	var rec leaseRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return leaseRecord{}, fmt.Errorf("lease file %q is not valid JSON: %w", path, err)
	}
	if !rec.CIDR.IsValid() || rec.CIDR != rec.CIDR.Masked() {
		return leaseRecord{}, fmt.Errorf("lease file %q: cidr %q is not a network prefix", path, rec.CIDR)
	}
	if rec.ClaimedAt.IsZero() {
		return leaseRecord{}, errors.New("lease file " + path + ": claimedAt is missing")
	}
	return rec, nil
}

// writeLeaseFile replaces the lease file atomically.
func writeLeaseFile(path string, rec leaseRecord) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("failed to encode lease: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create lease directory %q: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".lease-*")
	if err != nil {
		return fmt.Errorf("failed to create lease file in %q: %w", dir, err)
	}
	_, werr := tmp.Write(append(raw, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("failed to write lease file %q: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("failed to set mode of lease file %q: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("failed to replace lease file %q: %w", path, err)
	}
	return nil
}
