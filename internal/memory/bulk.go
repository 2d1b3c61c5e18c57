package memory

import "runtime/debug"

// Device is what the embedded wireguard-go device asks of the process's
// memory before it allocates in bulk (tunnel.ProcessMemory). Its zero value
// is ready to use.
type Device struct{}

// DeviceStarting hands freed pages back to the OS before the device
// allocates its receive buffers: placed on pages the process freed earlier
// (start-up garbage), they would be zeroed and so resident before any
// packet touched them.
func (Device) DeviceStarting() { debug.FreeOSMemory() }

// bulkPeers is how many new peers make an add a bulk add (AddingPeers).
const bulkPeers = 64

// AddingPeers prepares the process for adding n peers to the device and
// returns what undoes it. Each peer costs the device two 1,024-slot queues
// of which a fresh process writes only the first page; placed on pages the
// process used and freed before, the runtime zeroes them and all of it is
// resident. For a bulk add (start-up, a cluster joining at once) every free
// page is handed back to the OS first, which the runtime then knows to be
// zero, and the collector is paused until the device holds the peers, so
// that the same add's garbage is not freed and reused for them. A memory
// limit in force still bounds the heap meanwhile.
func (Device) AddingPeers(n int) (undo func()) {
	if n < bulkPeers {
		return func() {}
	}
	debug.FreeOSMemory()
	old := debug.SetGCPercent(-1)
	return func() { debug.SetGCPercent(old) }
}
