package gossip

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// capturing is weft's UDP/TCP transport with a tap: it keeps a copy of
// every packet and of every inbound stream's bytes as they arrive on the
// socket, still encrypted, so a test can replay them as an attacker on the
// path would.
type capturing struct {
	*transport
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}

	mu       sync.Mutex
	captured [][]byte // UDP payloads
	inbound  []*tapConn
}

func newCapturing(t *testing.T, addr netip.Addr, port int) *capturing {
	t.Helper()
	tr, err := newTransport(addr, port, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	c := &capturing{transport: tr, packets: make(chan *memberlist.Packet), streams: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		for {
			select {
			case p := <-tr.PacketCh():
				c.mu.Lock()
				c.captured = append(c.captured, slices.Clone(p.Buf))
				c.mu.Unlock()
				select {
				case c.packets <- p:
				case <-c.done:
					return
				}
			case s := <-tr.StreamCh():
				tc := &tapConn{Conn: s}
				c.mu.Lock()
				c.inbound = append(c.inbound, tc)
				c.mu.Unlock()
				select {
				case c.streams <- tc:
				case <-c.done:
					return
				}
			case <-c.done:
				return
			}
		}
	}()
	return c
}

func (c *capturing) PacketCh() <-chan *memberlist.Packet { return c.packets }
func (c *capturing) StreamCh() <-chan net.Conn           { return c.streams }
func (c *capturing) Shutdown() error {
	close(c.done)
	return c.transport.Shutdown()
}

// recorded returns copies of the packets and of the inbound streams' bytes
// captured so far.
func (c *capturing) recorded() (packets, streams [][]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.captured {
		packets = append(packets, slices.Clone(p))
	}
	for _, s := range c.inbound {
		s.mu.Lock()
		if len(s.read) > 0 {
			streams = append(streams, slices.Clone(s.read))
		}
		s.mu.Unlock()
	}
	return packets, streams
}

// tapConn records what is read from a stream.
type tapConn struct {
	net.Conn
	mu   sync.Mutex
	read []byte
}

func (c *tapConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.read = append(c.read, b[:n]...)
	c.mu.Unlock()
	return n, err
}

// replayNode is a gossip node on a real socket on loopback, with its tap.
type replayNode struct {
	*Node
	tap  *capturing
	addr string // host:port
}

// replayCluster starts real-transport nodes on 127.0.0.1, encrypted with
// the shared key as weft configures them, with timings short enough that
// a failed node is forgotten by memberlist, and its lease by every node,
// within a couple of seconds.
func replayCluster(t *testing.T, c *testCluster, names ...string) []*replayNode {
	t.Helper()
	var out []*replayNode
	var seeds []string
	for _, name := range names {
		rn := c.replayNode(name, seeds, nil)
		c.start(rn.Node)
		out = append(out, rn)
		if len(seeds) == 0 {
			seeds = []string{rn.addr}
		}
	}
	return out
}

func (c *testCluster) replayNode(name string, seeds []string, mod func(*Config)) *replayNode {
	c.t.Helper()
	lo := netip.MustParseAddr("127.0.0.1")
	port := freePort(c.t)
	tap := newCapturing(c.t, lo, port)
	n := c.node(name, seeds, func(cfg *Config) {
		cfg.Transport = tap
		cfg.BindAddr, cfg.BindPort = lo, port
		cfg.Meta.UnderlayIP = lo
		cfg.LeaseGrace = time.Second
		cfg.Tune = func(mc *memberlist.Config) {
			fastTune(mc)
			mc.GossipToTheDeadTime = 200 * time.Millisecond
		}
		if mod != nil {
			mod(cfg)
		}
	})
	return &replayNode{Node: n, tap: tap, addr: fmt.Sprintf("127.0.0.1:%d", port)}
}

// replay sends every packet (UDP) and stream (TCP, one connection each,
// whose answer is read and dropped) to each target from 127.0.0.2, an
// address no member uses.
func replay(t *testing.T, packets, streams [][]byte, targets []string) {
	t.Helper()
	src := netip.MustParseAddr("127.0.0.2")
	u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for _, target := range targets {
		to := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(target))
		for _, p := range packets {
			if _, err := u.WriteToUDP(p, to); err != nil {
				t.Fatalf("replay to %s: %v", target, err)
			}
		}
		for _, s := range streams {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IP(src.AsSlice())}, Timeout: time.Second}
			conn, err := d.Dial("tcp", target)
			if err != nil {
				t.Fatalf("replay stream to %s: %v", target, err)
			}
			_ = conn.SetDeadline(time.Now().Add(time.Second))
			_, _ = conn.Write(s)
			_, _ = io.Copy(io.Discard, conn) // the answer, encrypted for the original sender
			conn.Close()
		}
	}
}

// gossipView is what a replay must not change on a node: its lease, its
// peer table (names, addresses, metadata), memberlist's members and their
// addresses, and the blocks it holds for failed nodes.
// It reads n.ml.Members under n.mu; memberlist never calls back while
// Members runs, so this cannot deadlock.
func gossipView(n *Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "lease %s reclaims %d lost %d\n", n.Lease(), n.Stats().Reclaims, n.Stats().ConflictsLost)
	for _, p := range n.Peers() {
		fmt.Fprintf(&b, "peer %s %s:%d %s %s %s boot %d\n", p.Name, p.UnderlayIP, p.TunnelPort, p.PublicKey, p.PodCIDR, p.ClaimedAt.UTC().Format(time.RFC3339Nano), p.Boot)
	}
	// memberlist itself lists whatever a replay announces until it fails
	// to probe it; what must not change is the address of a member that
	// counts.
	n.mu.Lock()
	var ms []string
	for _, m := range n.ml.Members() {
		if _, ok := n.members[m.Name]; ok {
			ms = append(ms, m.Name+"@"+m.Address())
		}
	}
	slices.Sort(ms)
	fmt.Fprintf(&b, "members %v\n", ms)
	var ts []string
	for name, t := range n.tombs {
		if t.live(time.Now()) {
			ts = append(ts, name+"="+t.CIDR.String())
		}
	}
	n.mu.Unlock()
	slices.Sort(ts)
	fmt.Fprintf(&b, "tombstones %v\n", ts)
	return b.String()
}

