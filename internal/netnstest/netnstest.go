// Package netnstest puts a test in a fresh network namespace of its own,
// or makes a named one for the processes a test starts.
package netnstest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
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

// Named creates a named network namespace (as `ip netns add` does, so
// processes can enter it by name) with lo up and addr/24 on one end of a
// veth pair whose both ends live in it (the dummy module is not on every
// kernel), removed when the test ends. prefix and the test's name make
// the namespace's name. The caller checks for root first.
func Named(t testing.TB, prefix string, addr netip.Addr) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), strings.ToLower(strings.TrimPrefix(t.Name(), "Test")))
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	run("-n", name, "link", "set", "lo", "up")
	run("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	run("-n", name, "addr", "add", addr.String()+"/24", "dev", "eth0")
	run("-n", name, "link", "set", "eth0", "up")
	run("-n", name, "link", "set", "eth0p", "up")
	return name
}
