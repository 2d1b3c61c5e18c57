package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	block24 = netip.MustParsePrefix("10.244.7.0/24")
	gw24    = netip.MustParseAddr("10.244.7.1")
	block29 = netip.MustParsePrefix("10.244.9.0/29") // .2-.6 assignable
	gw29    = netip.MustParseAddr("10.244.9.1")
)

func att(i int) Attachment { return Attachment{ContainerID: fmt.Sprintf("c%d", i), IfName: "eth0"} }

func mustOpen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustAlloc(t *testing.T, s *Store, block netip.Prefix, gw netip.Addr, a Attachment) (netip.Addr, bool) {
	t.Helper()
	ip, fresh, err := s.Allocate(block, gw, a, "weft")
	if err != nil {
		t.Fatalf("Allocate(%v): %v", a, err)
	}
	return ip, fresh
}

func TestAllocateSequenceAndRepeat(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	for i, want := range []string{"10.244.7.2", "10.244.7.3", "10.244.7.4"} {
		ip, fresh := mustAlloc(t, s, block24, gw24, att(i))
		if ip.String() != want || !fresh {
			t.Fatalf("allocation %d = %v fresh=%v, want %s fresh", i, ip, fresh, want)
		}
	}
	// A repeated ADD of the same attachment gets the same address, not fresh.
	ip, fresh := mustAlloc(t, s, block24, gw24, att(1))
	if ip.String() != "10.244.7.3" || fresh {
		t.Fatalf("repeat allocation = %v fresh=%v, want 10.244.7.3 not fresh", ip, fresh)
	}
	// Same container, other interface: a different attachment.
	ip, _ = mustAlloc(t, s, block24, gw24, Attachment{ContainerID: "c1", IfName: "net1"})
	if ip.String() != "10.244.7.5" {
		t.Fatalf("second interface got %v, want 10.244.7.5", ip)
	}
}

func TestRoundRobinDoesNotReuseFreedAddress(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	a0, _ := mustAlloc(t, s, block24, gw24, att(0))
	mustAlloc(t, s, block24, gw24, att(1))
	if rel, err := s.Release(att(0), netip.Addr{}); err != nil || len(rel) != 1 || rel[0] != a0 {
		t.Fatalf("Release = %v, %v; want [%v]", rel, err, a0)
	}
	ip, _ := mustAlloc(t, s, block24, gw24, att(2))
	if ip == a0 {
		t.Fatalf("freed address %v handed out again immediately", a0)
	}
	if ip.String() != "10.244.7.4" {
		t.Fatalf("got %v, want 10.244.7.4", ip)
	}
}

func TestExhaustionAndWrap(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	seen := map[netip.Addr]bool{}
	for i := 0; i < 5; i++ {
		ip, _ := mustAlloc(t, s, block29, gw29, att(i))
		if seen[ip] || !Assignable(block29, gw29, ip) {
			t.Fatalf("bad or duplicate address %v", ip)
		}
		seen[ip] = true
	}
	_, _, err := s.Allocate(block29, gw29, att(5), "weft")
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("Allocate on a full /29 = %v, want ErrExhausted", err)
	}
	if n, err := s.Free(block29, gw29); err != nil || n != 0 {
		t.Fatalf("Free = %d, %v; want 0", n, err)
	}
	// Free the middle one; the cursor is at .6 and wraps to find it.
	if _, err := s.Release(att(2), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	ip, _ := mustAlloc(t, s, block29, gw29, att(6))
	if ip.String() != "10.244.9.4" {
		t.Fatalf("after wrap got %v, want 10.244.9.4", ip)
	}
}

func TestReleaseIsIdempotentAndExact(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	ip, _ := mustAlloc(t, s, block24, gw24, att(0))
	// Rolling back a different address must not free the real one.
	if rel, err := s.Release(att(0), netip.MustParseAddr("10.244.7.99")); err != nil || len(rel) != 0 {
		t.Fatalf("Release(other ip) = %v, %v; want nothing", rel, err)
	}
	if _, ok, _ := s.Lookup(att(0)); !ok {
		t.Fatal("reservation vanished after releasing another address")
	}
	if rel, err := s.Release(att(0), ip); err != nil || len(rel) != 1 {
		t.Fatalf("Release = %v, %v", rel, err)
	}
	for i := 0; i < 2; i++ {
		if rel, err := s.Release(att(0), netip.Addr{}); err != nil || len(rel) != 0 {
			t.Fatalf("second Release = %v, %v; want no-op", rel, err)
		}
	}
	if rel, err := s.Release(att(42), netip.Addr{}); err != nil || len(rel) != 0 {
		t.Fatalf("Release of never-added = %v, %v", rel, err)
	}
}

