package memory

import (
	"testing"
	"time"
)

func TestGCCeiling(t *testing.T) {
	for _, tc := range []struct{ live, want int64 }{
		{8 << 20, 16 << 20},   // the floor
		{64 << 20, 16 << 20},  // a quarter is the floor
		{200 << 20, 50 << 20}, // a quarter
	} {
		if got := gcCeiling(tc.live); got != tc.want {
			t.Errorf("gcCeiling(%d MiB) = %d MiB, want %d MiB", tc.live>>20, got>>20, tc.want>>20)
		}
	}
}

// The pacer gives room for the garbage of budget/cost seconds at the
// allocation rate it measured, within the floor and the ceiling.
func TestGCPacerHeadroom(t *testing.T) {
	const MB = 1 << 20
	live := int64(64 * MB) // ceiling 16 MiB
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	type reading struct {
		at     float64 // seconds after t0
		allocs uint64  // cumulative MB
		cycles uint64
		cpu    float64 // cumulative GC CPU seconds
	}
	for _, tc := range []struct {
		name     string
		readings []reading
		want     int64
	}{
		{"nothing measured yet: the ceiling", []reading{{0, 100, 10, 1}}, 16 * MB},
		// 0.5 MB/s, 25 ms a collection: 0.5 * 0.025 / 0.02 = 0.625 MB.
		{"at rest: the floor", []reading{{0, 100, 10, 1}, {10, 105, 11, 1.025}}, 2 * MB},
		// 4 MB/s, 25 ms a collection: 5 MB.
		{"a busy spell: the budget's room", []reading{{0, 100, 10, 1}, {2, 108, 11, 1.025}}, 5 * MB},
		// 100 MB/s: far above the ceiling.
		{"under load: the ceiling", []reading{{0, 100, 10, 1}, {1, 200, 12, 1.06}}, 16 * MB},
		// Two collections between readings: the cost is per collection.
		{"two collections in one interval", []reading{{0, 100, 10, 1}, {2, 108, 12, 1.05}}, 5 * MB},
		// Smoothed: 4 MB/s after 0.5 MB/s is 2.25 MB/s, 2.8 MB.
		{"one busy interval after a quiet one", []reading{{0, 100, 10, 1}, {10, 105, 11, 1.025}, {12, 113, 12, 1.05}}, 28125 * MB / 10000},
		// Counters that went backwards (a new process's) are not a rate.
		{"counters going backwards", []reading{{0, 100, 10, 1}, {1, 50, 5, 0.5}}, 16 * MB},
	} {
		p := &pacer{}
		var got int64
		for _, r := range tc.readings {
			got = p.headroom(at(r.at), gcCounters{allocs: r.allocs * MB, cycles: r.cycles, cpu: r.cpu}, live)
		}
		if diff := got - tc.want; diff < -MB/10 || diff > MB/10 {
			t.Errorf("%s: headroom %.2f MiB, want %.2f MiB", tc.name, float64(got)/MB, float64(tc.want)/MB)
		}
	}
}
