package dnsproxy

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgConn reads and writes batches of datagrams on one UDP socket with
// recvmmsg and sendmmsg, through the socket's RawConn (so the runtime's
// poller still waits for it). Its headers, buffers and addresses are set
// up once: a batch allocates nothing (x/net's ReadBatch and WriteBatch
// allocate an address and a buffer slice per datagram). Not safe for
// concurrent use: one goroutine owns it.
//
// recvmmsg, and sendmmsg of a few datagrams, are raw system calls (the
// scheduler is not told): on a non-blocking socket they return within
// microseconds, and entering a system call the scheduler's way wakes the
// runtime's monitor thread whenever the process was idle, which at 10,000
// queries/s was a wake-up (a context switch, on an agent pinned to one
// CPU) per query: 35-48 µs of CPU per query became 23-32 µs. A send of
// more datagrams (up to a batch, 64, a few hundred microseconds in the
// kernel) goes the scheduler's way, so that other goroutines may run
// meanwhile; with every call raw, dnsperf got half the queries per second.
type mmsgConn struct {
	rc syscall.RawConn

	in    []unix.Mmsghdr
	inIov []unix.Iovec
	names []unix.RawSockaddrInet6 // room for either family
	bufs  [][]byte

	out    []unix.Mmsghdr
	outIov []unix.Iovec

	// The current call's arguments and result, for the bound functions.
	hdrs         []unix.Mmsghdr
	n            int
	errno        syscall.Errno
	readF, sendF func(fd uintptr) bool
}

// rawSendMax is the most datagrams sent with a raw system call.
const rawSendMax = 4

func newMmsgConn(pc net.PacketConn, n, size int) (*mmsgConn, error) {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no file descriptor", pc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &mmsgConn{
		rc:     rc,
		in:     make([]unix.Mmsghdr, n),
		inIov:  make([]unix.Iovec, n),
		names:  make([]unix.RawSockaddrInet6, n),
		bufs:   make([][]byte, n),
		out:    make([]unix.Mmsghdr, n),
		outIov: make([]unix.Iovec, n),
	}
	for i := range n {
		c.bufs[i] = make([]byte, size)
		c.inIov[i].Base = &c.bufs[i][0]
		c.inIov[i].SetLen(size)
		c.in[i].Hdr.Iov = &c.inIov[i]
		c.in[i].Hdr.SetIovlen(1)
		c.in[i].Hdr.Name = (*byte)(unsafe.Pointer(&c.names[i]))
		c.out[i].Hdr.Iov = &c.outIov[i]
		c.out[i].Hdr.SetIovlen(1)
	}
	c.readF = func(fd uintptr) bool { return c.call(unix.SYS_RECVMMSG, fd) }
	c.sendF = func(fd uintptr) bool { return c.call(unix.SYS_SENDMMSG, fd) }
	return c, nil
}

// call makes one recvmmsg or sendmmsg over c.hdrs; false means "would
// block": the poller waits and calls again.
func (c *mmsgConn) call(trap, fd uintptr) bool {
	for {
		var r uintptr
		var e syscall.Errno
		if trap == unix.SYS_RECVMMSG || len(c.hdrs) <= rawSendMax {
			r, _, e = unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&c.hdrs[0])), uintptr(len(c.hdrs)), 0, 0, 0)
		} else {
			r, _, e = unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&c.hdrs[0])), uintptr(len(c.hdrs)), 0, 0, 0)
		}
		switch e {
		case 0:
			c.n, c.errno = int(r), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.n, c.errno = 0, e
		return true
	}
}

// read waits for datagrams and returns how many it read, up to the batch
// size. Datagram i is c.datagram(i) from c.addr(i).
func (c *mmsgConn) read() (int, error) {
	for i := range c.in {
		c.in[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		c.in[i].Hdr.Flags = 0
	}
	c.hdrs = c.in
	if err := c.rc.Read(c.readF); err != nil {
		return 0, err
	}
	if c.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", c.errno)
	}
	return c.n, nil
}

// datagram is what read put in slot i; truncated datagrams are longer
// than the buffer (maxQuerySize+1), so the caller refuses them.
func (c *mmsgConn) datagram(i int) []byte {
	n := int(c.in[i].Len)
	if c.in[i].Hdr.Flags&unix.MSG_TRUNC != 0 {
		n = len(c.bufs[i])
	}
	return c.bufs[i][:n]
}

// addr is the sender of slot i's datagram.
func (c *mmsgConn) addr(i int) netip.AddrPort {
	sa := &c.names[i]
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port(sa4.Port))
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, port(sa.Port))
	}
	return netip.AddrPort{}
}

// port reads a port stored in network byte order.
func port(p uint16) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&p))[:])
}

// setReply makes out slot k the reply b to the sender of in slot i. The
// reply's bytes must stay put until send returns.
func (c *mmsgConn) setReply(k, i int, b []byte) {
	c.outIov[k].Base = &b[0]
	c.outIov[k].SetLen(len(b))
	c.out[k].Hdr.Name = c.in[i].Hdr.Name
	c.out[k].Hdr.Namelen = c.in[i].Hdr.Namelen
}

// send sends out slots [from, to) and returns how many went; an error is
// the first one's.
func (c *mmsgConn) send(from, to int) (int, error) {
	c.hdrs = c.out[from:to]
	if err := c.rc.Write(c.sendF); err != nil {
		return 0, err
	}
	if c.errno != 0 {
		return 0, os.NewSyscallError("sendmmsg", c.errno)
	}
	return c.n, nil
}
