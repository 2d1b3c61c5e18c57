package gossip

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLeaseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "lease.json")
	if _, err := readLeaseFile(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	want := leaseRecord{CIDR: pfx("10.244.3.0/24"), ClaimedAt: time.Unix(1700000000, 42).UTC()}
	if err := writeLeaseFile(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := readLeaseFile(path)
	if err != nil || got.CIDR != want.CIDR || !got.ClaimedAt.Equal(want.ClaimedAt) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	for name, content := range map[string]string{
		"garbage":    "{",
		"bad cidr":   `{"cidr":"10.244.3.1/24","claimedAt":"2024-01-01T00:00:00Z"}`,
		"no cidr":    `{"claimedAt":"2024-01-01T00:00:00Z"}`,
		"no claimed": `{"cidr":"10.244.3.0/24"}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readLeaseFile(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v, want one naming the file", name, err)
		}
	}
}

// TestBadLeaseFileIgnored: an unreadable lease file does not stop the
// node; it claims a block and overwrites the file.
func TestBadLeaseFileIgnored(t *testing.T) {
	c := newTestCluster(t)
	path := filepath.Join(t.TempDir(), "lease.json")
	if err := os.WriteFile(path, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := c.node("n0", nil, func(cfg *Config) { cfg.LeaseFile = path })
	got := c.start(n)
	if rec, err := readLeaseFile(path); err != nil || rec.CIDR != got {
		t.Fatalf("lease file after start: %+v, %v; want %s", rec, err, got)
	}
	if !c.log.logged(slog.LevelWarn, "ignoring lease file") {
		t.Error("bad lease file not logged")
	}
}
