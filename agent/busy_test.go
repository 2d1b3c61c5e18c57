package agent

import (
	"math"
	"runtime/debug"
	"testing"
	"time"
)

// A spell starts at busyEnter of a CPU over busyEnterTicks intervals in a
// row and ends after busyLeaveAfter below busyLeave; in between, the agent
// stays as it was.
func TestBusyWatch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	quietTicks := int(busyLeaveAfter / busyInterval)
	type step struct {
		share         float64 // of a CPU over the interval before the reading
		busy, changed bool
	}
	steps := []step{
		{0.05, false, false}, // at rest
		{0.60, false, false}, // a burst: intervals above busyEnter
		{0.60, false, false},
		{0.60, false, false},
		{0.20, false, false}, // and back below it
		{0.60, false, false},
		{0.60, false, false},
		{0.60, false, false},
		{0.90, true, true},  // four in a row: a spell starts
		{0.15, true, false}, // above busyLeave: still busy
		{0.90, true, false},
	}
	// Below busyLeave, but not for long enough: still busy, and a reading
	// above it starts the quiet time over.
	for range quietTicks - 1 {
		steps = append(steps, step{0.05, true, false})
	}
	steps = append(steps, step{0.50, true, false})
	for range quietTicks - 1 {
		steps = append(steps, step{0.08, true, false})
	}
	steps = append(steps,
		step{0.08, false, true}, // busyLeaveAfter below busyLeave: ends
		step{0.12, false, false},
		step{0.55, false, false},
		step{0.55, false, false},
		step{0.55, false, false},
		step{0.55, true, true}, // and the next spell starts as quickly
	)
	var w busyWatch
	var cpu time.Duration
	if busy, changed := w.observe(t0, cpu); busy || changed {
		t.Fatalf("first reading: busy %v, changed %v; want neither", busy, changed)
	}
	for i, s := range steps {
		cpu += time.Duration(s.share * float64(busyInterval))
		busy, changed := w.observe(t0.Add(time.Duration(i+1)*busyInterval), cpu)
		if busy != s.busy || changed != s.changed {
			t.Errorf("step %d (%.2f of a CPU): busy %v, changed %v; want %v, %v", i, s.share, busy, changed, s.busy, s.changed)
		}
	}
	// A clock that did not move, or CPU time that went backwards, is a new
	// baseline, not a reading.
	was := w.busy
	if busy, changed := w.observe(t0.Add(time.Duration(len(steps))*busyInterval), cpu+time.Hour); busy != was || changed {
		t.Errorf("same instant: busy %v, changed %v", busy, changed)
	}
	if busy, changed := w.observe(t0.Add(time.Hour), 0); busy != was || changed {
		t.Errorf("CPU going backwards: busy %v, changed %v", busy, changed)
	}
	// One long quiet interval ends a spell by itself.
	if busy, changed := w.observe(t0.Add(time.Hour+busyLeaveAfter), 0); busy || !changed {
		t.Errorf("after %v at rest: busy %v, changed %v; want the spell over", busyLeaveAfter, busy, changed)
	}
}

// A busy spell lifts the auto limit, a collection during it leaves it
// lifted, and the end of the spell puts a limit back.
func TestMemoryGovernorBusy(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	g := &memoryGovernor{}
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
