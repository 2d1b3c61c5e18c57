package gossip

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// memNet is an in-memory network for memberlist, modelled on
// memberlist.MockNetwork, with what these tests need on top: a transport
// that is shut down stops receiving (MockTransport's unbuffered channels
// would block the sender forever), groups that can be partitioned and
// healed, restarts that keep a node's address, and byte counters for the
// scale benchmark (scale_test.go).
//
// Scaling: route takes a read lock only, so thousands of senders do not
// serialise on one mutex; a packet costs one copy and one non-blocking
// channel send; no goroutine is started per packet. A stream is a
// net.Pipe (which needs none either); its bytes are counted at the
// writer.
type memNet struct {
	mu     sync.RWMutex
	byAddr map[string]*memTransport
	byName map[string]*memTransport
	addrOf map[string]string // node name -> address, stable across restarts
	group  map[string]int    // node name -> partition group
	split  bool
	port   int
	all    []*memTransport // every transport created, for Bytes
}

func newMemNet() *memNet {
	return &memNet{
		byAddr: make(map[string]*memTransport),
		byName: make(map[string]*memTransport),
		addrOf: make(map[string]string),
		group:  make(map[string]int),
	}
}

// NewTransport returns a transport for name, replacing an earlier one of
// the same name (a restart) at the same address.
func (nw *memNet) NewTransport(name string) *memTransport {
	addr := nw.Addr(name)
	nw.mu.Lock()
	defer nw.mu.Unlock()
	t := &memTransport{
		net:      nw,
		name:     name,
		addr:     addr,
		packetCh: make(chan *memberlist.Packet, 4096),
		streamCh: make(chan net.Conn),
		done:     make(chan struct{}),
	}
	nw.byAddr[addr] = t
	nw.byName[name] = t
	nw.all = append(nw.all, t)
	return t
}

// Addr returns the address of the node called name, reserving one if
// the node does not exist yet.
func (nw *memNet) Addr(name string) string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	addr, ok := nw.addrOf[name]
	if !ok {
		nw.port++
		addr = "127.0.0.1:" + strconv.Itoa(nw.port)
		nw.addrOf[name] = addr
	}
	return addr
}

// Partition puts name in group g; groups are cut off from each other
// while split is set.
func (nw *memNet) Partition(split bool, groups map[string]int) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	for n, g := range groups {
		nw.group[n] = g
	}
	nw.split = split
}

// route returns the destination for a message from src, or nil if it is
// unknown, shut down or cut off.
func (nw *memNet) route(src *memTransport, a memberlist.Address) *memTransport {
	nw.mu.RLock()
	defer nw.mu.RUnlock()
	var dst *memTransport
	if a.Name != "" {
		dst = nw.byName[a.Name]
	} else {
		dst = nw.byAddr[a.Addr]
	}
	if dst == nil || dst.closed() {
		return nil
	}
	if nw.split && nw.group[src.name] != nw.group[dst.name] {
		return nil
	}
	return dst
}

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

type memTransport struct {
	net      *memNet
	name     string
	addr     string
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	done     chan struct{}
	once     sync.Once

	// Bytes and messages this transport sent (payload as memberlist
	// hands it over, so encryption and compression are included).
	packetBytes, packets, streamBytes, streams atomic.Uint64
	dropped                                    atomic.Uint64 // packets lost to a full receive queue
}

var _ memberlist.NodeAwareTransport = (*memTransport)(nil)

func (t *memTransport) closed() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

func (t *memTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, port, err := net.SplitHostPort(t.addr)
	if err != nil {
		return nil, 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, 0, err
	}
	return net.ParseIP(host), p, nil
}

func (t *memTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress delivers like UDP: silently dropped when the peer is
// gone, cut off or not keeping up.
func (t *memTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	if t.closed() {
		return now, nil
	}
	dst := t.net.route(t, a)
	if dst == nil {
		return now, nil
	}
	t.packetBytes.Add(uint64(len(b)))
	t.packets.Add(1)
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: memAddr(t.addr), Timestamp: now}
	select {
	case dst.packetCh <- p:
	default:
		t.dropped.Add(1)
	}
	return now, nil
}

func (t *memTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *memTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *memTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.closed() {
		return nil, fmt.Errorf("transport %s is shut down", t.name)
	}
	dst := t.net.route(t, a)
	if dst == nil {
		return nil, fmt.Errorf("no route to %s", a)
	}
	l, r := net.Pipe()
	local, remote := &countConn{Conn: l, n: &t.streamBytes}, &countConn{Conn: r, n: &dst.streamBytes}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dst.streamCh <- remote:
		t.streams.Add(1)
		return local, nil
	case <-dst.done:
	case <-timer.C:
	}
	_ = local.Close()
	_ = remote.Close()
	return nil, fmt.Errorf("dial %s: timed out", a)
}

func (t *memTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *memTransport) Shutdown() error {
	t.once.Do(func() { close(t.done) })
	return nil
}

// countConn adds the bytes written through it to n.
type countConn struct {
	net.Conn
	n *atomic.Uint64
}

func (c *countConn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.n.Add(uint64(k))
	return k, err
}

// netBytes is what every transport of the network has sent so far.
type netBytes struct {
	Packet, Stream, Packets, Streams, Dropped uint64
}

func (b netBytes) total() uint64 { return b.Packet + b.Stream }

func (b netBytes) sub(o netBytes) netBytes {
	return netBytes{b.Packet - o.Packet, b.Stream - o.Stream, b.Packets - o.Packets, b.Streams - o.Streams, b.Dropped - o.Dropped}
}

// Bytes sums the counters of every transport ever created on nw,
// including those replaced by a restart.
func (nw *memNet) Bytes() netBytes {
	nw.mu.RLock()
	defer nw.mu.RUnlock()
	var b netBytes
	for _, t := range nw.all {
		b.Packet += t.packetBytes.Load()
		b.Stream += t.streamBytes.Load()
		b.Packets += t.packets.Load()
		b.Streams += t.streams.Load()
		b.Dropped += t.dropped.Load()
	}
	return b
}
