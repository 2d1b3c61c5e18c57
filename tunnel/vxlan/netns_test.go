package vxlan

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/nodestate"
	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/tunnel/internal/nstest"
)

type testNode struct {
	ns, podNS, iface string
	local            tunnel.Local
	pod              netip.Addr
	node, probe      *nstest.Node
	info             tunnel.Info
}

func newTestNode(t *testing.T, ns, name string, underlay netip.Addr, cidr string) *testNode {
	block := netip.MustParsePrefix(cidr)
	n := &testNode{
		ns: ns, iface: nstest.Unique("wtx"),
		local: tunnel.Local{Name: name, UnderlayIP: underlay, PodCIDR: block, Gateway: nodestate.GatewayFor(block)},
		pod:   netip.AddrFrom4([4]byte(block.Addr().As4())).Next().Next().Next().Next().Next().Next().Next().Next().Next().Next(),
	}
	n.podNS = nstest.AddPod(t, ns, n.pod, 1350)
	n.probe = nstest.StartNode(t, n.podNS)
	return n
}

func (n *testNode) start(t *testing.T) {
	t.Helper()
	n.node = nstest.StartNode(t, n.ns)
	info, err := n.node.Setup(nstest.Config{Interface: n.iface, VNI: 42}, n.local)
	if err != nil {
		t.Fatalf("Setup in %s: %v", n.ns, err)
	}
	n.info = info
}

func (n *testNode) peer() tunnel.Peer {
	return tunnel.Peer{Name: n.local.Name, UnderlayIP: n.local.UnderlayIP, Port: n.info.Port,
		VTEPMAC: n.info.VTEPMAC, PodCIDR: n.local.PodCIDR}
}

func apply(t *testing.T, n *testNode, peers ...*testNode) {
	t.Helper()
	var ps []tunnel.Peer
	for _, p := range peers {
		ps = append(ps, p.peer())
	}
	if err := n.node.Apply(ps); err != nil {
		t.Fatalf("Apply on %s: %v", n.local.Name, err)
	}
}

