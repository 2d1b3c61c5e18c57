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
// data path: at least busyEnter of a CPU over a second starts a spell,
// less than busyLeave over a second ends it. A node at rest with 1,000
// peers uses about 5% of a CPU; a gigabit of WireGuard traffic, most of one.

import "time"

const (
	busyEnter    = 0.25 // of one CPU, over a busyInterval
	busyLeave    = 0.10
	busyInterval = time.Second
)

// busyWatch turns readings of cumulative CPU time into busy spells, with
// hysteresis between busyEnter and busyLeave. It is not safe for
// concurrent use.
type busyWatch struct {
	seen bool
	at   time.Time
	cpu  time.Duration
	busy bool
}

// observe takes the process's cumulative CPU time read at now and reports
// whether the agent is busy and whether that changed with this reading.
func (w *busyWatch) observe(now time.Time, cpu time.Duration) (busy, changed bool) {
	if !w.seen || !now.After(w.at) || cpu < w.cpu {
		w.seen, w.at, w.cpu = true, now, cpu
		return w.busy, false
	}
	share := (cpu - w.cpu).Seconds() / now.Sub(w.at).Seconds()
	w.at, w.cpu = now, cpu
	was := w.busy
	switch {
	case !w.busy && share >= busyEnter:
		w.busy = true
	case w.busy && share < busyLeave:
		w.busy = false
	}
	return w.busy, w.busy != was
}
