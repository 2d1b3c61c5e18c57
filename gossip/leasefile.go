package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// The lease file keeps the node's seniority across restarts: losing it
// means a new claim time, and the node loses every conflict it would have
// won. So it is written atomically (temp file, fsync, rename, directory
// fsync), and each write also leaves the same record in a backup beside
// it (<file>.bak), written first. A lease file that does not parse (a
// torn disk block, a stray edit) falls back to the backup, loudly; only
// when both are unusable does the node claim afresh. A lease file that
// does not exist is taken as deleted on purpose (the way to make a node
// claim afresh): its backup is not used then.

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

// leaseBackup is the path of the lease file's backup copy.
func leaseBackup(path string) string { return path + ".bak" }

// loadLeaseFile reads the lease file, falling back to its backup when the
// file exists but is unusable. log says which copy was used and why.
func loadLeaseFile(path string, log *slog.Logger) (leaseRecord, error) {
	rec, err := readLeaseFile(path)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return rec, err
	}
	bak := leaseBackup(path)
	rec, berr := readLeaseFile(bak)
	if berr != nil {
		// berr is not wrapped: a missing backup must not make the
		// unusable file look deleted.
		return leaseRecord{}, fmt.Errorf("%w; its backup is unusable too: %v", err, berr)
	}
	log.Warn("lease file is unusable; using its backup, which keeps this node's claim time",
		"file", path, "err", err, "backup", bak, "block", rec.CIDR, "claimedAt", rec.ClaimedAt)
	return rec, nil
}

// writeLeaseFile replaces the lease file and its backup atomically, the
// backup first, so that one of them always holds a whole record.
func writeLeaseFile(path string, rec leaseRecord) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("failed to encode lease: %w", err)
	}
	if err := replaceLeaseFile(leaseBackup(path), raw); err != nil {
		return err
	}
	return replaceLeaseFile(path, raw)
}

// replaceLeaseFile writes raw to path atomically and durably.
func replaceLeaseFile(path string, raw []byte) error {
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
	// The rename is durable once the directory is.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
