package memory

// Whether the agent is busy: carrying heavy traffic through its embedded
// WireGuard device.
//
// The auto limit keeps little room for garbage, which suits a node at rest.
// Under load it costs throughput: the device holds every packet in flight
// in a 64 KiB buffer from pools the collector empties at every cycle, so a
// tight limit collects far more often than a standalone wireguard-go and
// refills the pools from freshly faulted pages. While busy, the limit steps
// aside (back to the ceiling) and GOGC alone paces the collector, as in a
// standalone wireguard-go; when the spell ends the limit comes back and the
// garbage goes back to the OS at once (governor).
//
// Busy is read from the bytes the tunnel interface has carried (received
// and sent, /proc/self/net/dev), every busyInterval: busyEnter or more over
// each of busyEnterTicks intervals in a row (a second) starts a spell, and
// it ends once every interval for busyLeaveAfter has stayed below
// busyLeave. Traffic is what fills the device's buffers, and a node at rest
// carries none; the agent's CPU time is no signal for this (at rest it
// comes in bursts: handshake retries, gossip push-pulls, the collector).
// The end is slow because ending a spell is not free: two collections,
// every free page handed back, and the next burst faulting them in again.

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

const (
	busyEnter      = 25e6 // bytes a second (200 Mbit/s), over each of busyEnterTicks intervals in a row
	busyEnterTicks = 4
	busyLeave      = 2.5e6 // bytes a second, over every interval of busyLeaveAfter
	busyInterval   = 250 * time.Millisecond
	busyLeaveAfter = 30 * time.Second
)

// busyWatch turns readings of the tunnel's cumulative byte count into busy
// spells, with hysteresis between busyEnter and busyLeave and in time
// (busyLeaveAfter). It is not safe for concurrent use.
type busyWatch struct {
	seen  bool
	at    time.Time
	bytes uint64
	busy  bool
	hot   int       // at rest: intervals in a row at busyEnter or more
	quiet time.Time // while busy: since when the rate has been below busyLeave; zero if it is not
}

// observe takes the tunnel's cumulative byte count read at now and reports
// whether the agent is busy and whether that changed with this reading.
func (w *busyWatch) observe(now time.Time, bytes uint64) (busy, changed bool) {
	if !w.seen || !now.After(w.at) || bytes < w.bytes {
		w.seen, w.at, w.bytes = true, now, bytes
		return w.busy, false
	}
	rate := float64(bytes-w.bytes) / now.Sub(w.at).Seconds()
	from := w.at
	w.at, w.bytes = now, bytes
	was := w.busy
	switch {
	case !w.busy:
		if rate < busyEnter {
			w.hot = 0
			break
		}
		w.hot++
		if w.hot >= busyEnterTicks {
			w.busy, w.hot = true, 0
		}
	case rate >= busyLeave:
		w.quiet = time.Time{}
	case w.quiet.IsZero():
		w.quiet = from
		fallthrough
	default:
		if now.Sub(w.quiet) >= busyLeaveAfter {
			w.busy, w.quiet = false, time.Time{}
		}
	}
	return w.busy, w.busy != was
}

// governor keeps the auto limit: re-derived after every collection, and
// stepped aside while the agent is busy.
type governor struct {
	limit   Limit
	ceiling int64 // the environment's limit (envLimit): no limit is set above it

	mu    sync.Mutex // guards the fields below
	pacer pacer
	busy  bool
}

// isBusy reports whether a busy spell has lifted the limit.
func (g *governor) isBusy() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.busy
}

// afterGC re-derives the limit, unless a busy spell has lifted it.
func (g *governor) afterGC() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.busy {
		g.limit.apply(&g.pacer, g.ceiling)
	}
}

// setBusy lifts the limit to the ceiling for a busy spell, or restores it
// when the spell ends and hands the spell's garbage back to the OS.
func (g *governor) setBusy(busy bool) {
	g.mu.Lock()
	g.busy = busy
	if busy {
		debug.SetMemoryLimit(g.ceiling)
		g.mu.Unlock()
		return
	}
	// The spell's allocations are not the rate at rest: measure afresh.
	g.pacer.rebase(time.Now(), readGCCounters())
	g.limit.apply(&g.pacer, g.ceiling)
	g.mu.Unlock()
	// Two full collections, as the device's buffer pools outlive the first
	// (sync.Pool keeps a victim cache for one cycle). afterGC then sets the
	// limit from the live data left, and FreeOSMemory returns every free
	// page.
	runtime.GC()
	debug.FreeOSMemory()
}

// watch reads the tunnel's byte count (read) every busyInterval until ctx
// is done and starts and ends busy spells.
func (g *governor) watch(ctx context.Context, log *slog.Logger, read func() (uint64, error)) {
	var w busyWatch
	var failing bool
	t := time.NewTicker(busyInterval)
	defer t.Stop()
	for {
		// A reading that fails (the interface gone for a moment) counts
		// as no traffic: a spell can end, none starts.
		n, err := read()
		switch {
		case err != nil && !failing:
			log.Warn("cannot read the tunnel's traffic; counting none until it can be read", "err", err)
			n, failing = w.bytes, true
		case err != nil:
			n = w.bytes
		case failing:
			log.Info("the tunnel's traffic can be read again")
			failing = false
		}
		if busy, changed := w.observe(time.Now(), n); changed {
			g.setBusy(busy)
			if busy {
				log.Info("busy: memory limit lifted while traffic lasts")
			} else {
				log.Info("at rest again: memory limit back, free memory returned to the OS")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
