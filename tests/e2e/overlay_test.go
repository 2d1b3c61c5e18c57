package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/lab"
	"github.com/weftnet/weft/lab/probe"
)

const (
	underlayMTU = 1400 // deliberately not 1500, as on many clouds
	podPort     = 8080
	nodePort    = 8081
	worldPort   = 8082
)

// overhead per backend on an IPv4 underlay.
var overhead = map[string]int{"wireguard": 60, "vxlan": 50}

func TestOverlayWireGuard(t *testing.T) { testOverlay(t, "wireguard") }
func TestOverlayVXLAN(t *testing.T)     { testOverlay(t, "vxlan") }

func testOverlay(t *testing.T, backend string) {
	c := newCluster(t, "--nodes", "3", "--backend", backend, "--mtu", fmt.Sprint(underlayMTU), "--pods-per-node", "2")
	st := c.status()
	if len(st.Nodes) != 3 || len(st.Pods) != 6 {
		t.Fatalf("lab has %d nodes and %d pods, want 3 and 6", len(st.Nodes), len(st.Pods))
	}
	leases := map[string]string{}
	for _, n := range st.Nodes {
		p, err := netip.ParsePrefix(n.PodCIDR)
		if err != nil || !netip.MustParsePrefix("10.244.0.0/16").Contains(p.Addr()) || p.Bits() != 24 {
			t.Fatalf("node %s has lease %q, want a /24 of 10.244.0.0/16", n.Name, n.PodCIDR)
		}
		if other, dup := leases[n.PodCIDR]; dup {
			t.Fatalf("nodes %s and %s hold the same lease %s", other, n.Name, n.PodCIDR)
		}
		leases[n.PodCIDR] = n.Name
	}

	servers := startPodServers(t, st.Pods)
	defer closeAll(servers)

	t.Run("pod MTU is underlay minus overhead", func(t *testing.T) {
		want := underlayMTU - overhead[backend]
		for _, p := range st.Pods {
			out, err := exec.Command("ip", "-n", p.NetNS, "-o", "link", "show", "eth0").CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v %s", p.Name, err, out)
			}
			if !strings.Contains(string(out), fmt.Sprintf(" mtu %d ", want)) {
				t.Errorf("pod %s/%s eth0: want mtu %d, got %s", p.Node, p.Name, want, out)
			}
		}
	})

	t.Run("pods reach pods on other nodes over TCP and UDP without NAT", func(t *testing.T) {
		checkPodMatrix(t, st.Pods, 15*time.Second)
	})

	t.Run("nodes reach remote pods and pods reach remote nodes", func(t *testing.T) {
		for _, n := range st.Nodes {
			s, err := probe.Serve(c.nodeNSPath(n.Name), netip.AddrPortFrom(netip.MustParseAddr(n.UnderlayIP), nodePort))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, n := range st.Nodes {
			for _, p := range st.Pods {
				if p.Node == n.Name {
					continue
				}
				// node -> remote pod: the pod sees an address of the node's own pod block.
				seen, err := probe.TCP(ctx, c.nodeNSPath(n.Name), netip.AddrPortFrom(p.Addr(), podPort))
				if err != nil {
					t.Fatalf("node %s -> pod %s/%s: %v", n.Name, p.Node, p.Name, err)
				}
				if !netip.MustParsePrefix(n.PodCIDR).Contains(seen.Addr()) {
					t.Errorf("node %s -> pod %s/%s: pod saw %s, want an address of %s", n.Name, p.Node, p.Name, seen.Addr(), n.PodCIDR)
				}
				// pod -> remote node.
				if _, err := probe.TCP(ctx, p.NSPath(), netip.AddrPortFrom(netip.MustParseAddr(n.UnderlayIP), nodePort)); err != nil {
					t.Fatalf("pod %s/%s -> node %s: %v", p.Node, p.Name, n.Name, err)
				}
			}
		}
	})

	t.Run("pods reach the outside world with their node's address", func(t *testing.T) {
		world := netip.AddrPortFrom(lab.WorldAddr, worldPort)
		s, err := probe.Serve(lab.NetNSPath(c.layout.InetNS()), world)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		nodeIP := map[string]string{}
		for _, n := range st.Nodes {
			nodeIP[n.Name] = n.UnderlayIP
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, p := range st.Pods {
			seen, err := probe.TCP(ctx, p.NSPath(), world)
			if err != nil {
				t.Fatalf("pod %s/%s -> %s: %v", p.Node, p.Name, world, err)
			}
			if seen.Addr().String() != nodeIP[p.Node] {
				t.Errorf("pod %s/%s -> world: seen as %s, want its node's address %s", p.Node, p.Name, seen.Addr(), nodeIP[p.Node])
			}
		}
	})

	t.Run("health, readiness and metrics", func(t *testing.T) {
		checkMetrics(t, c, "n1", backend)
	})

	t.Run("drift is repaired within the resync interval", func(t *testing.T) {
		var n2Block string
		for _, n := range st.Nodes {
			if n.Name == "n2" {
				n2Block = n.PodCIDR
			}
		}
		ns := c.layout.NodeNS("n1")
		if out, err := exec.Command("ip", "-n", ns, "route", "del", n2Block).CombinedOutput(); err != nil {
			t.Fatalf("deleting n1's route to %s: %v %s", n2Block, err, out)
		}
		if backend == "wireguard" {
			key := c.mustWeft("lab", "exec", "--name", c.name, "n2", "--", "wg", "show", "weft0", "public-key")
			c.mustWeft("lab", "exec", "--name", c.name, "n1", "--", "wg", "set", "weft0", "peer", strings.TrimSpace(key), "remove")
		}
		if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "flush", "chain", "ip", "weft-nat", "postrouting").CombinedOutput(); err != nil {
			t.Fatalf("flushing n1's masquerade chain: %v %s", err, out)
		}
		took := eventually(t, 10*time.Second, "route, peer and masquerade rule restored", func() error {
			out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "chain", "ip", "weft-nat", "postrouting").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "masquerade") {
				return fmt.Errorf("no masquerade rule on n1 yet: %s", out)
			}
			out, err = exec.Command("ip", "-n", ns, "route", "show", n2Block).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) == "" {
				return fmt.Errorf("no route to %s on n1 yet", n2Block)
			}
			return reachAll(podsOn(st.Pods, "n1"), podsOn(st.Pods, "n2"), time.Second)
		})
		t.Logf("hand-deleted state repaired and traffic flowing again after %s (lab resync interval 2s)", took.Round(time.Millisecond))
	})

	if backend == "wireguard" {
		t.Run("underlay carries only WireGuard and gossip", func(t *testing.T) {
			checkUnderlayCapture(t, c, st.Pods)
		})
	}

	t.Run("agent killed and restarted keeps its lease and its pods", func(t *testing.T) {
		before := c.status()
		c.mustWeft("lab", "node", "stop", "n2", "--name", c.name)
		c.mustWeft("lab", "node", "start", "n2", "--name", c.name)
		after := c.status()
		for i := range before.Nodes {
			if before.Nodes[i].Name == "n2" && before.Nodes[i].PodCIDR != after.Nodes[i].PodCIDR {
				t.Fatalf("n2's lease changed across a restart: %s -> %s", before.Nodes[i].PodCIDR, after.Nodes[i].PodCIDR)
			}
		}
		checkPodMatrix(t, after.Pods, 20*time.Second)
	})

	t.Run("a node added is reachable within 5 seconds", func(t *testing.T) {
		c.mustWeft("lab", "node", "add", "n4", "--name", c.name)
		c.mustWeft("lab", "pod", "add", "n4", "p1", "--name", c.name)
		var newPod labPod
		for _, p := range c.pods() {
			if p.Node == "n4" {
				newPod = p
			}
		}
		s, err := probe.Serve(newPod.NSPath(), netip.AddrPortFrom(newPod.Addr(), podPort))
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
		took := eventually(t, 5*time.Second, "pods on n1..n3 reach the pod on n4", func() error {
			return reachAll(st.Pods, []labPod{newPod}, time.Second)
		})
		t.Logf("new node reachable from every other node %s after its agent was ready", took.Round(time.Millisecond))
	})

	t.Run("a node that leaves cleanly is dropped at once and cleans up", func(t *testing.T) {
		sock := c.layout.Node("n4").StatusSocket
		c.mustWeft("lab", "exec", "--name", c.name, "n4", "--", filepath.Join(binDir, "weft"), "leave", "--socket", sock)
		took := eventually(t, 3*time.Second, "n4 dropped by every other node", func() error {
			for _, n := range []string{"n1", "n2", "n3"} {
				as, err := c.agentStatus(n)
				if err != nil {
					return err
				}
				for _, p := range as.Peers {
					if p.Name == "n4" {
						return fmt.Errorf("%s still lists n4", n)
					}
				}
			}
			return nil
		})
		t.Logf("clean leave seen by every node in %s", took.Round(time.Millisecond))
		eventually(t, 5*time.Second, "n4 removed its own data plane", func() error {
			if _, err := os.Stat(c.layout.Node("n4").StateFile); err == nil {
				return fmt.Errorf("n4's state file is still there")
			}
			iface := map[string]string{"wireguard": "weft0", "vxlan": "weft-vxlan"}[backend]
			if err := exec.Command("ip", "-n", c.layout.NodeNS("n4"), "link", "show", iface).Run(); err == nil {
				return fmt.Errorf("n4 still has %s", iface)
			}
			return nil
		})
	})

	t.Run("a node taken away disappears from peers and routes", func(t *testing.T) {
		var gone string
		for _, n := range c.status().Nodes {
			if n.Name == "n3" {
				gone = n.PodCIDR
			}
		}
		c.mustWeft("lab", "node", "del", "n3", "--name", c.name)
		took := eventually(t, 30*time.Second, "n3 withdrawn everywhere", func() error {
			for _, n := range []string{"n1", "n2"} { // n4 has left
				as, err := c.agentStatus(n)
				if err != nil {
					return err
				}
				for _, p := range as.Peers {
					if p.Name == "n3" {
						return fmt.Errorf("%s still lists n3 as a peer", n)
					}
				}
				out, err := exec.Command("ip", "-n", c.layout.NodeNS(n), "route", "show", gone).CombinedOutput()
				if err != nil {
					return fmt.Errorf("%s: %v %s", n, err, out)
				}
				if strings.TrimSpace(string(out)) != "" {
					return fmt.Errorf("%s still routes n3's block: %s", n, out)
				}
			}
			return nil
		})
		t.Logf("departed node withdrawn from every peer and route table in %s", took.Round(time.Millisecond))
	})
}

