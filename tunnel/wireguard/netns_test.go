package wireguard

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/nodestate"
	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/tunnel/internal/nstest"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

type testNode struct {
	ns      string
	iface   string
	port    int
	keyFile string
	local   tunnel.Local
	pod     netip.Addr
	podNS   string
	node    *nstest.Node
	probe   *nstest.Node // helper in the pod namespace, for traffic only
	info    tunnel.Info
	boot    uint32 // the Boot it publishes; start changes it, as a new agent's gossip does
}

func (n *testNode) peer() tunnel.Peer {
	return tunnel.Peer{
		Name: n.local.Name, UnderlayIP: n.local.UnderlayIP, Port: n.port,
		PublicKey: n.info.PublicKey, PodCIDR: n.local.PodCIDR, Boot: n.boot,
	}
}

func (n *testNode) start(t *testing.T) {
	t.Helper()
	n.node = nstest.StartNode(t, n.ns)
	info, err := n.node.Setup(nstest.Config{Interface: n.iface, Port: n.port, KeyFile: n.keyFile}, n.local)
	if err != nil {
		t.Fatalf("Setup in %s: %v", n.ns, err)
	}
	n.info = info
	n.boot++
}

func newTestNode(t *testing.T, ns, name string, underlay netip.Addr, cidr string, port int) *testNode {
	block := netip.MustParsePrefix(cidr)
	n := &testNode{
		ns: ns, iface: nstest.Unique("wtg"), port: port,
		keyFile: filepath.Join(t.TempDir(), "keys", "wireguard.key"),
		local: tunnel.Local{
			Name: name, UnderlayIP: underlay, PodCIDR: block, Gateway: nodestate.GatewayFor(block),
		},
		pod: block.Addr().Next().Next().Next().Next().Next().Next().Next().Next().Next().Next(), // .10
	}
	// A helper killed by the test's cleanup leaves its UAPI socket behind.
	t.Cleanup(func() { os.Remove("/var/run/wireguard/" + n.iface + ".sock") })
	n.podNS = nstest.AddPod(t, ns, n.pod, 1340)
	n.probe = nstest.StartNode(t, n.podNS)
	return n
}

