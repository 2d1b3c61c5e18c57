package cni

// Namespace tests: the real weft-cni binary, run by libcni the way a
// container runtime runs it, from a thread inside a fresh "node" netns,
// against fresh pod netns. They need root.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/weftnet/weft/cni/ipam"
	"github.com/weftnet/weft/nodestate"
)

const (
	testBlock = "10.244.7.0/24"
	testGW    = "10.244.7.1"
	testMTU   = 1340
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

// buildPlugin compiles cmd/weft-cni into a fresh directory, named as the
// conflist "type" says, and returns the directory.
func buildPlugin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(goBin, "build", "-o", filepath.Join(dir, "weft-cni"), "github.com/weftnet/weft/cmd/weft-cni")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build weft-cni: %v\n%s", err, out)
	}
	return dir
}

// newNS creates a named netns that is removed when the test ends.
func newNS(t *testing.T) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() { removeNS(n) })
	return n
}

// removeNS closes and unmounts n; removing it twice is harmless. The
// handle must be closed first: unmounting a netns that is still open
// fails with EBUSY here.
func removeNS(n ns.NetNS) {
	_ = n.Close()
	_ = testutils.UnmountNS(n)
}

type testNode struct {
	t        *testing.T
	ns       ns.NetNS
	dir      string
	state    string
	dataDir  string
	binDir   string
	cni      *libcni.CNIConfig
	list     *libcni.NetworkConfigList
	conflist []byte
}

// newTestNode makes a node netns with forwarding on (the agent's job), a
// built plugin and a conflist; withState writes the node state file.
func newTestNode(t *testing.T, withState bool) *testNode {
	requireRoot(t)
	n := &testNode{t: t, binDir: buildPlugin(t), ns: newNS(t), dir: t.TempDir()}
	n.state = filepath.Join(n.dir, "node.json")
	n.dataDir = filepath.Join(n.dir, "ipam")
	err := n.ns.Do(func(ns.NetNS) error {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return err
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		t.Fatalf("set up node netns: %v", err)
	}
	if withState {
		n.writeState()
	}
	n.conflist = fmt.Appendf(nil, `{"cniVersion":"1.1.0","name":"weft","plugins":[
		{"type":"weft-cni","stateFile":%q,"dataDir":%q,"logFile":%q}]}`,
		n.state, n.dataDir, filepath.Join(n.dir, "weft-cni.log"))
	n.list, err = libcni.ConfListFromBytes(n.conflist)
	if err != nil {
		t.Fatal(err)
	}
	// An explicit exec: libcni makes its default lazily, unguarded, which
	// races when ADDs run concurrently.
	ex := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}
	n.cni = libcni.NewCNIConfigWithCacheDir([]string{n.binDir}, filepath.Join(n.dir, "cache"), ex)
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(n.dir, "weft-cni.log")); err == nil {
				t.Logf("plugin log:\n%s", b)
			}
		}
	})
	return n
}

func (n *testNode) writeState() {
	pfx := netip.MustParsePrefix(testBlock)
	if err := nodestate.Write(n.state, nodestate.State{
		Node: "node-a", PodCIDR: pfx, Gateway: netip.MustParseAddr(testGW),
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"), MTU: testMTU,
	}); err != nil {
		n.t.Fatal(err)
	}
}

// inNode runs f on a thread inside the node netns, as the runtime would
// run the plugin: the child process inherits the thread's namespace.
func (n *testNode) inNode(f func() error) error {
	return n.ns.Do(func(ns.NetNS) error { return f() })
}

func rt(cid, netns string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: cid, NetNS: netns, IfName: "eth0"}
}

func (n *testNode) add(cid, netns string) (*current.Result, error) {
	var res *current.Result
	err := n.inNode(func() error {
		r, err := n.cni.AddNetworkList(context.Background(), n.list, rt(cid, netns))
		if err != nil {
			return err
		}
		res, err = current.NewResultFromResult(r)
		return err
	})
	return res, err
}

