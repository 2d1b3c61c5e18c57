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

// TestLeaseFileBackup: every write leaves the same record in the backup;
// a lease file that exists but is unusable falls back to the backup,
// saying so; a deleted one does not.
func TestLeaseFileBackup(t *testing.T) {
	good := leaseRecord{CIDR: pfx("10.244.3.0/24"), ClaimedAt: time.Unix(1700000000, 0).UTC()}
	goodJSON := `{"cidr":"10.244.3.0/24","claimedAt":"2023-11-14T22:13:20Z"}`
	const absent = "\x00absent"
	tests := []struct {
		name, file, backup string
		want               bool   // good is read
		notExist           bool   // the error is fs.ErrNotExist
		errHas             string // in the error
		warned             bool   // the fallback is logged
	}{
		{"good file", goodJSON, "{", true, false, "", false},
		{"garbage file, good backup", "\x00\x00garbage", goodJSON, true, false, "", true},
		{"truncated file, good backup", goodJSON[:20], goodJSON, true, false, "", true},
		{"file without claimedAt, good backup", `{"cidr":"10.244.3.0/24"}`, goodJSON, true, false, "", true},
		{"empty file, good backup", "", goodJSON, true, false, "", true},
		{"garbage file and backup", "{", "[", false, false, "backup is unusable too", false},
		{"garbage file, no backup", "{", absent, false, false, "backup is unusable too", false},
		{"deleted file, good backup", absent, goodJSON, false, true, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lease.json")
			for p, content := range map[string]string{path: tt.file, leaseBackup(path): tt.backup} {
				if content == absent {
					continue
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var logs strings.Builder
			log := slog.New(slog.NewTextHandler(&logs, nil))
			rec, err := loadLeaseFile(path, log)
			switch {
			case tt.want && (err != nil || rec != good):
				t.Fatalf("read %+v, %v; want %+v", rec, err, good)
			case err != nil && errors.Is(err, fs.ErrNotExist) != tt.notExist:
				t.Fatalf("err = %v: fs.ErrNotExist %v, want %v", err, !tt.notExist, tt.notExist)
			case tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas) || !strings.Contains(err.Error(), path)):
				t.Fatalf("err = %v, want one naming the file and saying %q", err, tt.errHas)
			}
			warned := strings.Contains(logs.String(), "using its backup") && strings.Contains(logs.String(), leaseBackup(path))
			if warned != tt.warned {
				t.Errorf("fallback logged: %v, want %v\n%s", warned, tt.warned, logs.String())
			}
		})
	}

	// A write leaves both copies whole and equal.
	path := filepath.Join(t.TempDir(), "lease.json")
	if err := writeLeaseFile(path, good); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(leaseBackup(path))
	if len(a) == 0 || string(a) != string(b) {
		t.Fatalf("lease file %q, backup %q: want the same record", a, b)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".lease-*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

// TestCorruptLeaseFileKeepsSeniority: a node whose lease file was
// garbled takes its block back with the claim time it had, from the
// backup, and rewrites the file.
func TestCorruptLeaseFileKeepsSeniority(t *testing.T) {
	c := newTestCluster(t)
	path := filepath.Join(t.TempDir(), "lease.json")
	old := leaseRecord{CIDR: pfx("10.244.7.0/24"), ClaimedAt: time.Unix(1_000_000, 0).UTC()}
	if err := writeLeaseFile(path, old); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := c.node("n0", nil, func(cfg *Config) { cfg.LeaseFile = path })
	if got := c.start(n); got != old.CIDR || !n.Self().ClaimedAt.Equal(old.ClaimedAt) {
		t.Fatalf("lease %s claimed at %v, want %s claimed at %v", got, n.Self().ClaimedAt, old.CIDR, old.ClaimedAt)
	}
	if !c.log.logged(slog.LevelWarn, "lease file is unusable; using its backup") {
		t.Error("the fallback to the backup was not logged")
	}
	if n.Stats().Reclaims != 0 {
		t.Errorf("Reclaims = %d, want 0", n.Stats().Reclaims)
	}
	if rec, err := readLeaseFile(path); err != nil || rec.CIDR != old.CIDR || !rec.ClaimedAt.Equal(old.ClaimedAt) {
		t.Errorf("lease file after start: %+v, %v; want %+v", rec, err, old)
	}
}