// TestTunnelBetweenNamespaces runs two nodes in two namespaces joined by a
// veth pair with MTU 1400 and checks traffic, encryption on the wire, the
// device as wg(8) sees it, drift repair, peer departure and key reuse.
func TestTunnelBetweenNamespaces(t *testing.T) {
	nstest.RequireRoot(t)
	pair := nstest.NewPair(t, 1400)
	a := newTestNode(t, pair.A, "node-a", pair.UnderA, "10.244.1.0/24", 51820)
	b := newTestNode(t, pair.B, "node-b", pair.UnderB, "10.244.2.0/24", 51821)
	a.start(t)
	b.start(t)

	// MTU: detected from the 1400-byte underlay, minus 60.
	for _, n := range []*testNode{a, b} {
		if n.info.MTU != 1340 {
			t.Errorf("%s: Setup reported MTU %d, want 1340", n.local.Name, n.info.MTU)
		}
		out := nstest.Run(t, "ip", "-n", n.ns, "-o", "link", "show", n.iface)
		if !strings.Contains(out, " mtu 1340 ") || !strings.Contains(out, ",UP") {
			t.Errorf("%s: device is not up with MTU 1340: %s", n.local.Name, out)
		}
		out = nstest.Run(t, "ip", "-n", n.ns, "-o", "addr", "show", "dev", n.iface)
		if !strings.Contains(out, n.local.Gateway.String()+"/32") {
			t.Errorf("%s: gateway %v/32 not on device: %s", n.local.Name, n.local.Gateway, out)
		}
		fi, err := os.Stat(n.keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: key file mode %v, want 0600", n.local.Name, fi.Mode().Perm())
		}
	}

	applyPeers(t, a, b)
	applyPeers(t, b, a)

	// The pair shakes hands as soon as each has the other as a peer, before
	// any traffic: the side whose key sorts first starts it.
	nstest.Eventually(t, 10*time.Second, "a handshake before any traffic", func() error {
		for _, n := range []struct{ from, to *testNode }{{a, b}, {b, a}} {
			hs := nstest.Run(t, "ip", "netns", "exec", n.from.ns, "wg", "show", n.from.iface, "latest-handshakes")
			if handshakeOf(hs, n.to.info.PublicKey) == 0 {
				return fmt.Errorf("%s has no handshake with %s yet", n.from.local.Name, n.to.local.Name)
			}
		}
		return nil
	})

	capture := nstest.StartCapture(t, pair.A, pair.VethA)
	checkTraffic(t, a, b)
	lines := capture.Stop()
	checkWire(t, lines, a, b)

	// wg(8) in node A sees node B with a handshake.
	hs := nstest.Run(t, "ip", "netns", "exec", a.ns, "wg", "show", a.iface, "latest-handshakes")
	if ts := handshakeOf(hs, b.info.PublicKey); ts == 0 {
		t.Errorf("wg show %s latest-handshakes has no handshake with %s:\n%s", a.iface, b.info.PublicKey, hs)
	}
	stats, err := a.node.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || stats[0].Name != "node-b" || stats[0].LastHandshake.IsZero() ||
		stats[0].RxBytes == 0 || stats[0].TxBytes == 0 || stats[0].Endpoint != "192.168.77.2:51821" {
		t.Errorf("Stats = %+v, want node-b at 192.168.77.2:51821 with a handshake and traffic", stats)
	}

	// Drift: delete the route and the peer by hand; Apply brings both back.
	route := "10.244.2.0/24"
	nstest.Run(t, "ip", "-n", a.ns, "route", "del", route, "dev", a.iface)
	nstest.Run(t, "ip", "netns", "exec", a.ns, "wg", "set", a.iface, "peer", b.info.PublicKey, "remove")
	if got := routesOf(t, a); got != "" {
		t.Fatalf("route still there after deleting it: %q", got)
	}
	applyPeers(t, a, b)
	if got, want := routesOf(t, a), route+" dev "+a.iface+" scope link src 10.244.1.1"; got != want {
		t.Errorf("after drift repair, weft routes = %q, want %q", got, want)
	}
	peers := nstest.Run(t, "ip", "netns", "exec", a.ns, "wg", "show", a.iface, "allowed-ips")
	if !strings.Contains(peers, b.info.PublicKey+"\t"+route) {
		t.Errorf("after drift repair, peer missing: %q", peers)
	}
	checkTraffic(t, a, b)

	// Departure: no peers, no routes, no WireGuard peers.
	if err := a.node.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if got := routesOf(t, a); got != "" {
		t.Errorf("after departure, weft routes = %q, want none", got)
	}
	if got := strings.TrimSpace(nstest.Run(t, "ip", "netns", "exec", a.ns, "wg", "show", a.iface, "peers")); got != "" {
		t.Errorf("after departure, peers = %q, want none", got)
	}

	// Restart: the embedded device goes with the process; the key is reused.
	sock := "/var/run/wireguard/" + a.iface + ".sock"
	oldKey := a.info.PublicKey
	if err := a.node.Close(false); err != nil {
		t.Fatal(err)
	}
	if _, err := nstest.Output("ip", "-n", a.ns, "link", "show", a.iface); err == nil {
		t.Log("device survived Close(false): kernel WireGuard")
	}
	a.start(t)
	if a.info.PublicKey != oldKey {
		t.Errorf("public key changed across restart: %s → %s", oldKey, a.info.PublicKey)
	}
	applyPeers(t, a, b)
	checkTraffic(t, a, b)
	if err := a.node.Close(true); err != nil {
		t.Fatal(err)
	}
	if _, err := nstest.Output("ip", "-n", a.ns, "link", "show", a.iface); err == nil {
		t.Errorf("device %s still exists after Close(true)", a.iface)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("UAPI socket %s still exists after Close(true): %v", sock, err)
	}
	if err := b.node.Close(true); err != nil {
		t.Fatal(err)
	}
}

