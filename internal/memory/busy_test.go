package memory

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// A spell starts at busyEnter bytes a second over busyEnterTicks
// intervals in a row and ends after busyLeaveAfter below busyLeave; in
// between, the agent stays as it was.
func TestBusyWatch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	quietTicks := int(busyLeaveAfter / busyInterval)
	type step struct {
		rate          float64 // bytes a second over the interval before the reading
		busy, changed bool
	}
	above, between, below := 1.2*busyEnter, (busyEnter+busyLeave)/2, 0.5*busyLeave
	steps := []step{
		{0, false, false},     // at rest
		{above, false, false}, // a burst: intervals above busyEnter
		{above, false, false},
		{above, false, false},
		{between, false, false}, // and back below it
		{above, false, false},
		{above, false, false},
		{above, false, false},
		{above, true, true},    // four in a row: a spell starts
		{between, true, false}, // above busyLeave: still busy
		{above, true, false},
	}
	// Below busyLeave, but not for long enough: still busy, and a reading
	// above it starts the quiet time over.
	for range quietTicks - 1 {
		steps = append(steps, step{below, true, false})
	}
	steps = append(steps, step{between, true, false})
	for range quietTicks - 1 {
		steps = append(steps, step{0, true, false})
	}
	steps = append(steps,
		step{below, false, true}, // busyLeaveAfter below busyLeave: ends
		step{between, false, false},
		step{above, false, false},
		step{above, false, false},
		step{above, false, false},
		step{above, true, true}, // and the next spell starts as quickly
	)
	var w busyWatch
	var n uint64 = 1 << 40
	if busy, changed := w.observe(t0, n); busy || changed {
		t.Fatalf("first reading: busy %v, changed %v; want neither", busy, changed)
	}
	for i, s := range steps {
		n += uint64(s.rate * busyInterval.Seconds())
		busy, changed := w.observe(t0.Add(time.Duration(i+1)*busyInterval), n)
		if busy != s.busy || changed != s.changed {
			t.Errorf("step %d (%.0f bytes/s): busy %v, changed %v; want %v, %v", i, s.rate, busy, changed, s.busy, s.changed)
		}
	}
	// A clock that did not move, or a counter that went backwards (the
	// interface was recreated), is a new baseline, not a reading.
	was := w.busy
	if busy, changed := w.observe(t0.Add(time.Duration(len(steps))*busyInterval), n+1<<40); busy != was || changed {
		t.Errorf("same instant: busy %v, changed %v", busy, changed)
	}
	if busy, changed := w.observe(t0.Add(time.Hour), 0); busy != was || changed {
		t.Errorf("counter going backwards: busy %v, changed %v", busy, changed)
	}
	// One long quiet interval ends a spell by itself.
	if busy, changed := w.observe(t0.Add(time.Hour+busyLeaveAfter), 0); busy || !changed {
		t.Errorf("after %v at rest: busy %v, changed %v; want the spell over", busyLeaveAfter, busy, changed)
	}
}

// The tunnel's bytes are read from its /proc/net/dev line; a missing
// interface or a malformed line is an error naming the interface.
func TestNetDevCounter(t *testing.T) {
	const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
 weft0: 123456789  90000    0    0    0     0          0         0 987654321   80000    0    0    0     0       0          0
  eth0: 5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0
`
	path := filepath.Join(t.TempDir(), "dev")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := newNetDevCounter(path, "weft0").read()
	if err != nil || got != 123456789+987654321 {
		t.Errorf("weft0: %d, %v; want %d", got, err, 123456789+987654321)
	}
	if got, err := newNetDevCounter(path, "eth0").read(); err != nil || got != 12 {
		t.Errorf("eth0: %d, %v; want 12", got, err)
	}
	if _, err := newNetDevCounter(path, "weft1").read(); err == nil || !strings.Contains(err.Error(), "weft1") {
		t.Errorf("missing interface: %v", err)
	}
	if _, err := netDevBytes([]byte("weft0: 1 2 3\n"), "weft0"); err == nil || !strings.Contains(err.Error(), "weft0") {
		t.Errorf("short line: %v", err)
	}
	// The process's own namespace has a loopback interface.
	if _, err := newNetDevCounter("/proc/self/net/dev", "lo").read(); err != nil {
		t.Errorf("/proc/self/net/dev: %v", err)
	}
}

// A busy spell lifts the auto limit, a collection during it leaves it
// lifted, and the end of the spell puts a limit back.
func TestMemoryGovernorBusy(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	g := &governor{ceiling: math.MaxInt64}
	g.afterGC()
	if l := debug.SetMemoryLimit(-1); l == math.MaxInt64 {
		t.Fatal("auto set no limit")
	}
	g.setBusy(true)
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("busy: limit %d MiB, want none", l>>20)
	}
	g.afterGC()
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		t.Errorf("a collection while busy set a limit of %d MiB", l>>20)
	}
	g.setBusy(false)
	if l := debug.SetMemoryLimit(-1); l == math.MaxInt64 || l > 1<<30 {
		t.Errorf("after the spell: limit %d MiB, want the auto limit back", l>>20)
	}
}

// With a GOMEMLIMIT from the environment, a busy spell lifts the limit to
// it, not above.
func TestGovernorBusyCeiling(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	const ceiling = 1 << 30
	g := &governor{ceiling: ceiling}
	g.setBusy(true)
	if l := debug.SetMemoryLimit(-1); l != ceiling {
		t.Errorf("busy under GOMEMLIMIT: limit %d MiB, want %d MiB", l>>20, ceiling>>20)
	}
	g.setBusy(false)
	if l := debug.SetMemoryLimit(-1); l > ceiling {
		t.Errorf("after the spell: limit %d MiB above the ceiling", l>>20)
	}
}
