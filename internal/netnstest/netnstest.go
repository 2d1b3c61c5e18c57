// Package netnstest puts a test in a fresh network namespace of its own.
package netnstest

import (
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Enter locks the calling goroutine to its OS thread, moves the thread into
// a new network namespace with its loopback up, and returns the namespace.
// When the test ends the thread goes back to its original namespace and is
// unlocked; the namespace goes with its last handle. The caller checks for
// root first, skipping with its own reason.
func Enter(t testing.TB) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("failed to get the current network namespace: %v", err)
	}
	ns, err := netns.New() // also switches this thread into it
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("failed to create a network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it must not run other goroutines
			// in the test's namespace. The runtime ends it with the test.
			t.Errorf("failed to return to the original network namespace: %v", err)
			return
		}
		ns.Close()
		orig.Close()
		runtime.UnlockOSThread()
	})
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("failed to bring up lo in the test namespace: %v", err)
	}
	return ns
}
