package gossip

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// freePort returns a port that was free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// TestRealTransport runs two nodes over memberlist's UDP/TCP transport on
// loopback, each listing both itself and the other as seeds.
func TestRealTransport(t *testing.T) {
	c := newTestCluster(t)
	lo := netip.MustParseAddr("127.0.0.1")
	p0, p1 := freePort(t), freePort(t)
	seeds := []string{fmt.Sprintf("127.0.0.1:%d", p0), fmt.Sprintf("127.0.0.1:%d", p1)}
	real := func(port int) func(*Config) {
		return func(cfg *Config) {
			cfg.Transport = nil
			cfg.BindAddr = lo
			cfg.BindPort = port
			cfg.Meta.UnderlayIP = netip.Addr{} // defaults to the bind address
		}
	}
	n0 := c.node("real-0", seeds[:1], real(p0)) // only itself: a first node
	c.start(n0)
	n1 := c.node("real-1", seeds, real(p1))
	c.start(n1)
	waitConverged(t, 10*time.Second, []*Node{n0, n1})
	if ip := n0.Peers()[0].UnderlayIP; ip != lo {
		t.Errorf("UnderlayIP = %s, want %s", ip, lo)
	}
}