func startPodServers(t *testing.T, pods []labPod) []*probe.Server {
	t.Helper()
	var servers []*probe.Server
	for _, p := range pods {
		s, err := probe.Serve(p.NSPath(), netip.AddrPortFrom(p.Addr(), podPort))
		if err != nil {
			closeAll(servers)
			t.Fatal(err)
		}
		servers = append(servers, s)
	}
	return servers
}

func closeAll(servers []*probe.Server) {
	for _, s := range servers {
		s.Close()
	}
}

// checkPodMatrix waits until every pod reaches every pod on another node
// over TCP and UDP, each receiver seeing the sender's own pod address.
func checkPodMatrix(t *testing.T, pods []labPod, within time.Duration) {
	t.Helper()
	eventually(t, within, "full pod-to-pod matrix", func() error {
		return reachAll(pods, pods, 2*time.Second)
	})
}

func reachAll(from, to []labPod, each time.Duration) error {
	for _, a := range from {
		for _, b := range to {
			if a.Node == b.Node {
				continue
			}
			if err := reach(a, b, each); err != nil {
				return err
			}
		}
	}
	return nil
}

// reach probes b from a over TCP and UDP; the receiver must see a's own
// pod address.
func reach(a, b labPod, each time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), each)
	defer cancel()
	target := netip.AddrPortFrom(b.Addr(), podPort)
	seen, err := probe.TCP(ctx, a.NSPath(), target)
	if err == nil && seen.Addr() != a.Addr() {
		err = fmt.Errorf("receiver saw %s, not the sender's pod IP", seen.Addr())
	}
	if err == nil {
		seen, err = probe.UDP(ctx, a.NSPath(), target)
		if err == nil && seen.Addr() != a.Addr() {
			err = fmt.Errorf("UDP receiver saw %s, not the sender's pod IP", seen.Addr())
		}
	}
	if err != nil {
		return fmt.Errorf("%s/%s -> %s/%s: %w", a.Node, a.Name, b.Node, b.Name, err)
	}
	return nil
}