// TestTunnelBetweenNamespaces runs two VXLAN nodes in two namespaces joined
// by a veth pair with MTU 1400 and checks traffic, the encapsulation on the
// wire, drift repair of route, neighbour and FDB entry, peer departure, and
// that a restart keeps the device and its MAC.
func TestTunnelBetweenNamespaces(t *testing.T) {
	nstest.RequireRoot(t)
	pair := nstest.NewPair(t, 1400)
	a := newTestNode(t, pair.A, "node-a", pair.UnderA, "10.244.1.0/24")
	b := newTestNode(t, pair.B, "node-b", pair.UnderB, "10.244.2.0/24")
	a.start(t)
	b.start(t)

	for _, n := range []*testNode{a, b} {
		if n.info.MTU != 1350 {
			t.Errorf("%s: Setup reported MTU %d, want 1350", n.local.Name, n.info.MTU)
		}
		out := nstest.Run(t, "ip", "-d", "-n", n.ns, "-o", "link", "show", n.iface)
		for _, want := range []string{" mtu 1350 ", ",UP", "vxlan id 42 ", "local " + n.local.UnderlayIP.String(),
			"dstport 4789", "nolearning", "link/ether " + n.info.VTEPMAC.String()} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: device lacks %q: %s", n.local.Name, want, out)
			}
		}
		if n.info.VTEPMAC.String() != MACFor(n.local.Name).String() {
			t.Errorf("%s: VTEP MAC %v is not derived from the node name", n.local.Name, n.info.VTEPMAC)
		}
	}

	apply(t, a, b)
	apply(t, b, a)
	// state is node-a's weft routes, permanent neighbours and FDB entries
	// on the device, one per line, spaces trimmed.
	state := func() string {
		out := strings.Join([]string{
			nstest.Run(t, "ip", "-n", a.ns, "route", "show", "dev", a.iface, "proto", strconv.Itoa(tunnel.RouteProtocol)),
			nstest.Run(t, "ip", "-n", a.ns, "neigh", "show", "dev", a.iface, "nud", "permanent"),
			nstest.Run(t, "bridge", "-n", a.ns, "fdb", "show", "dev", a.iface),
		}, "\n")
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if l = strings.Join(strings.Fields(l), " "); l != "" {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	wantState := fmt.Sprintf("10.244.2.0/24 via 10.244.2.1 src 10.244.1.1 onlink\n"+
		"10.244.2.1 lladdr %s PERMANENT\n"+
		"%s dst 192.168.77.2 self permanent", b.info.VTEPMAC, b.info.VTEPMAC)
	if got := state(); got != wantState {
		t.Errorf("node-a state:\n%s\nwant:\n%s", got, wantState)
	}

	capture := nstest.StartCapture(t, pair.A, pair.VethA)
	checkTraffic(t, a, b)
	udp := 0
	for _, l := range capture.Stop() {
		if strings.Contains(l, ".4789: VXLAN") && strings.Contains(l, "vni 42") {
			udp++
		}
	}
	if udp == 0 {
		t.Error("no VXLAN (UDP 4789, vni 42) packets on the underlay")
	}

	// Drift: delete route, neighbour and FDB entry by hand; Apply repairs.
	nstest.Run(t, "ip", "-n", a.ns, "route", "del", "10.244.2.0/24")
	nstest.Run(t, "ip", "-n", a.ns, "neigh", "del", "10.244.2.1", "dev", a.iface)
	nstest.Run(t, "bridge", "-n", a.ns, "fdb", "del", b.info.VTEPMAC.String(), "dev", a.iface, "dst", "192.168.77.2", "self")
	if got := state(); got != "" {
		t.Fatalf("state after deleting by hand: %q", got)
	}
	apply(t, a, b)
	if got := state(); got != wantState {
		t.Errorf("after drift repair:\n%s\nwant:\n%s", got, wantState)
	}
	checkTraffic(t, a, b)

	// Departure.
	if err := a.node.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "" {
		t.Errorf("after departure, state = %q, want nothing", got)
	}

	// Restart: Close(false) leaves the device; the MAC is the same after.
	apply(t, a, b)
	oldMAC := a.info.VTEPMAC.String()
	if err := a.node.Close(false); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != wantState {
		t.Errorf("Close(false) changed the data plane:\n%s", got)
	}
	checkTraffic(t, a, b) // no agent running on node-a
	a.start(t)
	if a.info.VTEPMAC.String() != oldMAC {
		t.Errorf("VTEP MAC changed across restart: %s → %s", oldMAC, a.info.VTEPMAC)
	}
	apply(t, a, b)
	if err := a.node.Close(true); err != nil {
		t.Fatal(err)
	}
	if _, err := nstest.Output("ip", "-n", a.ns, "link", "show", a.iface); err == nil {
		t.Errorf("device %s still exists after Close(true)", a.iface)
	}
	if got := strings.TrimSpace(nstest.Run(t, "ip", "-n", a.ns, "route", "show", "proto", "87")); got != "" {
		t.Errorf("routes left after Close(true): %q", got)
	}
	if err := b.node.Close(true); err != nil {
		t.Fatal(err)
	}
}

func checkTraffic(t *testing.T, a, b *testNode) {
	t.Helper()
	defer func() {
		if t.Failed() {
			nstest.Dump(t, a.ns, b.ns, a.podNS, b.podNS)
		}
	}()
	nstest.Eventually(t, 10*time.Second, "ping pod to pod", func() error {
		return a.probe.Ping(a.pod.String(), b.pod.String())
	})
	addr := fmt.Sprintf("%s:%d", b.pod, 7777)
	if err := b.probe.Listen(addr); err != nil && !strings.Contains(err.Error(), "address already in use") {
		t.Fatal(err)
	}
	if err := a.probe.Dial(a.pod.String(), addr, 256<<10); err != nil {
		t.Fatalf("TCP echo %v → %s: %v", a.pod, addr, err)
	}
}
