package loadbalancer

// The announcer answers ARP for load-balancer addresses on one interface
// with the interface's own MAC, from a packet socket: the addresses are
// never configured on the interface (the Service proxy's DNAT takes the
// traffic), so the kernel would not answer for them itself.
//
// One goroutine reads requests; Set replaces the address set under mu and
// starts a short gratuitous burst for each address gained. Close closes
// the socket, which ends the reader, and waits for the bursts.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Gratuitous ARP on gaining an address: GratuitousCount requests,
// GratuitousInterval apart, the first at once. Neighbours update an entry
// they hold on the first one (a gratuitous ARP overrides the kernel's
// locktime); the repeats cover a lost frame.
const (
	GratuitousCount    = 3
	GratuitousInterval = 100 * time.Millisecond
)

// Announcer answers ARP requests on one interface for the addresses it is
// given, and announces each address it gains.
type Announcer struct {
	iface string
	index int
	mac   net.HardwareAddr
	log   *slog.Logger
	file  *os.File // the AF_PACKET socket
	raw   syscall.RawConn
	done  chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	addrs   map[netip.Addr]bool
	closed  bool
	metrics *Metrics
}

// NewAnnouncer opens a packet socket for ARP on iface (in the calling
// thread's network namespace) and starts answering; the set is empty
// until Set. Needs CAP_NET_RAW.
func NewAnnouncer(iface string, log *slog.Logger) (*Announcer, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("failed to find announce interface %s: %w", iface, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("announce interface %s has no Ethernet address (%q)", iface, ifi.HardwareAddr)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return nil, fmt.Errorf("failed to open ARP socket on %s: %w", iface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("failed to bind ARP socket to %s: %w", iface, err)
	}
	// A non-blocking descriptor in an *os.File is served by the runtime's
	// poller, so Close wakes a blocked read.
	f := os.NewFile(uintptr(fd), "arp:"+iface)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("failed to use ARP socket on %s: %w", iface, err)
	}
	a := &Announcer{
		iface: iface, index: ifi.Index, mac: ifi.HardwareAddr,
		log:  log.With("interface", iface),
		file: f, raw: raw, done: make(chan struct{}),
		addrs: map[netip.Addr]bool{},
	}
	a.wg.Add(1)
	go a.read()
	return a, nil
}

// MAC is the hardware address the announcer answers with.
func (a *Announcer) MAC() net.HardwareAddr { return slices.Clone(a.mac) }

// Instrument counts the announcer's frames in m from now on.
func (a *Announcer) Instrument(m *Metrics) {
	a.mu.Lock()
	a.metrics = m
	a.mu.Unlock()
}

// Set replaces the addresses this node answers for. Each address not in
// the previous set is announced with gratuitous ARP; addresses left out
// are no longer answered for (ARP has no withdrawal: the node that gains
// them announces). Only IPv4 addresses are taken; others are logged and
// ignored.
func (a *Announcer) Set(addrs []netip.Addr) {
	next := make(map[netip.Addr]bool, len(addrs))
	for _, ip := range addrs {
		ip = ip.Unmap()
		if !ip.Is4() {
			a.log.Warn("not announcing a non-IPv4 address (ARP only)", "address", ip)
			continue
		}
		next[ip] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	var gained []netip.Addr
	for ip := range next {
		if !a.addrs[ip] {
			gained = append(gained, ip)
		}
	}
	for ip := range a.addrs {
		if !next[ip] {
			a.log.Info("no longer announcing", "address", ip)
		}
	}
	a.addrs = next
	a.metrics.setAnnounced(len(next))
	slices.SortFunc(gained, netip.Addr.Compare)
	for _, ip := range gained {
		a.log.Info("announcing", "address", ip, "mac", a.mac)
		a.wg.Add(1)
		go a.gratuitous(ip)
	}
}

// Addrs returns the addresses answered for now, sorted.
func (a *Announcer) Addrs() []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]netip.Addr, 0, len(a.addrs))
	for ip := range a.addrs {
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Close stops answering and waits for the announcer's goroutines.
func (a *Announcer) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.addrs = nil
	a.mu.Unlock()
	close(a.done)
	err := a.file.Close()
	a.wg.Wait()
	if err != nil {
		return fmt.Errorf("failed to close ARP socket on %s: %w", a.iface, err)
	}
	return nil
}

// has reports whether ip is answered for, and the metrics to count in.
func (a *Announcer) has(ip netip.Addr) (bool, *Metrics) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addrs[ip], a.metrics
}