// checkUnderlayCapture captures on the underlay bridge while pods talk
// across nodes: every IPv4 packet must be WireGuard (UDP 51820) or gossip
// (7946), and no outer header may carry a pod address.
func checkUnderlayCapture(t *testing.T, c *cluster, pods []labPod) {
	pcap := capture(t, c.layout.UnderlayNS(), "br0", "ip", func() error { return reachAll(pods, pods, 3*time.Second) })
	if n := pcapCount(t, pcap, "udp port 51820"); n == 0 {
		t.Fatal("no WireGuard packets on the underlay while pods talked")
	}
	if n := pcapCount(t, pcap, "net 10.244.0.0/16"); n != 0 {
		t.Errorf("%d packets on the underlay carry a pod address in the outer header", n)
	}
	if n := pcapCount(t, pcap, "not (udp port 51820) and not (port 7946)"); n != 0 {
		out, _ := exec.Command("tcpdump", "-r", pcap, "-nn", "not (udp port 51820) and not (port 7946)").Output()
		t.Errorf("%d packets on the underlay are neither WireGuard nor gossip:\n%s", n, firstLines(string(out), 10))
	}
	if fi, err := os.Stat(pcap); err == nil {
		t.Logf("underlay capture: %d bytes, %d WireGuard packets", fi.Size(), pcapCount(t, pcap, "udp port 51820"))
	}
}

