package main

import (
	"runtime"
	"testing"
)

func TestSetHeapProfiling(t *testing.T) {
	saved := runtime.MemProfileRate
	t.Cleanup(func() { runtime.MemProfileRate = saved })
	for _, tc := range []struct {
		godebug string
		before  int
		want    int
	}{
		{"", 512 * 1024, 0},
		{"gctrace=1", 512 * 1024, 0},
		{"madvdontneed=1,memprofilerate=4096", 4096, 4096}, // the runtime applied it
		{" memprofilerate=1", 1, 1},
		{"memprofilerates=1", 512 * 1024, 0}, // another name
	} {
		runtime.MemProfileRate = tc.before
		if got := setHeapProfiling(tc.godebug); got != tc.want || runtime.MemProfileRate != tc.want {
			t.Errorf("GODEBUG=%q: got %d, MemProfileRate %d, want %d", tc.godebug, got, runtime.MemProfileRate, tc.want)
		}
	}
}