func TestGC(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	for i := 0; i < 4; i++ {
		mustAlloc(t, s, block24, gw24, att(i))
	}
	if _, _, err := s.Allocate(block24, gw24, att(9), "other"); err != nil {
		t.Fatal(err)
	}
	gone, err := s.GC("weft", map[Attachment]bool{att(1): true, att(3): true})
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) != 2 || gone[0].Attachment != att(0) || gone[1].Attachment != att(2) {
		t.Fatalf("GC released %+v, want c0 and c2", gone)
	}
	list, _ := s.List()
	var left []string
	for _, al := range list {
		left = append(left, al.ContainerID)
	}
	if strings.Join(left, ",") != "c1,c3,c9" {
		t.Fatalf("left %v, want c1,c3,c9 (other network untouched)", left)
	}
}

func TestBlockChange(t *testing.T) {
	s := mustOpen(t, t.TempDir())
	old0, _ := mustAlloc(t, s, block24, gw24, att(0))
	mustAlloc(t, s, block24, gw24, att(1))

	// The agent's lease moved to a new block.
	nb := netip.MustParsePrefix("10.244.8.0/24")
	ngw := netip.MustParseAddr("10.244.8.1")
	ip, fresh := mustAlloc(t, s, nb, ngw, att(2))
	if ip.String() != "10.244.8.2" || !fresh {
		t.Fatalf("first allocation in new block = %v, want 10.244.8.2", ip)
	}
	// Old allocations stay recorded until DEL or GC.
	if al, ok, _ := s.Lookup(att(1)); !ok || al.IP.String() != "10.244.7.3" {
		t.Fatalf("old allocation lost: %+v %v", al, ok)
	}
	// A repeat ADD of an attachment holding an old-block address gets a
	// new-block address and the old one is dropped.
	ip, fresh = mustAlloc(t, s, nb, ngw, att(0))
	if !nb.Contains(ip) || !fresh {
		t.Fatalf("repeat in new block = %v fresh=%v", ip, fresh)
	}
	list, _ := s.List()
	for _, al := range list {
		if al.IP == old0 {
			t.Fatalf("old-block reservation %v still held", old0)
		}
	}

	// A lease that grew to an overlapping block must not hand out
	// addresses still held from the old one.
	s2 := mustOpen(t, t.TempDir())
	b28 := netip.MustParsePrefix("10.244.7.16/28")
	g28 := netip.MustParseAddr("10.244.7.17")
	for i := 0; i < 3; i++ {
		mustAlloc(t, s2, b28, g28, att(i)) // .18 .19 .20
	}
	b27 := netip.MustParsePrefix("10.244.7.0/27") // 29 assignable
	g27 := netip.MustParseAddr("10.244.7.1")
	held := map[netip.Addr]bool{}
	for _, al := range mustList(t, s2) {
		held[al.IP] = true
	}
	for i := 10; i < 10+29-3; i++ {
		ip, _ := mustAlloc(t, s2, b27, g27, att(i))
		if held[ip] {
			t.Fatalf("allocated %v, still held by a pod from the old block", ip)
		}
		held[ip] = true
	}
	if _, _, err := s2.Allocate(b27, g27, att(9999), "weft"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("want exhaustion of the /27, got %v", err)
	}
}

func mustList(t *testing.T, s *Store) []Allocation {
	t.Helper()
	l, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCorruptStateIsAnErrorNotAReset(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	mustAlloc(t, s, block24, gw24, att(0))
	if err := os.WriteFile(filepath.Join(dir, stateName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Allocate(block24, gw24, att(1), "weft"); err == nil || !strings.Contains(err.Error(), stateName) {
		t.Fatalf("Allocate on a corrupt file = %v, want an error naming %s", err, stateName)
	}
}

func TestLockTimeout(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir)
	unlock, err := lockFile(filepath.Join(dir, lockName), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	s.LockTimeout = 20 * time.Millisecond
	if _, _, err := s.Allocate(block24, gw24, att(0), "weft"); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("Allocate while locked = %v, want ErrLockTimeout", err)
	}
}

func TestConcurrentGoroutines(t *testing.T) {
	dir := t.TempDir()
	const n = 50
	ips := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(dir) // separate Store, separate lock fd
			if err != nil {
				errs[i] = err
				return
			}
			ips[i], _, errs[i] = s.Allocate(block24, gw24, att(i), "weft")
		}()
	}
	wg.Wait()
	checkDistinct(t, ips, errs)
	if l := mustList(t, mustOpen(t, dir)); len(l) != n {
		t.Fatalf("store holds %d allocations, want %d", len(l), n)
	}
}

