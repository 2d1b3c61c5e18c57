package dnsproxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// The UDP fast path. Each UDP socket is served by one goroutine that reads
// up to batchSize queries with one recvmmsg, answers every query that
// needs no I/O (the cluster zone, cache hits, refusals) right there, and
// sends those answers with one sendmmsg. A query that needs an upstream is
// handed to a goroutine of its own and answered from it. Per query that
// saves two system calls out of about two, and a goroutine.
//
// "Needs no I/O" is found out by running the chain with a deferral in its
// context: the cache, on a miss, marks the deferral instead of asking
// next, and the cluster zone stops following a CNAME that would. The batch
// goroutine reuses one context and deferral for every query it serves.

const batchSize = 64

// maxSlow bounds the UDP queries waiting for upstreams at once; more get
// SERVFAIL at once rather than a goroutine each.
const maxSlow = 4096

// deferral is set by a handler that would have to wait for I/O.
type deferral struct{ deferred bool }

type deferralKey struct{}

// deferIO returns the deferral of a fast-path run, or nil when the handler
// may do I/O.
func deferIO(ctx context.Context) *deferral {
	d, _ := ctx.Value(deferralKey{}).(*deferral)
	return d
}

// serveUDPBatch serves queries arriving on pc until it is closed.
func (s *Server) serveUDPBatch(pc net.PacketConn) {
	conn, err := newMmsgConn(pc, batchSize, maxQuerySize+1)
	if err != nil {
		s.cfg.Log.Error("udp socket not served", "err", err)
		return
	}
	writers := make([]udpWriter, batchSize)
	for i := range writers {
		writers[i] = udpWriter{pc: pc, buf: make([]byte, 0, 2048)}
	}
	q := new(wireQuery)
	d := &deferral{}
	ctx := context.WithValue(context.Background(), deferralKey{}, d)
	for {
		n, err := conn.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.cfg.Log.Debug("udp read", "err", err)
			time.Sleep(time.Millisecond) // never spin on an error that repeats
			continue
		}
		replies := 0
		q.now = time.Now()
		for i := 0; i < n; i++ {
			w := &writers[i]
			w.reset(conn.addr(i))
			d.deferred = false
			s.servePacket(ctx, d, q, w, conn.datagram(i))
			if w.reply != nil {
				conn.setReply(replies, i, w.reply)
				replies++
			}
		}
		for sent := 0; sent < replies; {
			k, err := conn.send(sent, replies)
			if err != nil {
				// The first datagram could not be sent (its client's
				// route, say): drop it and send the others.
				s.cfg.Log.Debug("udp write", "err", err)
				k = 1
			}
			sent += k
		}
	}
}

// servePacket answers one datagram as miekg/dns's server would (header
// check, parse, FORMERR or NOTIMP for what is rejected), inline when it
// can: from stored bytes if it can (wirepath.go), else through the chain.
func (s *Server) servePacket(ctx context.Context, d *deferral, q *wireQuery, w *udpWriter, b []byte) {
	if len(b) < 12 || len(b) > maxQuerySize {
		return // junk, or too big to be a query: no reply to amplify
	}
	if s.serveWire(q, w, b) {
		return
	}
	h := dns.Header{
		Id:      uint16(b[0])<<8 | uint16(b[1]),
		Bits:    uint16(b[2])<<8 | uint16(b[3]),
		Qdcount: uint16(b[4])<<8 | uint16(b[5]),
		Ancount: uint16(b[6])<<8 | uint16(b[7]),
		Nscount: uint16(b[8])<<8 | uint16(b[9]),
		Arcount: uint16(b[10])<<8 | uint16(b[11]),
	}
	req := new(dns.Msg)
	action := acceptQuery(h)
	if action == dns.MsgAccept && req.Unpack(b) != nil {
		action = dns.MsgReject
	}
	switch action {
	case dns.MsgIgnore:
		return
	case dns.MsgReject, dns.MsgRejectNotImplemented:
		m := new(dns.Msg)
		m.Id = h.Id
		m.Response = true
		m.Opcode = int(h.Bits>>11) & 0xF
		m.Rcode = dns.RcodeFormatError
		if action == dns.MsgRejectNotImplemented {
			m.Rcode = dns.RcodeNotImplemented
		}
		_ = w.WriteMsg(m)
		return
	}
	if s.serve(ctx, w, req) {
		// It needs an upstream: answer from a goroutine of its own, as
		// long as not too many are waiting already.
		d.deferred = false
		select {
		case s.slow <- struct{}{}:
		default:
			reply(&out{ResponseWriter: w, req: req, proto: "udp", s: s}, req, dns.RcodeServerFailure)
			return
		}
		slow := &udpWriter{pc: w.pc, ap: w.ap, remote: w.RemoteAddr(), direct: true}
		go func() {
			defer func() { <-s.slow }()
			s.serve(context.Background(), slow, req)
		}()
	}
}

// udpWriter is the ResponseWriter of the UDP path: in a batch it packs the
// reply into its buffer for sendmmsg; direct, it sends at once.
type udpWriter struct {
	pc     net.PacketConn
	ap     netip.AddrPort // the client
	remote net.Addr       // ap as a net.Addr, made when first asked for
	buf    []byte
	reply  []byte
	direct bool
}

// reset makes w the writer for a new datagram from ap.
func (w *udpWriter) reset(ap netip.AddrPort) {
	w.ap, w.remote, w.reply = ap, nil, nil
}

func (w *udpWriter) LocalAddr() net.Addr { return w.pc.LocalAddr() }

func (w *udpWriter) RemoteAddr() net.Addr {
	if w.remote == nil {
		w.remote = net.UDPAddrFromAddrPort(w.ap)
	}
	return w.remote
}

func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(w.buf[:cap(w.buf)])
	if err != nil {
		return err
	}
	return w.send(b)
}

func (w *udpWriter) Write(b []byte) (int, error) {
	return len(b), w.send(b)
}

func (w *udpWriter) send(b []byte) error {
	if w.direct {
		_, err := w.pc.WriteTo(b, w.RemoteAddr())
		return err
	}
	w.reply = b
	return nil
}

func (w *udpWriter) Close() error        { return nil }
func (w *udpWriter) TsigStatus() error   { return nil }
func (w *udpWriter) TsigTimersOnly(bool) {}
func (w *udpWriter) Hijack()             {}
