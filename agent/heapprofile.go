package agent

import (
	"runtime"
	"strings"
)

// SetHeapProfiling turns the Go runtime's heap profiling off for the
// agent, unless godebug (the GODEBUG environment variable) sets
// memprofilerate, which the runtime has then already applied; it returns
// the rate in effect.
//
// The profiler samples an allocation every 512 KiB by default and keeps a
// record per sampled call stack, indexed by a 1.4 MB hash table: about
// 1.5 MB the agent held at rest with 1,000 peers (go_memstats_buck_hash_sys_bytes),
// for a profile nobody reads unless debugging. With it off,
// /debug/pprof/heap serves an empty profile; GODEBUG=memprofilerate=524288
// in the agent's environment turns it back on. Called first thing, so that
// little is sampled before.
func SetHeapProfiling(godebug string) int {
	for _, kv := range strings.Split(godebug, ",") {
		if strings.HasPrefix(strings.TrimSpace(kv), "memprofilerate=") {
			return runtime.MemProfileRate
		}
	}
	runtime.MemProfileRate = 0
	return 0
}