// TestConcurrentProcesses runs 50 copies of this test binary, each
// allocating once from the same directory, as 50 plugin invocations would.
func TestConcurrentProcesses(t *testing.T) {
	if os.Getenv("WEFT_IPAM_CHILD_DIR") != "" {
		t.Skip("running as a child")
	}
	dir := t.TempDir()
	const n = 50
	ips := make([]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestChildAllocate$", "-test.count=1")
			cmd.Env = append(os.Environ(), "WEFT_IPAM_CHILD_DIR="+dir, fmt.Sprintf("WEFT_IPAM_CHILD_ID=%d", i))
			out, err := cmd.Output()
			if err != nil {
				errs[i] = fmt.Errorf("child %d: %w: %s", i, err, out)
				return
			}
			for _, line := range strings.Split(string(out), "\n") {
				if s, ok := strings.CutPrefix(line, "IP="); ok {
					ips[i], errs[i] = netip.ParseAddr(strings.TrimSpace(s))
					return
				}
			}
			errs[i] = fmt.Errorf("child %d printed no address: %s", i, out)
		}()
	}
	wg.Wait()
	checkDistinct(t, ips, errs)
	if l := mustList(t, mustOpen(t, dir)); len(l) != n {
		t.Fatalf("store holds %d allocations, want %d", len(l), n)
	}
}

// TestChildAllocate is the child half of TestConcurrentProcesses.
func TestChildAllocate(t *testing.T) {
	dir := os.Getenv("WEFT_IPAM_CHILD_DIR")
	if dir == "" {
		t.Skip("only runs as a child of TestConcurrentProcesses")
	}
	s := mustOpen(t, dir)
	ip, _, err := s.Allocate(block24, gw24, Attachment{ContainerID: "p" + os.Getenv("WEFT_IPAM_CHILD_ID"), IfName: "eth0"}, "weft")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("IP=%v\n", ip)
}

func checkDistinct(t *testing.T, ips []netip.Addr, errs []error) {
	t.Helper()
	seen := map[netip.Addr]int{}
	for i, ip := range ips {
		if errs[i] != nil {
			t.Fatalf("allocation %d: %v", i, errs[i])
		}
		if j, dup := seen[ip]; dup {
			t.Fatalf("allocations %d and %d both got %v", j, i, ip)
		}
		if !Assignable(block24, gw24, ip) {
			t.Fatalf("allocation %d got unassignable %v", i, ip)
		}
		seen[ip] = i
	}
}

// A table torn by a host crash (writes are not fsynced) is started over
// only when it was written in an earlier boot, whose pods are all gone.
func TestTornStateFromEarlierBootIsReset(t *testing.T) {
	dir := t.TempDir()
	boot := filepath.Join(t.TempDir(), "boot_id")
	if err := os.WriteFile(boot, []byte("boot-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := bootIDPath
	bootIDPath = boot
	t.Cleanup(func() { bootIDPath = old })

	s := mustOpen(t, dir)
	mustAlloc(t, s, block24, gw24, att(0))
	if b, err := os.ReadFile(filepath.Join(dir, bootName)); err != nil || string(b) != "boot-1\n" {
		t.Fatalf("boot marker = %q, %v; want boot-1", b, err)
	}
	// Torn within the boot that wrote it: an error, never a reset.
	if err := os.WriteFile(filepath.Join(dir, stateName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Allocate(block24, gw24, att(1), "weft"); err == nil {
		t.Fatal("Allocate on a torn file of this boot succeeded")
	}
	// After a reboot the same torn file describes no live pod.
	if err := os.WriteFile(boot, []byte("boot-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, dir)
	ip, fresh := mustAlloc(t, s2, block24, gw24, att(1))
	if !fresh || ip != netip.MustParseAddr("10.244.7.2") {
		t.Fatalf("after reboot got %v (fresh %v), want 10.244.7.2 from an empty table", ip, fresh)
	}
	if l := mustList(t, s2); len(l) != 1 || l[0].Attachment != att(1) {
		t.Fatalf("allocations after reset = %v", l)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, bootName)); string(b) != "boot-2\n" {
		t.Fatalf("boot marker after reboot = %q", b)
	}
}

// A waiter that timed out must not keep the lock once it gets it.
func TestTimedOutWaiterReleasesTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), lockName)
	unlock, err := lockFile(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockFile(path, 10*time.Millisecond); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("second lock = %v, want ErrLockTimeout", err)
	}
	unlock()
	unlock2, err := lockFile(path, 10*time.Second)
	if err != nil {
		t.Fatalf("lock after the holder released it: %v", err)
	}
	unlock2()
}

// Without a readable boot ID the store still works, syncing every write.
func TestNoBootIDFallsBackToSyncedWrites(t *testing.T) {
	old := bootIDPath
	bootIDPath = filepath.Join(t.TempDir(), "missing")
	t.Cleanup(func() { bootIDPath = old })
	dir := t.TempDir()
	s := mustOpen(t, dir)
	mustAlloc(t, s, block24, gw24, att(0))
	if l := mustList(t, s); len(l) != 1 {
		t.Fatalf("allocations = %v", l)
	}
	if _, err := os.Stat(filepath.Join(dir, bootName)); !os.IsNotExist(err) {
		t.Fatalf("boot marker written without a boot ID: %v", err)
	}
}
