package memory

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"testing"
	"time"
)

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in   string
		want Limit
		str  string
	}{
		{"", Limit{}, "auto"},
		{"auto", Limit{}, "auto"},
		{"off", Limit{Off: true}, "off"},
		{"128Mi", Limit{Bytes: 128 << 20}, "128Mi"},
		{"1Gi", Limit{Bytes: 1 << 30}, "1024Mi"},
		{"65536Ki", Limit{Bytes: 64 << 20}, "64Mi"},
		{"134217729", Limit{Bytes: 128<<20 + 1}, "134217729"},
		{"200M", Limit{Bytes: 200e6}, "200000000"},
	}
	for _, tc := range tests {
		got, err := ParseLimit(tc.in)
		if err != nil || got != tc.want || got.String() != tc.str {
			t.Errorf("ParseLimit(%q) = %+v (%s), %v; want %+v (%s)", tc.in, got, got, err, tc.want, tc.str)
		}
	}
	for _, bad := range []string{"128MB", "-1Mi", "0", "1Mi", "lots", "9999999999Gi"} {
		if got, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) = %+v, want an error", bad, got)
		}
	}
}

// The auto limit sits the pacer's room for garbage (before it has measured
// anything, the ceiling) above what the runtime holds live, and follows it;
// off and a fixed size set what they say.
func TestMemoryLimitApply(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))

	if got := (Limit{Bytes: 200 << 20}).apply(nil, math.MaxInt64); got != 200<<20 || debug.SetMemoryLimit(-1) != 200<<20 {
		t.Errorf("fixed: apply %d, runtime %d", got, debug.SetMemoryLimit(-1))
	}
	if got := (Limit{Off: true}).apply(nil, math.MaxInt64); got != math.MaxInt64 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("off: apply %d, runtime %d", got, debug.SetMemoryLimit(-1))
	}
	// A GOMEMLIMIT from the environment is the ceiling of every limit.
	const ceiling = 100 << 20
	for _, m := range []Limit{{Bytes: 200 << 20}, {Off: true}, {}} {
		if got := m.apply(&pacer{}, ceiling); got > ceiling || debug.SetMemoryLimit(-1) != got {
			t.Errorf("%s under a %d MiB ceiling: apply %d MiB, runtime %d MiB", m, ceiling>>20, got>>20, debug.SetMemoryLimit(-1)>>20)
		}
	}
	runGC()
	live := liveRuntimeBytes()
	ballast := make([]*[1 << 20]byte, 32) // 32 MiB more live heap
	for i := range ballast {
		ballast[i] = new([1 << 20]byte)
	}
	runGC()
	got := Limit{}.apply(&pacer{}, math.MaxInt64)
	if debug.SetMemoryLimit(-1) != got {
		t.Errorf("auto: apply returned %d, runtime holds %d", got, debug.SetMemoryLimit(-1))
	}
	if min := live + 32<<20 + gcCeiling(live+32<<20); got < min-4<<20 || got > min+16<<20 {
		t.Errorf("auto with 32 MiB more live: limit %d MiB, want about %d MiB", got>>20, min>>20)
	}
	runtime.KeepAlive(ballast)
	runGC()
	if after := (Limit{}).apply(&pacer{}, math.MaxInt64); after > got-24<<20 {
		t.Errorf("auto did not follow the live heap down: %d MiB, was %d MiB", after>>20, got>>20)
	}
}

// The limit gives the heap the room asked for: the runtime's heap goal
// under it is live data plus room, not less (the runtime keeps a reserve
// below the limit, which limitFor adds back).
func TestLimitForHeapGoal(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // the limit alone sets the goal
	ballast := make([]*[1 << 20]byte, 64)            // a live heap the size of the agent's at 1,000 peers
	for i := range ballast {
		ballast[i] = new([1 << 20]byte)
	}
	for _, room := range []int64{2 << 20, 8 << 20, 16 << 20} {
		runGC()
		live := liveRuntimeBytes()
		debug.SetMemoryLimit(limitFor(live, room))
		marked := readUint64Metric(t, "/gc/heap/live:bytes")
		goal := readUint64Metric(t, "/gc/heap/goal:bytes")
		got := int64(goal) - int64(marked)
		t.Logf("room %d KiB: heap goal %d KiB above the live heap", room>>10, got>>10)
		if got < room-room/8 || got > room+1<<20 {
			t.Errorf("room %d KiB: heap goal %d KiB above the live heap", room>>10, got>>10)
		}
	}
	runtime.KeepAlive(ballast)
}

func readUint64Metric(t *testing.T, name string) uint64 {
	t.Helper()
	s := []rtmetrics.Sample{{Name: name}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		t.Fatalf("runtime metric %s unavailable", name)
	}
	return s[0].Value.Uint64()
}

func runGC() { debug.FreeOSMemory() } // a full collection, so the live figure is fresh

// afterEachGC calls back after collections, and stops with its context.
func TestAfterEachGC(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 100)
	afterEachGC(ctx, func() { calls <- struct{}{} })
	for i := range 2 {
		runtime.GC()
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("no call after collection %d", i+1)
		}
	}
	cancel()
	runtime.GC() // runs the armed cleanup, which sees ctx done and stops
	runtime.GC()
	time.Sleep(50 * time.Millisecond) // cleanups run on their own goroutine
	n := len(calls)
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	if len(calls) != n || n > 0 {
		t.Errorf("%d calls after cancel", len(calls))
	}
}