// TestRestartedPeerGetsNewSession restarts the node whose key sorts last,
// so that it does not start the handshake itself, and checks that the other
// node, told of the restart by the peer's new Boot, replaces the session it
// still holds: traffic from its pod flows again at once, not when
// WireGuard gives up on the old keys (15 s without an answer).
func TestRestartedPeerGetsNewSession(t *testing.T) {
	nstest.RequireRoot(t)
	pair := nstest.NewPair(t, 1400)
	a := newTestNode(t, pair.A, "node-a", pair.UnderA, "10.244.1.0/24", 51820)
	b := newTestNode(t, pair.B, "node-b", pair.UnderB, "10.244.2.0/24", 51821)
	a.start(t)
	b.start(t)
	first, last := a, b
	if keyBytes(t, a) > keyBytes(t, b) {
		first, last = b, a
	}
	applyPeers(t, first, last)
	applyPeers(t, last, first)
	nstest.Eventually(t, 10*time.Second, "traffic before the restart", func() error {
		return first.probe.Ping(first.pod.String(), last.pod.String())
	})

	if err := last.node.Close(false); err != nil {
		t.Fatal(err)
	}
	last.start(t)
	applyPeers(t, last, first)
	applyPeers(t, first, last) // the new Boot, as gossip brings it
	start := time.Now()
	nstest.Eventually(t, 2*time.Second, "traffic to the restarted node", func() error {
		return first.probe.Ping(first.pod.String(), last.pod.String())
	})
	t.Logf("traffic resumed %s after the peer's new Boot was applied", time.Since(start).Round(time.Millisecond))
	for _, n := range []*testNode{a, b} {
		if err := n.node.Close(true); err != nil {
			t.Fatal(err)
		}
	}
}

// keyBytes is n's public key as the raw bytes WireGuard keys sort by.
func keyBytes(t *testing.T, n *testNode) string {
	t.Helper()
	k, err := wgtypes.ParseKey(n.info.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(k[:])
}

func applyPeers(t *testing.T, n *testNode, peers ...*testNode) {
	t.Helper()
	var ps []tunnel.Peer
	for _, p := range peers {
		ps = append(ps, p.peer())
	}
	if err := n.node.Apply(ps); err != nil {
		t.Fatalf("Apply on %s: %v", n.local.Name, err)
	}
}

// checkTraffic pings from a's pod to b's pod and echoes 256 KiB over TCP,
// which only works if full-size packets fit the tunnel.
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

var udpLine = regexp.MustCompile(`\bIP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): UDP`)

// checkWire asserts every IP packet on the underlay is UDP between the two
// nodes' WireGuard ports, and no pod address is visible.
func checkWire(t *testing.T, lines []string, a, b *testNode) {
	t.Helper()
	ports := map[string]bool{strconv.Itoa(a.port): true, strconv.Itoa(b.port): true}
	udp := 0
	for _, l := range lines {
		if strings.Contains(l, "10.244.") {
			t.Errorf("pod address visible on the underlay: %s", l)
		}
		if !strings.Contains(l, " IP ") && !strings.Contains(l, " IP6 ") {
			continue // ARP
		}
		m := udpLine.FindStringSubmatch(l)
		if m == nil || !ports[m[2]] || !ports[m[4]] {
			t.Errorf("underlay packet is not WireGuard UDP: %s", l)
			continue
		}
		udp++
	}
	t.Logf("underlay capture: %d lines, %d WireGuard UDP packets", len(lines), udp)
	if udp == 0 {
		t.Errorf("no WireGuard packets captured on the underlay (%d lines)", len(lines))
	}
}

func handshakeOf(out, key string) int64 {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == key {
			ts, _ := strconv.ParseInt(f[1], 10, 64)
			return ts
		}
	}
	return 0
}

// routesOf returns the weft-tagged routes in n's namespace, one per line.
func routesOf(t *testing.T, n *testNode) string {
	t.Helper()
	return strings.TrimSpace(nstest.Run(t, "ip", "-n", n.ns, "route", "show", "proto", strconv.Itoa(tunnel.RouteProtocol)))
}
