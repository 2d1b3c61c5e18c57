package agent

// Whether the agent is busy: carrying heavy traffic through its embedded
// WireGuard device, or programming many peers at once.
//
// The memory limit "auto" keeps little room for garbage, which suits a node
// at rest. Under load it costs throughput: the device holds every packet in
// flight in a 64 KiB buffer, so a single TCP stream keeps 100-150 MiB of
// them live, and the buffers come from pools the collector empties at every
// cycle. A quarter of the live data as room (the pacer's ceiling) collected
// about four times as often as a standalone wireguard-go (GOGC=100, room
// equal to the live data), and each collection was followed by refilling
// the pools from freshly faulted pages. While busy, the limit steps aside
// and GOGC alone paces the collector, as in a standalone wireguard-go; when
// the spell ends the limit comes back and the garbage goes back to the OS
// at once (memoryGovernor).
//
// Busy is read from the process's own CPU time, which counts the device's
// data path, every busyInterval: at least busyEnter of a CPU over each of
// busyEnterTicks intervals in a row (a second) starts a spell, and it ends
// once the share has stayed below busyLeave for busyLeaveAfter. A gigabit of
// WireGuard traffic takes most of a CPU. A node at rest with 1,000 peers
// uses about 5% of one, in bursts: WireGuard's handshake retries every 5 s,
// gossip push-pulls. Bursts took more than a quarter of a CPU over single
// quarter-seconds, and more than half over two in a row; started by them, a
// spell lifted the limit for most of a 120 s footprint window (RSS 90 MiB
// against 50). Every quarter-second of a second above half a CPU is
// stricter than the quarter of a CPU over a second that a spell once took,
// which no footprint run saw at rest.
//
// The end is slow because ending a spell is not free: two collections,
// every free page handed back, and the next burst faulting them in again
// under the limit until the next spell starts. In A/B runs of 5 s TCP
// transfers 5 s apart, a spell that ended between them cost 49-60 thousand
// page faults per GB carried, one held across the pause 2-11 thousand
// (standalone wireguard-go: almost none; the Go runtime hands its free
// pages back over minutes). Half a minute without traffic still returns the
// memory long before that.

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	busyEnter      = 0.50 // of one CPU, over each of busyEnterTicks intervals in a row
	busyEnterTicks = 4
	busyLeave      = 0.10 // of one CPU, over every interval of busyLeaveAfter
	busyInterval   = 250 * time.Millisecond
	busyLeaveAfter = 30 * time.Second
)

// busyWatch turns readings of cumulative CPU time into busy spells, with
// hysteresis between busyEnter and busyLeave and in time (busyLeaveAfter).
// It is not safe for concurrent use.
type busyWatch struct {
	seen  bool
	at    time.Time
	cpu   time.Duration
	busy  bool
	hot   int       // at rest: intervals in a row at busyEnter or more
	quiet time.Time // while busy: since when the share has been below busyLeave; zero if it is not
}

// observe takes the process's cumulative CPU time read at now and reports
// whether the agent is busy and whether that changed with this reading.
func (w *busyWatch) observe(now time.Time, cpu time.Duration) (busy, changed bool) {
	if !w.seen || !now.After(w.at) || cpu < w.cpu {
		w.seen, w.at, w.cpu = true, now, cpu
		return w.busy, false
	}
	share := (cpu - w.cpu).Seconds() / now.Sub(w.at).Seconds()
	from := w.at
	w.at, w.cpu = now, cpu
	was := w.busy
	switch {
	case !w.busy:
		if share < busyEnter {
			w.hot = 0
			break
		}
		w.hot++
		if w.hot >= busyEnterTicks {
			w.busy, w.hot = true, 0
		}
	case share >= busyLeave:
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

// memoryGovernor keeps the auto limit: re-derived after every collection,
// and stepped aside while the agent is busy (busy.go).
type memoryGovernor struct {
	limit MemoryLimit

	mu    sync.Mutex
	pacer gcPacer
	busy  bool
}

// isBusy reports whether a busy spell has lifted the limit.
func (g *memoryGovernor) isBusy() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.busy
}

// afterGC re-derives the limit, unless a busy spell has lifted it.
func (g *memoryGovernor) afterGC() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.busy {
		g.limit.apply(&g.pacer)
	}
}

// setBusy lifts the limit for a busy spell, or restores it when the spell
// ends and hands the spell's garbage back to the OS.
func (g *memoryGovernor) setBusy(busy bool) {
	g.mu.Lock()
	g.busy = busy
	if busy {
		debug.SetMemoryLimit(math.MaxInt64)
		g.mu.Unlock()
		return
	}
	// The spell's allocations are not the rate at rest: measure afresh.
	g.pacer.rebase(time.Now(), readGCCounters())
	g.limit.apply(&g.pacer)
	g.mu.Unlock()
	// Two full collections, as the device's buffer pools outlive the first
	// (sync.Pool keeps a victim cache for one cycle): about 150 MiB of
	// them after a single TCP stream. afterGC then sets the limit from the
	// live data left, and FreeOSMemory returns every free page.
	runtime.GC()
	debug.FreeOSMemory()
}

// watch reads the process's CPU time every busyInterval until ctx is done
// and starts and ends busy spells.
func (g *memoryGovernor) watch(ctx context.Context, log *slog.Logger) {
	var w busyWatch
	t := time.NewTicker(busyInterval)
	defer t.Stop()
	for {
		cpu, err := processCPU()
		if err != nil {
			log.Warn("cannot read the agent's CPU time; the memory limit stays in force under load", "err", err)
			return
		}
		if busy, changed := w.observe(time.Now(), cpu); changed {
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

// processCPU is the user and system CPU time the process has used.
func processCPU() (time.Duration, error) {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