// gratuitous sends the burst for ip, stopping early when ip is dropped.
func (a *Announcer) gratuitous(ip netip.Addr) {
	defer a.wg.Done()
	frame := gratuitousFrame(a.mac, ip)
	for i := range GratuitousCount {
		if i > 0 {
			select {
			case <-a.done:
				return
			case <-time.After(GratuitousInterval):
			}
		}
		ok, m := a.has(ip)
		if !ok {
			return
		}
		if err := a.send(frame, broadcast); err != nil {
			a.log.Warn("failed to send gratuitous ARP", "address", ip, "err", err)
			continue
		}
		m.countARP("gratuitous")
	}
}

// read answers requests until the socket is closed.
func (a *Announcer) read() {
	defer a.wg.Done()
	buf := make([]byte, 1500)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := a.raw.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			select {
			case <-a.done:
				return
			default:
			}
			if errors.Is(err, os.ErrClosed) {
				return
			}
			// ENETDOWN and the like while the link flaps: keep reading.
			a.log.Debug("ARP socket read failed", "err", err)
			select {
			case <-a.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own frames
		}
		req, ok := parseRequest(buf[:n])
		if !ok || req.senderIP == req.targetIP || slices.Equal(req.senderMAC, a.mac) {
			continue // not a request, or another node's announcement
		}
		ours, m := a.has(req.targetIP)
		if !ours {
			continue
		}
		if err := a.send(replyFrame(a.mac, req), req.senderMAC); err != nil {
			a.log.Warn("failed to answer ARP request", "address", req.targetIP, "from", req.senderIP, "err", err)
			continue
		}
		m.countARP("reply")
	}
}

func (a *Announcer) send(frame []byte, dst net.HardwareAddr) error {
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: a.index, Halen: 6}
	copy(to.Addr[:], dst)
	var serr error
	err := a.raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), frame, 0, to)
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

// htons puts v in network byte order, as socket calls want protocols.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ARP over Ethernet for IPv4 (RFC 826): a 14-byte Ethernet header, then
// hardware type 1, protocol 0x0800, lengths 6 and 4, the operation, and
// sender and target hardware and protocol addresses.
const (
	etherTypeARP = 0x0806
	arpRequest   = 1
	arpReply     = 2
	arpFrameLen  = 14 + 28
	minFrameLen  = 60 // Ethernet minimum without the FCS
)

type arpRequestPacket struct {
	senderMAC net.HardwareAddr
	senderIP  netip.Addr
	targetIP  netip.Addr
}

// parseRequest decodes an Ethernet frame holding an IPv4 ARP request.
func parseRequest(b []byte) (arpRequestPacket, bool) {
	if len(b) < arpFrameLen || binary.BigEndian.Uint16(b[12:]) != etherTypeARP {
		return arpRequestPacket{}, false
	}
	p := b[14:]
	if binary.BigEndian.Uint16(p[0:]) != 1 || binary.BigEndian.Uint16(p[2:]) != 0x0800 || p[4] != 6 || p[5] != 4 ||
		binary.BigEndian.Uint16(p[6:]) != arpRequest {
		return arpRequestPacket{}, false
	}
	return arpRequestPacket{
		senderMAC: slices.Clone(p[8:14]),
		senderIP:  netip.AddrFrom4([4]byte(p[14:18])),
		targetIP:  netip.AddrFrom4([4]byte(p[24:28])),
	}, true
}

// arpFrame builds an Ethernet frame with one IPv4 ARP packet, padded to
// the Ethernet minimum.
func arpFrame(dst, src net.HardwareAddr, op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	b := make([]byte, minFrameLen)
	copy(b[0:6], dst)
	copy(b[6:12], src)
	binary.BigEndian.PutUint16(b[12:], etherTypeARP)
	p := b[14:]
	binary.BigEndian.PutUint16(p[0:], 1)
	binary.BigEndian.PutUint16(p[2:], 0x0800)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], op)
	copy(p[8:14], sha)
	s4, t4 := spa.As4(), tpa.As4()
	copy(p[14:18], s4[:])
	copy(p[18:24], tha)
	copy(p[24:28], t4[:])
	return b
}

// gratuitousFrame is a broadcast request for ip from ip: receivers that
// hold an entry for ip move it to mac.
func gratuitousFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	return arpFrame(broadcast, mac, arpRequest, mac, ip, make(net.HardwareAddr, 6), ip)
}

// replyFrame answers req: req.targetIP is at mac.
func replyFrame(mac net.HardwareAddr, req arpRequestPacket) []byte {
	return arpFrame(req.senderMAC, mac, arpReply, mac, req.targetIP, req.senderMAC, req.senderIP)
}
