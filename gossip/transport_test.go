package gossip

import (
	"bytes"
	"io"
	"log"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func newTestTransport(t *testing.T) *transport {
	t.Helper()
	tr, err := newTransport(netip.MustParseAddr("127.0.0.1"), 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown() })
	return tr
}

func recvPacket(t *testing.T, tr *transport) *memberlist.Packet {
	t.Helper()
	select {
	case p := <-tr.PacketCh():
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no packet")
		return nil
	}
}

// Packets arrive whole and each in a buffer of its own: the transport
// reads every packet into one buffer, so a packet handed on must not change
// when the next one is read.
func TestTransportPackets(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	to := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port()))
	first := bytes.Repeat([]byte{1}, 1400)
	second := []byte("ping")
	for _, m := range [][]byte{first, second} {
		if _, err := a.WriteTo(m, to); err != nil {
			t.Fatal(err)
		}
	}
	p1 := recvPacket(t, b)
	p2 := recvPacket(t, b)
	if !bytes.Equal(p1.Buf, first) || !bytes.Equal(p2.Buf, second) {
		t.Fatalf("got %d bytes (%x...) and %q; want 1400 ones and \"ping\"", len(p1.Buf), p1.Buf[:4], p2.Buf)
	}
	if cap(p2.Buf) > 64 {
		t.Errorf("a 4-byte packet holds a %d-byte buffer", cap(p2.Buf))
	}
	from, ok := p1.From.(*net.UDPAddr)
	if !ok || from.Port != a.port() || p1.Timestamp.IsZero() {
		t.Errorf("packet from %v at %v; want port %d and a time", p1.From, p1.Timestamp, a.port())
	}
	if _, err := a.WriteToAddress([]byte("x"), memberlist.Address{Addr: "not an address"}); err == nil {
		t.Error("writing to an unparsable address did not fail")
	}
	// A name still resolves, as memberlist's own transport allows.
	if _, err := a.WriteToAddress([]byte("by name"), memberlist.Address{Addr: net.JoinHostPort("localhost", strconv.Itoa(b.port()))}); err != nil {
		t.Errorf("writing to localhost: %v", err)
	} else if p := recvPacket(t, b); string(p.Buf) != "by name" {
		t.Errorf("got %q by name", p.Buf)
	}
	// The traffic counters see exactly the payloads.
	if got, want := a.traffic.snapshot(), (Traffic{PacketBytesSent: 1400 + 4 + 7}); got != want {
		t.Errorf("sender traffic %+v, want %+v", got, want)
	}
	if got, want := b.traffic.snapshot(), (Traffic{PacketBytesReceived: 1400 + 4 + 7}); got != want {
		t.Errorf("receiver traffic %+v, want %+v", got, want)
	}
}

// Streams are accepted and carry bytes both ways.
func TestTransportStreams(t *testing.T) {
	a, b := newTestTransport(t), newTestTransport(t)
	c, err := a.DialTimeout(net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port())), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var s net.Conn
	select {
	case s = <-b.StreamCh():
	case <-time.After(5 * time.Second):
		t.Fatal("no stream")
	}
	defer s.Close()
	if _, err := c.Write([]byte("push-pull")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 9)
	if _, err := io.ReadFull(s, got); err != nil || string(got) != "push-pull" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := s.Write([]byte("state")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, got[:5]); err != nil {
		t.Fatal(err)
	}
	// Both ends count their streams, dialled and accepted.
	if got, want := a.traffic.snapshot(), (Traffic{StreamBytesSent: 9, StreamBytesReceived: 5}); got != want {
		t.Errorf("dialler traffic %+v, want %+v", got, want)
	}
	if got, want := b.traffic.snapshot(), (Traffic{StreamBytesSent: 5, StreamBytesReceived: 9}); got != want {
		t.Errorf("acceptor traffic %+v, want %+v", got, want)
	}
}

func TestTransportAdvertise(t *testing.T) {
	tr := newTestTransport(t)
	ip, port, err := tr.FinalAdvertiseAddr("", 0)
	if err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) || port != tr.port() {
		t.Errorf("bound address: %v:%d, %v; want 127.0.0.1:%d", ip, port, err, tr.port())
	}
	ip, port, err = tr.FinalAdvertiseAddr("192.168.77.11", 7946)
	if err != nil || !ip.Equal(net.IPv4(192, 168, 77, 11)) || len(ip) != 4 || port != 7946 {
		t.Errorf("given address: %v:%d, %v", ip, port, err)
	}
	if _, _, err := tr.FinalAdvertiseAddr("not-an-ip", 7946); err == nil {
		t.Error("an unparsable advertise address was accepted")
	}
}

// Shutdown returns with both listeners closed.
func TestTransportShutdown(t *testing.T) {
	tr, err := newTransport(netip.MustParseAddr("127.0.0.1"), 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	port := tr.port()
	done := make(chan struct{})
	go func() { tr.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if _, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
		t.Error("the TCP listener still accepts after Shutdown")
	}
}
