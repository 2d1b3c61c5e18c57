package memory

import (
	"runtime/debug"
	"testing"
)

// A bulk add pauses the collector until it is undone; a few peers leave it
// alone.
func TestAddingPeers(t *testing.T) {
	const gogc = 150
	defer debug.SetGCPercent(debug.SetGCPercent(gogc))

	undo := Device{}.AddingPeers(bulkPeers - 1)
	if got := debug.SetGCPercent(gogc); got != gogc {
		t.Errorf("%d new peers changed GOGC to %d", bulkPeers-1, got)
	}
	undo()

	undo = Device{}.AddingPeers(1000)
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Errorf("1000 new peers: GOGC %d during the add, want off", got)
	}
	undo()
	if got := debug.SetGCPercent(gogc); got != gogc {
		t.Errorf("after the add: GOGC %d, want %d back", got, gogc)
	}
}
