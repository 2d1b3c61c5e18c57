package gossip

// The gossip transport: memberlist's packets over UDP and streams over TCP,
// on one address and port, as memberlist's own NetTransport does them,
// with one difference that matters at rest.
//
// NetTransport reads every UDP packet into a fresh 64 KiB buffer and hands
// memberlist a slice of it, so each probe, ack and gossip message, a few
// hundred bytes, costs 64 KiB of garbage. With 1,000 members a node
// receives about 20 of them a second: 1.3 of the 1.6 MB/s the agent
// allocates at rest, which sets how often the collector runs and how much
// garbage is resident between runs. This transport reads into one buffer
// it keeps and hands memberlist a copy of exactly the packet.

import (
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

const (
	maxPacket  = 65536           // the largest UDP payload memberlist may send
	udpRecvBuf = 2 * 1024 * 1024 // the socket receive buffer asked for, halved until granted
)

// transport is a memberlist.NodeAwareTransport on one address.
type transport struct {
	addr     netip.Addr
	tcp      *net.TCPListener
	udp      *net.UDPConn
	logger   *log.Logger
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	shut     atomic.Bool
	wg       sync.WaitGroup
	traffic  traffic
}

// traffic counts the bytes the transport carries, as memberlist hands them
// over (encrypted, compressed), without IP and UDP or TCP headers.
type traffic struct {
	packetsOut, packetsIn atomic.Uint64 // UDP: probes, acks, gossip
	streamsOut, streamsIn atomic.Uint64 // TCP: push/pull, fallback probes
}

// Traffic is what a node's gossip transport has carried since it started.
type Traffic struct {
	PacketBytesSent, PacketBytesReceived uint64 // UDP payloads
	StreamBytesSent, StreamBytesReceived uint64 // TCP payloads
}

func (t *traffic) snapshot() Traffic {
	return Traffic{
		PacketBytesSent: t.packetsOut.Load(), PacketBytesReceived: t.packetsIn.Load(),
		StreamBytesSent: t.streamsOut.Load(), StreamBytesReceived: t.streamsIn.Load(),
	}
}

// countedConn counts a stream's bytes into the transport's traffic.
type countedConn struct {
	net.Conn
	t *traffic
}

func (c countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.t.streamsIn.Add(uint64(n))
	return n, err
}

func (c countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.t.streamsOut.Add(uint64(n))
	return n, err
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// newTransport listens on addr:port, TCP and UDP (port 0: a free port,
// the same for both).
func newTransport(addr netip.Addr, port int, logger *log.Logger) (*transport, error) {
	tcp, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
	if err != nil {
		return nil, fmt.Errorf("failed to listen on TCP %s port %d: %w", addr, port, err)
	}
	if port == 0 {
		port = tcp.Addr().(*net.TCPAddr).Port
	}
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
	if err != nil {
		tcp.Close()
		return nil, fmt.Errorf("failed to listen on UDP %s port %d: %w", addr, port, err)
	}
	for size := udpRecvBuf; size > 0; size /= 2 {
		if udp.SetReadBuffer(size) == nil {
			break
		}
	}
	t := &transport{
		addr:     addr,
		tcp:      tcp,
		udp:      udp,
		logger:   logger,
		packetCh: make(chan *memberlist.Packet),
		streamCh: make(chan net.Conn),
	}
	t.wg.Add(2)
	go t.readPackets()
	go t.acceptStreams()
	return t, nil
}

// port is the port both listeners are on.
func (t *transport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr is ip and port when ip is given, else the bound
// address (or, bound to every address, the first private one) and port.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, 0, fmt.Errorf("failed to parse advertise address %q", ip)
		}
		return net.IP(a.Unmap().AsSlice()), port, nil
	}
	if !t.addr.IsUnspecified() {
		return net.IP(t.addr.Unmap().AsSlice()), t.port(), nil
	}
	a, err := privateAddr()
	if err != nil {
		return nil, 0, err
	}
	return net.IP(a.AsSlice()), t.port(), nil
}

// privateAddr is the first private IPv4 address of an interface that is up.
func privateAddr() (netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("failed to list interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && p.Addr().IsPrivate() {
				return p.Addr(), nil
			}
		}
	}
	return netip.Addr{}, errors.New("no private IPv4 address on any interface, and no advertise address given")
}

// WriteTo sends b to addr ("host:port") over UDP.
func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress sends b to a over UDP.
func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	// memberlist addresses members as "ip:port"; parsing that does not
	// allocate, where resolving it did, for every packet.
	ap, err := netip.ParseAddrPort(a.Addr)
	if err != nil {
		ua, rerr := net.ResolveUDPAddr("udp", a.Addr)
		if rerr != nil {
			return time.Time{}, rerr
		}
		ap = ua.AddrPort()
	}
	n, err := t.udp.WriteToUDPAddrPort(b, ap)
	t.traffic.packetsOut.Add(uint64(n))
	return time.Now(), err
}

// PacketCh delivers the packets received.
func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout opens a stream to addr ("host:port").
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout opens a stream to a.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", a.Addr)
	if err != nil {
		return nil, err
	}
	return countedConn{c, &t.traffic}, nil
}

// StreamCh delivers the streams accepted.
func (t *transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown closes both listeners and waits for their goroutines. memberlist
// calls it after it has stopped reading the channels.
func (t *transport) Shutdown() error {
	t.shut.Store(true)
	t.tcp.Close()
	t.udp.Close()
	t.wg.Wait()
	return nil
}

// readPackets reads UDP packets into one buffer and delivers a copy of each.
func (t *transport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFromUDPAddrPort(buf)
		ts := time.Now()
		if err != nil {
			if t.shut.Load() {
				return
			}
			t.logger.Printf("[ERR] memberlist: Error reading UDP packet: %v", err)
			continue
		}
		if n < 1 {
			t.logger.Printf("[ERR] memberlist: UDP packet too short (%d bytes) from %s", n, from)
			continue
		}
		t.traffic.packetsIn.Add(uint64(n))
		t.packetCh <- &memberlist.Packet{
			Buf:       append([]byte(nil), buf[:n]...),
			From:      net.UDPAddrFromAddrPort(from),
			Timestamp: ts,
		}
	}
}

// acceptStreams accepts TCP connections, backing off on errors as
// NetTransport does.
func (t *transport) acceptStreams() {
	defer t.wg.Done()
	const baseDelay, maxDelay = 5 * time.Millisecond, time.Second
	var delay time.Duration
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.shut.Load() {
				return
			}
			delay = min(max(2*delay, baseDelay), maxDelay)
			t.logger.Printf("[ERR] memberlist: Error accepting TCP connection: %v", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		t.streamCh <- countedConn{c, &t.traffic}
	}
}