func (n *testNode) mustAdd(cid string, pod ns.NetNS) *current.Result {
	n.t.Helper()
	r, err := n.add(cid, pod.Path())
	if err != nil {
		n.t.Fatalf("ADD %s: %v", cid, err)
	}
	return r
}

func (n *testNode) check(cid, netns string) error {
	return n.inNode(func() error { return n.cni.CheckNetworkList(context.Background(), n.list, rt(cid, netns)) })
}

func (n *testNode) del(cid, netns string) error {
	return n.inNode(func() error { return n.cni.DelNetworkList(context.Background(), n.list, rt(cid, netns)) })
}

func (n *testNode) allocations() map[string]netip.Addr {
	n.t.Helper()
	s, err := ipam.Open(n.dataDir)
	if err != nil {
		n.t.Fatal(err)
	}
	l, err := s.List()
	if err != nil {
		n.t.Fatal(err)
	}
	m := map[string]netip.Addr{}
	for _, al := range l {
		m[al.ContainerID] = al.IP
	}
	return m
}

// hostLink returns the node's link named name, or nil.
func (n *testNode) hostLink(name string) netlink.Link {
	var link netlink.Link
	_ = n.inNode(func() error {
		link, _ = netlink.LinkByName(name)
		return nil
	})
	return link
}

