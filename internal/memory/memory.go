// Package memory keeps the weft agent's process small while it hosts the
// embedded wireguard-go device, and only then: cmd/weft calls it when the
// agent's start-up is done and the tunnel is that device. The device holds
// heap that is allocated but mostly never written (receive buffers, every
// peer's queues), so the collector's default goal, twice the live heap,
// would let the agent's own garbage, which is written and so resident, grow
// as large again. The kernel WireGuard and VXLAN backends keep nothing of
// the kind in the process and are left to the runtime's defaults.
//
// What it does, each in its own file:
//   - limit.go: the soft memory limit (memoryLimit: auto, off or a size),
//     re-derived after every collection from the live data plus room for
//     garbage, never above a GOMEMLIMIT from the environment;
//   - pacer.go: that room, sized to the allocation rate;
//   - busy.go, netdev.go: the limit steps aside while the tunnel carries
//     heavy traffic;
//   - pages.go: the executable's pages that start-up touched are handed
//     back;
//   - bulk.go: a large peer add lands on pages handed back to the OS;
//   - heapprofile.go: heap profiling off unless GODEBUG asks for it.
//
// This package owns process-wide runtime state (the collector's percent and
// limit, the heap profiling rate); only the binary calls it. The figures
// behind each choice are in docs/benchmarks.md ("Agent footprint").
package memory

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	"time"
)

// Settle runs once the agent's start-up is done, with the embedded device
// up: it returns start-up's garbage and the executable's pages to the OS
// (and the pages once more releaseAgainAfter later), and applies limit,
// saying what it did. With auto the limit is re-derived after every
// collection, and the tunnel interface's traffic is watched for busy
// spells, until ctx is done.
func Settle(ctx context.Context, log *slog.Logger, limit Limit, tunnelInterface string) {
	debug.FreeOSMemory()
	releasePages(log, "start-up")
	g := &governor{limit: limit, ceiling: envLimit()}
	go func() {
		t := time.NewTimer(releaseAgainAfter)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			if !g.isBusy() {
				releasePages(log, "settling")
			}
		}
	}()
	l := limit.apply(&g.pacer, g.ceiling)
	if l == math.MaxInt64 {
		log.Info("no Go memory limit", "memoryLimit", limit.String())
		return
	}
	args := []any{"memoryLimit", limit.String(), "limitMiB", l >> 20}
	if g.ceiling != math.MaxInt64 {
		args = append(args, "ceilingMiB", g.ceiling>>20) // GOMEMLIMIT's
	}
	log.Info("Go memory limit", args...)
	if limit.Auto() {
		afterEachGC(ctx, g.afterGC)
		go g.watch(ctx, log, newNetDevCounter("/proc/self/net/dev", tunnelInterface).read)
	}
}

// releaseAgainAfter is when the executable's pages are released a second
// time: the first rounds of gossip, resyncs and WireGuard's retries after
// start-up run code the agent at rest does not.
const releaseAgainAfter = 15 * time.Second