// holdsFor checks every 10 ms for d that no node's view differs from want.
func holdsFor(t *testing.T, d time.Duration, nodes []*replayNode, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if got := gossipView(n.Node); got != want[n.cfg.NodeName] {
				t.Fatalf("%s changed after the replay:\nbefore:\n%s\nafter:\n%s", n.cfg.NodeName, want[n.cfg.NodeName], got)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReplayLiveMembers: every packet and stream captured between three
// live members, replayed from another address, changes nothing on any of
// them. memberlist ignores an alive message whose incarnation is not newer
// than the one it holds and an address change of a member that is not
// dead, and a replayed ping's ack goes to the address inside the ping.
func TestReplayLiveMembers(t *testing.T) {
	c := newTestCluster(t)
	nodes := replayCluster(t, c, "a", "b", "c")
	ns := []*Node{nodes[0].Node, nodes[1].Node, nodes[2].Node}
	waitConverged(t, 10*time.Second, ns)
	// One meta change each, so the captures hold alive messages of every
	// node at more than one incarnation.
	for _, n := range nodes {
		if err := n.UpdateMeta(func(m *Meta) { m.TunnelPort++ }); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, func() bool {
		for _, n := range nodes {
			for _, p := range n.Peers() {
				if p.TunnelPort != 51821 {
					return false
				}
			}
		}
		return true
	}, "meta updates did not spread")
	eventually(t, 5*time.Second, func() bool {
		for _, n := range nodes {
			if p, _ := n.tap.recorded(); len(p) < 10 {
				return false
			}
		}
		return true
	}, "too few packets captured")
	var packets, streams [][]byte
	for _, n := range nodes {
		p, s := n.tap.recorded()
		packets, streams = append(packets, p...), append(streams, s...)
	}
	want := map[string]string{}
	var targets []string
	for _, n := range nodes {
		want[n.cfg.NodeName] = gossipView(n.Node)
		targets = append(targets, n.addr)
	}
	replay(t, packets, streams, targets)
	t.Logf("replayed %d packets and %d streams to each of %d members", len(packets), len(streams), len(nodes))
	holdsFor(t, 2*time.Second, nodes, want)
}

// TestReplayFailedMember: a member fails, memberlist forgets it, its lease
// expires and another node claims the block. Replaying what was captured
// while the failed member was alive (its alive messages carry its old,
// senior lease) must not bring it back: no node may list it, count it as
// a member, hold its block for it, or take the block from its new holder.
func TestReplayFailedMember(t *testing.T) {
	c := newTestCluster(t)
	nodes := replayCluster(t, c, "a", "b", "gone")
	a, b, gone := nodes[0], nodes[1], nodes[2]
	waitConverged(t, 10*time.Second, []*Node{a.Node, b.Node, gone.Node})
	block := gone.Lease()
	// Let the failing member's alive messages reach both others' taps.
	eventually(t, 5*time.Second, func() bool {
		pa, _ := a.tap.recorded()
		pb, _ := b.tap.recorded()
		return len(pa) > 20 && len(pb) > 20
	}, "too few packets captured")
	var packets, streams [][]byte
	for _, n := range nodes {
		p, s := n.tap.recorded()
		packets, streams = append(packets, p...), append(streams, s...)
	}

	_ = gone.Shutdown() // a crash: no leave message
	eventually(t, 10*time.Second, func() bool {
		return a.Members() == 2 && b.Members() == 2 && !a.reserved(block) && !b.reserved(block)
	}, "failed member's lease not released")

	// A new node takes the block.
	heir := c.replayNode("heir", []string{a.addr}, nil)
	heir.forceClaim = block
	c.start(heir.Node)
	live := []*replayNode{a, b, heir}
	waitConverged(t, 10*time.Second, []*Node{a.Node, b.Node, heir.Node})

	want := map[string]string{}
	var targets []string
	for _, n := range live {
		want[n.cfg.NodeName] = gossipView(n.Node)
		targets = append(targets, n.addr)
	}
	replay(t, packets, streams, targets)
	t.Logf("replayed %d packets and %d streams of a failed member's life to each of %d members", len(packets), len(streams), len(live))
	holdsFor(t, 3*time.Second, live, want)
	if heir.Lease() != block {
		t.Errorf("heir's lease is %s, want %s", heir.Lease(), block)
	}
	// heir never knew the failed member, so its memberlist took the replay
	// for a live member (a and b may still remember it as dead, and then
	// ignore the replay); memberlist must find out, and heir count it.
	eventually(t, 10*time.Second, func() bool {
		for _, n := range live {
			if n.Members() != 3 {
				return false
			}
		}
		return heir.Stats().Unproven > 0
	}, "the replayed member was not declared dead and counted as unproven")
	for _, n := range live {
		t.Logf("%s: %d unproven members, %d reclaims", n.cfg.NodeName, n.Stats().Unproven, n.Stats().Reclaims)
	}
	holdsFor(t, 100*time.Millisecond, live, want)
}