// waitGone polls until the node has no link named name.
func (n *testNode) waitGone(name string) {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.hostLink(name) != nil {
		if time.Now().After(deadline) {
			n.t.Fatalf("host link %s still exists", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func cniCode(err error) uint {
	var e *types.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func podIP(t *testing.T, r *current.Result) netip.Addr {
	t.Helper()
	if len(r.IPs) != 1 {
		t.Fatalf("result has %d IPs: %v", len(r.IPs), r)
	}
	a, _ := netip.AddrFromSlice(r.IPs[0].Address.IP.To4())
	return a
}

// ping sends ICMP echo requests from src inside pod to dst until one is
// answered or the deadline passes.
func ping(pod ns.NetNS, src, dst netip.Addr) error {
	return pod.Do(func(ns.NetNS) error {
		c, err := icmp.ListenPacket("ip4:icmp", src.String())
		if err != nil {
			return err
		}
		defer c.Close()
		id := os.Getpid() & 0xffff
		buf := make([]byte, 1500)
		deadline := time.Now().Add(5 * time.Second)
		for seq := 1; time.Now().Before(deadline); seq++ {
			msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("weft")}}
			b, _ := msg.Marshal(nil)
			if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
				return fmt.Errorf("send echo to %v: %w", dst, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			for {
				nr, peer, err := c.ReadFrom(buf)
				if err != nil {
					break // timeout: send the next echo
				}
				m, err := icmp.ParseMessage(1, buf[:nr])
				if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
					continue
				}
				if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && peer.String() == dst.String() {
					return nil
				}
			}
		}
		return fmt.Errorf("no echo reply from %v to %v", dst, src)
	})
}

func TestNetnsAddCheckDel(t *testing.T) {
	n := newTestNode(t, true)
	pod1, pod2 := newNS(t), newNS(t)
	r1 := n.mustAdd("pod1", pod1)
	r2 := n.mustAdd("pod2", pod2)
	ip1, ip2 := podIP(t, r1), podIP(t, r2)
	gw := netip.MustParseAddr(testGW)
	if ip1 == ip2 || !netip.MustParsePrefix(testBlock).Contains(ip1) || ip1 == gw {
		t.Fatalf("pod addresses %v %v", ip1, ip2)
	}
	if len(r1.Interfaces) != 2 || r1.Interfaces[1].Sandbox != pod1.Path() || r1.Interfaces[0].Name != HostVethName(ipam.Attachment{ContainerID: "pod1", IfName: "eth0"}) {
		t.Fatalf("result interfaces: %+v %+v", r1.Interfaces[0], r1.Interfaces[1])
	}

	// The pod end: eth0 with ip/32, the MTU, and the two routes.
	err := pod1.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if link.Attrs().MTU != testMTU {
			return fmt.Errorf("pod MTU %d, want %d", link.Attrs().MTU, testMTU)
		}
		addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != ip1.String()+"/32" {
			return fmt.Errorf("pod addresses %v, want %v/32", addrs, ip1)
		}
		routes, _ := netlink.RouteList(link, netlink.FAMILY_V4)
		var got []string
		for _, r := range routes {
			dst := "0.0.0.0/0" // older netlink reports the default route with a nil Dst
			if r.Dst != nil {
				dst = r.Dst.String()
			}
			got = append(got, fmt.Sprintf("%v via %v scope %v", dst, r.Gw, r.Scope))
		}
		want := []string{"0.0.0.0/0 via 10.244.7.1 scope universe", "10.244.7.1/32 via <nil> scope link"}
		if strings.Join(got, "; ") != strings.Join(want, "; ") {
			return fmt.Errorf("pod routes %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// The host end: gateway/32, MTU, up, forwarding, podIP/32 src gateway.
	host := r1.Interfaces[0].Name
	err = n.inNode(func() error {
		link, err := netlink.LinkByName(host)
		if err != nil {
			return err
		}
		if link.Attrs().MTU != testMTU || link.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("host veth MTU %d flags %v", link.Attrs().MTU, link.Attrs().Flags)
		}
		addrs, _ := netlink.AddrList(link, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != testGW+"/32" {
			return fmt.Errorf("host veth addresses %v", addrs)
		}
		routes, _ := netlink.RouteList(link, netlink.FAMILY_V4)
		if len(routes) != 1 || routes[0].Dst.String() != ip1.String()+"/32" || routes[0].Scope != netlink.SCOPE_LINK || routes[0].Src.String() != testGW {
			return fmt.Errorf("host routes %+v", routes)
		}
		fwd, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + host + "/forwarding")
		if err != nil || strings.TrimSpace(string(fwd)) != "1" {
			return fmt.Errorf("forwarding on %s = %q, %v", host, fwd, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := ping(pod1, ip1, gw); err != nil {
		t.Fatalf("pod1 -> gateway: %v", err)
	}
	if err := ping(pod1, ip1, ip2); err != nil {
		t.Fatalf("pod1 -> pod2 via the host: %v", err)
	}

	if err := n.check("pod1", pod1.Path()); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}
	// A repeated ADD of a live attachment fails and breaks nothing.
	if _, err := n.add("pod1", pod1.Path()); err == nil {
		t.Fatal("repeated ADD succeeded")
	}
	if err := n.check("pod1", pod1.Path()); err != nil {
		t.Fatalf("CHECK after the failed repeat ADD: %v", err)
	}
	if got := n.allocations()["pod1"]; got != ip1 {
		t.Fatalf("reservation after repeat ADD = %v, want %v", got, ip1)
	}

	// Break the pod: CHECK must notice.
	err = pod1.Do(func(ns.NetNS) error {
		link, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		def := defaultDst(gw)
		return netlink.RouteDel(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: &def, Gw: gw.AsSlice()})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = n.check("pod1", pod1.Path())
	if cniCode(err) != CodeCheckFailed || !strings.Contains(err.Error(), "default route") {
		t.Fatalf("CHECK after deleting the default route = %v, want code %d naming it", err, CodeCheckFailed)
	}

	// And the host side: pod2's host route.
	err = n.inNode(func() error {
		return netlink.RouteDel(&netlink.Route{Dst: host32(ip2), LinkIndex: n.hostLink(r2.Interfaces[0].Name).Attrs().Index,
			Scope: netlink.SCOPE_LINK})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.check("pod2", pod2.Path()); cniCode(err) != CodeCheckFailed || !strings.Contains(err.Error(), "host route") {
		t.Fatalf("CHECK after deleting the host route = %v", err)
	}
	// Restore it so pod2 still works for the rest of the test.
	err = n.inNode(func() error {
		return netlink.RouteAdd(&netlink.Route{Dst: host32(ip2), LinkIndex: n.hostLink(r2.Interfaces[0].Name).Attrs().Index,
			Scope: netlink.SCOPE_LINK, Src: gw.AsSlice()})
	})
	if err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 2; i++ {
		if err := n.del("pod1", pod1.Path()); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
	}
	n.waitGone(host)
	if _, held := n.allocations()["pod1"]; held {
		t.Fatal("DEL left pod1's reservation")
	}
	err = pod1.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName("eth0"); err == nil {
			return errors.New("eth0 still in the pod after DEL")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// pod2 is untouched by pod1's DEL: the shared gateway address still
	// answers on its veth.
	if err := ping(pod2, ip2, gw); err != nil {
		t.Fatalf("pod2 -> gateway after pod1's DEL: %v", err)
	}
}

func TestNetnsDelAfterNetnsGone(t *testing.T) {
	n := newTestNode(t, true)
	pod := newNS(t)
	r := n.mustAdd("gone", pod)
	path := pod.Path()
	removeNS(pod)
	if err := n.del("gone", path); err != nil {
		t.Fatalf("DEL after the netns is gone: %v", err)
	}
	n.waitGone(r.Interfaces[0].Name)
	if len(n.allocations()) != 0 {
		t.Fatalf("reservations left: %v", n.allocations())
	}
	// DEL of an attachment that was never added, and with no netns at all.
	if err := n.del("never-added", ""); err != nil {
		t.Fatalf("DEL of a never-added attachment: %v", err)
	}
}

func TestNetnsStatus(t *testing.T) {
	n := newTestNode(t, false)
	status := func() error {
		return n.inNode(func() error { return n.cni.GetStatusNetworkList(context.Background(), n.list) })
	}
	if err := status(); cniCode(err) != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS without a state file = %v, want code 50", err)
	}
	pod := newNS(t)
	if _, err := n.add("early", pod.Path()); cniCode(err) != types.ErrTryAgainLater {
		t.Fatalf("ADD without a state file = %v, want code 11", err)
	}
	n.writeState()
	if err := status(); err != nil {
		t.Fatalf("STATUS with a state file: %v", err)
	}
}

func TestNetnsGC(t *testing.T) {
	n := newTestNode(t, true)
	pods := map[string]ns.NetNS{"keep": newNS(t), "stale1": newNS(t), "stale2": newNS(t)}
	hosts := map[string]string{}
	for cid, pod := range pods {
		hosts[cid] = n.mustAdd(cid, pod).Interfaces[0].Name
	}
	// stale2's reservation is already gone (say, released by hand): its
	// veth is found by the alias weft-cni put on it.
	s, err := ipam.Open(n.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if rel, err := s.Release(ipam.Attachment{ContainerID: "stale2", IfName: "eth0"}, netip.Addr{}); err != nil || len(rel) != 1 {
		t.Fatalf("release stale2 by hand: %v %v", rel, err)
	}
	// A runtime that lost its cache: libcni itself issues no DELs, so
	// only the plugin's GC can clean up.
	gcCNI := libcni.NewCNIConfigWithCacheDir([]string{n.binDir}, t.TempDir(), nil)
	err = n.inNode(func() error {
		return gcCNI.GCNetworkList(context.Background(), n.list, &libcni.GCArgs{
			ValidAttachments: []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}},
		})
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	allocs := n.allocations()
	if _, ok := allocs["keep"]; !ok || len(allocs) != 1 {
		t.Fatalf("after GC reservations %v, want only keep", allocs)
	}
	n.waitGone(hosts["stale1"])
	n.waitGone(hosts["stale2"])
	if n.hostLink(hosts["keep"]) == nil {
		t.Fatal("GC deleted the kept attachment's veth")
	}
	if err := n.check("keep", pods["keep"].Path()); err != nil {
		t.Fatalf("CHECK of the kept attachment after GC: %v", err)
	}
}

func TestNetnsConcurrentAdds(t *testing.T) {
	n := newTestNode(t, true)
	const count = 50
	pods := make([]ns.NetNS, count)
	for i := range pods {
		pods[i] = newNS(t)
	}
	ips := make([]netip.Addr, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := n.add(fmt.Sprintf("c%02d", i), pods[i].Path())
			if err != nil {
				errs[i] = err
				return
			}
			ips[i] = podIP(t, r)
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i := range ips {
		if errs[i] != nil {
			t.Fatalf("ADD %d: %v", i, errs[i])
		}
		if j, dup := seen[ips[i]]; dup {
			t.Fatalf("pods %d and %d both got %v", j, i, ips[i])
		}
		seen[ips[i]] = i
	}
	if a := n.allocations(); len(a) != count {
		t.Fatalf("%d reservations, want %d", len(a), count)
	}
	// Concurrent DELs release everything.
	for i := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.del(fmt.Sprintf("c%02d", i), pods[i].Path())
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if a := n.allocations(); len(a) != 0 {
		t.Fatalf("reservations left after DEL: %v", a)
	}
}

func TestNetnsFailedAddLeavesNoReservation(t *testing.T) {
	n := newTestNode(t, true)

	// CNI_IFNAME already exists in the pod (a veth pair of the pod's
	// own, eth0/peer0): fails after allocating.
	pod := newNS(t)
	err := pod.Do(func(ns.NetNS) error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.add("taken", pod.Path()); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("ADD into a pod that has eth0 = %v, want 'already exists'", err)
	}
	if n.hostLink(HostVethName(ipam.Attachment{ContainerID: "taken", IfName: "eth0"})) != nil {
		t.Fatal("failed ADD left its host veth")
	}
	err = pod.Do(func(ns.NetNS) error {
		for _, name := range []string{"eth0", "peer0"} {
			if _, err := netlink.LinkByName(name); err != nil {
				return fmt.Errorf("the pod's own %s was disturbed: %v", name, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Invalid netns paths.
	notNS := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notNS, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		code uint
	}{
		{filepath.Join(t.TempDir(), "missing"), types.ErrUnknownContainer},
		{notNS, types.ErrInvalidEnvironmentVariables},
	} {
		if _, err := n.add("badns", tc.path); cniCode(err) != tc.code {
			t.Fatalf("ADD with CNI_NETNS=%s = %v, want code %d", tc.path, err, tc.code)
		}
	}
	if a := n.allocations(); len(a) != 0 {
		t.Fatalf("failed ADDs left reservations: %v", a)
	}
	// The address a failed ADD took is usable by the next pod.
	if r := n.mustAdd("next", newNS(t)); podIP(t, r).String() != "10.244.7.3" && podIP(t, r).String() != "10.244.7.2" {
		t.Fatalf("next pod got %v", podIP(t, r))
	}

	// A second weft interface in one netns: refused by name with
	// CodeSecondInterface, by the IPAM check (same container, eth1) and
	// by the data path's (another container ID, same netns); neither
	// reserves an address or disturbs the first interface.
	one := newNS(t)
	first := n.mustAdd("one", one)
	second := rt("one", one.Path())
	second.IfName = "eth1"
	err = n.inNode(func() error {
		_, err := n.cni.AddNetworkList(context.Background(), n.list, second)
		return err
	})
	if cniCode(err) != CodeSecondInterface || !strings.Contains(err.Error(), `"eth0" exists`) {
		t.Fatalf("ADD of eth1 beside eth0 = %v, want code %d naming eth0", err, CodeSecondInterface)
	}
	other := rt("other", one.Path())
	other.IfName = "net1"
	err = n.inNode(func() error {
		_, err := n.cni.AddNetworkList(context.Background(), n.list, other)
		return err
	})
	if cniCode(err) != CodeSecondInterface || !strings.Contains(err.Error(), `"eth0" exists`) {
		t.Fatalf("ADD of another container into a netns with a weft interface = %v, want code %d", err, CodeSecondInterface)
	}
	if a := n.allocations(); len(a) != 2 || a["one"] != podIP(t, first) {
		t.Fatalf("after refused second interfaces: %v", a)
	}
	if err := n.check("one", one.Path()); err != nil {
		t.Fatalf("the first interface after refused second ones: %v", err)
	}
	if err := n.del("one", one.Path()); err != nil {
		t.Fatal(err)
	}
}
