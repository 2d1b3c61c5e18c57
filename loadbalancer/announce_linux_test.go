package loadbalancer

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netns"
)

func TestARPFrames(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	peer := net.HardwareAddr{2, 0, 0, 0, 0, 2}
	lbAddr, peerAddr := netip.MustParseAddr("192.168.77.200"), netip.MustParseAddr("192.168.77.1")
	req := arpFrame(broadcast, peer, arpRequest, peer, peerAddr, make(net.HardwareAddr, 6), lbAddr)
	got, ok := parseRequest(req)
	if !ok || !slices.Equal(got.senderMAC, peer) || got.senderIP != peerAddr || got.targetIP != lbAddr {
		t.Fatalf("parsed %+v, %v", got, ok)
	}
	reply := replyFrame(mac, got)
	want := "0200000000020200000000010806" + // Ethernet: to the asker, from us, ARP
		"0001080006040002" + // Ethernet/IPv4, reply
		"020000000001c0a84dc8" + // 192.168.77.200 is at us
		"020000000002c0a84d01" // to the asker
	if h := fmt.Sprintf("%x", reply[:arpFrameLen]); h != want || len(reply) != minFrameLen {
		t.Errorf("reply %s (%d bytes), want %s padded to %d", h, len(reply), want, minFrameLen)
	}
	if _, ok := parseRequest(reply); ok {
		t.Error("a reply parsed as a request")
	}
	g := gratuitousFrame(mac, lbAddr)
	if gp, ok := parseRequest(g); !ok || gp.senderIP != lbAddr || gp.targetIP != lbAddr || !slices.Equal(g[:6], broadcast) {
		t.Errorf("gratuitous frame %x", g)
	}
	ipv6 := slices.Clone(req)
	ipv6[14+2], ipv6[14+3] = 0x86, 0xdd
	if _, ok := parseRequest(ipv6); ok {
		t.Error("a request for another protocol parsed")
	}
	if _, ok := parseRequest(req[:30]); ok {
		t.Error("a short frame parsed")
	}
}

// arpLab is a client namespace holding a bridge, and two node namespaces
// plugged into it, all on 192.168.77.0/24:
//
//	client br0 192.168.77.1 ─┬─ eth0 192.168.77.2 node a
//	                         └─ eth0 192.168.77.3 node b
type arpLab struct {
	client, a, b string
}

func newARPLab(t *testing.T) *arpLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and opens packet sockets in them")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("needs ip: %v", err)
	}
	p := fmt.Sprintf("weft-lbt%d-", os.Getpid()%100000)
	l := &arpLab{client: p + "c", a: p + "a", b: p + "b"}
	for _, ns := range []string{l.client, l.a, l.b} {
		sh(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Logf("cleanup: ip netns del %s: %v: %s", ns, err, out)
			}
		})
		sh(t, "ip", "-n", ns, "link", "set", "lo", "up")
		// IPv4 only: no neighbour discovery noise.
		sh(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	sh(t, "ip", "-n", l.client, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", l.client, "addr", "add", "192.168.77.1/24", "dev", "br0")
	sh(t, "ip", "-n", l.client, "link", "set", "br0", "up")
	for i, ns := range []string{l.a, l.b} {
		port := fmt.Sprintf("port%d", i)
		sh(t, "ip", "-n", l.client, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		sh(t, "ip", "-n", l.client, "link", "set", port, "master", "br0", "up")
		sh(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("192.168.77.%d/24", i+2), "dev", "eth0")
		sh(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	}
	return l
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNS runs fn on a thread in namespace ns; sockets it opens stay there.
func inNS(t *testing.T, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked and dies with the goroutine.
		t.Fatalf("failed to return to the test's namespace: %v", err)
	}
	runtime.UnlockOSThread()
}

func startAnnouncer(t *testing.T, ns string, m *Metrics) *Announcer {
	t.Helper()
	var a *Announcer
	var err error
	inNS(t, ns, func() { a, err = NewAnnouncer("eth0", slog.New(slog.NewTextHandler(io.Discard, nil))) })
	if err != nil {
		t.Fatal(err)
	}
	a.Instrument(m)
	t.Cleanup(func() { a.Close() })
	return a
}

// poke sends a UDP datagram from the client to addr, which makes the
// client's kernel resolve addr's neighbour entry with ARP.
func (l *arpLab) poke(t *testing.T, addr netip.Addr) {
	t.Helper()
	inNS(t, l.client, func() {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 9)))
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		c.Close()
	})
}