// capture runs tcpdump on iface in netns ns with filter while during runs,
// and returns the capture file.
func capture(t *testing.T, ns, iface, filter string, during func() error) string {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("tcpdump is required for this test (make deps installs it): %v", err)
	}
	pcap := filepath.Join(t.TempDir(), ns+".pcap")
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", iface, "-nn", "-U", "--immediate-mode", "-w", pcap, filter)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	listening := make(chan struct{})
	go func() {
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				close(listening)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("tcpdump did not start listening")
	}
	err = during()
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return pcap
}

// pcapCount counts the packets of pcap that match filter.
func pcapCount(t *testing.T, pcap, filter string) int {
	t.Helper()
	out, err := exec.Command("tcpdump", "-r", pcap, "-nn", filter).Output()
	if err != nil {
		t.Fatalf("tcpdump -r %s: %v", filter, err)
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return 0
	}
	return len(strings.Split(s, "\n"))
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func podsOn(pods []labPod, node string) []labPod {
	var out []labPod
	for _, p := range pods {
		if p.Node == node {
			out = append(out, p)
		}
	}
	return out
}

// checkMetrics reads /healthz, /readyz and /metrics from inside a node.
func checkMetrics(t *testing.T, c *cluster, node, backend string) {
	t.Helper()
	get := func(path string) (int, string) {
		// The transport dials from its own goroutine: open the socket
		// inside the node's namespace explicitly.
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := probe.InNetns(c.nodeNSPath(node), func() error {
				var d net.Dialer
				var err error
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}
		client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
		resp, err := client.Get("http://127.0.0.1:9464" + path)
		if err != nil {
			t.Fatalf("GET %s on %s: %v", path, node, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s on %s: %v", path, node, err)
		}
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(p); code != 200 {
			t.Errorf("%s on %s: %d %s", p, node, code, body)
		}
	}
	_, m := get("/metrics")
	for _, want := range []string{
		"weft_ready 1",
		"weft_gossip_members 3",
		`weft_tunnel_peers{backend="` + backend + `"} 2`,
		"weft_reconcile_runs_total",
		"weft_reconcile_duration_seconds_bucket",
		`weft_gossip_events_total{kind="decrypt_failures"} 0`,
		"weft_lease_info{cidr=",
		`weft_tunnel_peer_rx_bytes{peer="n2"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics on %s lacks %q", node, want)
		}
	}
	// Three members probe each other: the gossip transport has sent and
	// received packets, and counted them.
	for _, series := range []string{`weft_gossip_sent_bytes_total{transport="udp"} `, `weft_gossip_received_bytes_total{transport="udp"} `} {
		i := strings.Index(m, "\n"+series)
		if i < 0 {
			t.Errorf("/metrics on %s lacks %q", node, series)
			continue
		}
		v, _, _ := strings.Cut(m[i+1+len(series):], "\n")
		if f, err := strconv.ParseFloat(v, 64); err != nil || f <= 0 {
			t.Errorf("/metrics on %s: %s%s, want a positive count", node, series, v)
		}
	}
	if backend == "wireguard" && !strings.Contains(m, `weft_tunnel_peer_handshake_age_seconds{peer="n2"}`) {
		t.Errorf("/metrics on %s lacks the handshake age of n2", node)
	}
}
