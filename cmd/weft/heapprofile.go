package main

import (
	"runtime"
	"strings"
)

// setHeapProfiling turns the Go runtime's heap profiling off for the
// agent, unless godebug (the GODEBUG environment variable) sets
// memprofilerate, which the runtime has then already applied; it returns
// the rate in effect.
//
// The profiler keeps a record per sampled call stack, indexed by a hash
// table of over a megabyte (go_memstats_buck_hash_sys_bytes), for a profile
// nobody reads unless debugging. With it off, /debug/pprof/heap serves an
// empty profile; GODEBUG=memprofilerate=524288 in the agent's environment
// turns it back on. Called first thing, so that little is sampled before.
func setHeapProfiling(godebug string) int {
	for _, kv := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(kv), "memprofilerate=") {
			return runtime.MemProfileRate
		}
	}
	runtime.MemProfileRate = 0
	return 0
}