// neighbour returns the client's entry for addr: its MAC ("" when none)
// and state.
func (l *arpLab) neighbour(t *testing.T, addr netip.Addr) (string, string) {
	t.Helper()
	out := sh(t, "ip", "-n", l.client, "-j", "neigh", "show", addr.String(), "dev", "br0")
	var ents []struct {
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &ents); err != nil {
		t.Fatalf("ip neigh: %v: %s", err, out)
	}
	if len(ents) == 0 {
		return "", "NONE"
	}
	return ents[0].LLAddr, strings.Join(ents[0].State, ",")
}

func (l *arpLab) waitNeighbour(t *testing.T, addr netip.Addr, mac net.HardwareAddr, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, state := l.neighbour(t, addr)
		if got == mac.String() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client's entry for %s is %q (%s) after %v, want %s\n%s", addr, got, state, within, mac,
				sh(t, "ip", "-n", l.client, "neigh"))
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func TestAnnouncerAnswersAndFailsOver(t *testing.T) {
	l := newARPLab(t)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	lbAddr, other := netip.MustParseAddr("192.168.77.200"), netip.MustParseAddr("192.168.77.201")
	a := startAnnouncer(t, l.a, m)
	a.Set([]netip.Addr{lbAddr})
	if got := a.Addrs(); !slices.Equal(got, []netip.Addr{lbAddr}) {
		t.Fatalf("Addrs() = %v", got)
	}

	// Answered for, though no namespace has the address; the address
	// next to it is not.
	l.poke(t, other)
	l.poke(t, lbAddr)
	l.waitNeighbour(t, lbAddr, a.MAC(), 2*time.Second)
	if got, state := l.neighbour(t, other); got != "" {
		t.Errorf("%s resolved to %s (%s), though no one announces it", other, got, state)
	}
	if n := counterValue(t, m.arpSent.WithLabelValues("reply")); n < 1 {
		t.Errorf("%v replies counted", n)
	}

	// Failover: b takes the address; its gratuitous ARP moves the
	// client's entry without the client asking again.
	b := startAnnouncer(t, l.b, m)
	if slices.Equal(a.MAC(), b.MAC()) {
		t.Fatal("both nodes have one MAC; the test proves nothing")
	}
	a.Set(nil)
	start := time.Now()
	b.Set([]netip.Addr{lbAddr})
	l.waitNeighbour(t, lbAddr, b.MAC(), time.Second)
	t.Logf("neighbour entry moved in %v", time.Since(start).Round(time.Millisecond))
	if n := counterValue(t, m.arpSent.WithLabelValues("gratuitous")); n < 2 {
		// a's burst and b's, at least one frame each
		t.Errorf("%v gratuitous frames counted, want at least 2", n)
	}

	// Withdrawn everywhere: nobody answers a fresh request.
	b.Set(nil)
	time.Sleep(GratuitousCount * GratuitousInterval) // let b's burst end: it stops once the address is dropped
	sh(t, "ip", "-n", l.client, "neigh", "flush", "dev", "br0")
	l.poke(t, lbAddr)
	l.poke(t, other)
	time.Sleep(300 * time.Millisecond) // an answer takes a millisecond; waiting for a frame that must not come
	if got, state := l.neighbour(t, lbAddr); got != "" {
		t.Errorf("%s resolved to %s (%s) after both nodes dropped it", lbAddr, got, state)
	}

	if err := a.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	a.Set([]netip.Addr{lbAddr}) // after Close: ignored, no panic
	if got := a.Addrs(); len(got) != 0 {
		t.Errorf("closed announcer holds %v", got)
	}
}
