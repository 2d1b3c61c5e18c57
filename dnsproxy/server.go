package dnsproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// ServerConfig configures where and for whom the proxy listens.
type ServerConfig struct {
	// Addr is the UDP and TCP address to listen on (port 0 picks one,
	// the same for both where possible; tests use it).
	Addr netip.AddrPort
	// Allowed are the client networks answered; others get REFUSED.
	// Empty allows every client.
	Allowed []netip.Prefix
	// UDPSize is the EDNS buffer size the proxy advertises and the most
	// it sends over UDP. Default 1232.
	UDPSize uint16
	// Log is the proxy's logger.
	Log *slog.Logger
}

// Server serves a handler chain over UDP and TCP behind the guard.
type Server struct {
	cfg     ServerConfig
	chain   Handler
	metrics *Metrics
	slow    chan struct{} // a token per UDP query waiting for upstreams

	mu    sync.Mutex // guards the fields below
	udp   []net.PacketConn
	tcp   *dns.Server
	bound netip.AddrPort
}

// NewServer makes a server for chain.
func NewServer(cfg ServerConfig, chain Handler, m *Metrics) *Server {
	if cfg.UDPSize < dns.MinMsgSize {
		cfg.UDPSize = upstreamUDPSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, chain: chain, metrics: m, slow: make(chan struct{}, maxSlow)}
}

// ServeDNS implements dns.Handler (the TCP path): the guard, then the
// chain, with the reply shaped on the way out (see out).
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	// No deadline here: the forwarder bounds each upstream attempt, and
	// the cluster zone never waits.
	s.serve(context.Background(), w, r)
}

// serve answers r through the guard and the chain. It returns true,
// having written nothing, when ctx carries a deferral and the answer needs
// I/O (see udpbatch.go).
func (s *Server) serve(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (deferred bool) {
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	o := &out{ResponseWriter: w, req: r, proto: proto, s: s}
	if rc := s.check(w, r); rc >= 0 {
		reply(o, r, rc)
		return false
	}
	s.chain.ServeDNS(ctx, o, r)
	if !o.written {
		if d := deferIO(ctx); d != nil && d.deferred {
			return true
		}
		reply(o, r, dns.RcodeServerFailure)
	}
	return false
}

// Start listens on UDP and TCP and serves until Close. It returns once
// every socket is bound. UDP is served from one SO_REUSEPORT socket per
// CPU (the kernel spreads clients over them), so reads run in parallel.
func (s *Server) Start() error {
	var (
		pcs  []net.PacketConn
		l    net.Listener
		addr netip.AddrPort
		err  error
	)
	// Port 0 (tests) takes the port the kernel gives TCP; if UDP has it
	// in use, another.
	for range 8 {
		pcs, l, addr, err = s.listen()
		if err == nil || s.cfg.Addr.Port() != 0 || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if err != nil {
		return err
	}
	tcp := &dns.Server{Listener: l, Handler: s, MsgAcceptFunc: acceptQuery,
		ReadTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }}
	s.mu.Lock()
	s.udp, s.tcp, s.bound = pcs, tcp, addr
	s.mu.Unlock()
	for _, pc := range pcs {
		go s.serveUDPBatch(pc)
	}
	go func() {
		if err := tcp.ActivateAndServe(); err != nil {
			s.cfg.Log.Error("dns server stopped", "err", err)
		}
	}()
	s.cfg.Log.Info("dns proxy listening", "udp", addr, "udpSockets", len(pcs), "tcp", l.Addr())
	return nil
}

// listen binds the TCP listener and the UDP sockets on one port.
func (s *Server) listen() ([]net.PacketConn, net.Listener, netip.AddrPort, error) {
	addr := s.cfg.Addr
	l, err := net.Listen("tcp", addr.String())
	if err != nil {
		return nil, nil, addr, fmt.Errorf("failed to listen on tcp %s: %w", addr, err)
	}
	addr = netip.AddrPortFrom(addr.Addr(), uint16(l.Addr().(*net.TCPAddr).Port))
	lc := net.ListenConfig{Control: reusePort}
	var pcs []net.PacketConn
	for range max(1, min(runtime.GOMAXPROCS(0), 8)) {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr.String())
		if err != nil {
			for _, pc := range pcs {
				pc.Close()
			}
			l.Close()
			return nil, nil, addr, fmt.Errorf("failed to listen on udp %s: %w", addr, err)
		}
		pcs = append(pcs, pc)
	}
	return pcs, l, addr, nil
}

// udpReadBuffer is the receive buffer asked for each UDP socket. The
// kernel's default (about 200 KiB, a few hundred queries) overflows in a
// burst that comes while the reader is off the CPU, and every query it
// drops costs its client a timeout; unbound and others ask for 4 MiB too.
const udpReadBuffer = 4 << 20

// reusePort sets SO_REUSEPORT, so that several sockets share one address,
// and, on UDP sockets, the receive buffer (udpReadBuffer; past the
// system's rmem_max only with CAP_NET_ADMIN, else as much as it allows).
func reusePort(network, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		if serr == nil && strings.HasPrefix(network, "udp") {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, udpReadBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, udpReadBuffer) // best effort
			}
		}
	}); err != nil {
		return err
	}
	return serr
}

// Addr is the bound address (UDP and TCP share the port).
func (s *Server) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.bound.IsValid() {
		return s.cfg.Addr
	}
	return s.bound
}

// Close stops every listener.
func (s *Server) Close() error {
	s.mu.Lock()
	udp, tcp := s.udp, s.tcp
	s.udp, s.tcp, s.bound = nil, nil, netip.AddrPort{}
	s.mu.Unlock()
	var errs []error
	for _, pc := range udp {
		errs = append(errs, pc.Close())
	}
	if tcp != nil {
		errs = append(errs, tcp.Shutdown())
	}
	return errors.Join(errs...)
}

// acceptQuery is miekg/dns's first look at a message, from its header
// alone: responses are dropped, opcodes other than QUERY get NOTIMP, and
// a query must have one question and no answer or authority records.
func acceptQuery(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	if opcode := int(dh.Bits>>11) & 0xF; opcode != dns.OpcodeQuery {
		return dns.MsgRejectNotImplemented
	}
	if dh.Qdcount != 1 || dh.Ancount != 0 || dh.Nscount != 0 || dh.Arcount > 2 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// out is the writer the chain answers through. It sends one reply: the
// client's id, question and EDNS (its OPT, with the proxy's buffer size
// and any extended error the chain gave), cut to fit the client's UDP
// size with TC set (RFC 6891 and 1035), and counted in the metrics.
type out struct {
	dns.ResponseWriter
	req     *dns.Msg
	proto   string
	s       *Server
	written bool
}

func (o *out) WriteMsg(m *dns.Msg) error {
	if o.written {
		return errors.New("dnsproxy: a second reply to one query")
	}
	o.written = true
	m.Id = o.req.Id
	m.Response = true
	m.RecursionAvailable = true // the proxy recurses for every client it answers
	m.Opcode = o.req.Opcode
	if len(o.req.Question) > 0 {
		m.Question = []dns.Question{o.req.Question[0]}
	}
	o.setEDNS(m)
	limit := dns.MaxMsgSize
	if o.proto == "udp" {
		limit = dns.MinMsgSize
		if opt := o.req.IsEdns0(); opt != nil {
			limit = int(max(dns.MinMsgSize, min(opt.UDPSize(), o.s.cfg.UDPSize)))
		}
	}
	m.Truncate(limit)
	err := o.ResponseWriter.WriteMsg(m)
	if err != nil {
		// A reply that does not pack (a CNAME chain past the name length
		// limit, say) becomes a bare SERVFAIL.
		o.s.cfg.Log.Debug("reply did not pack", "name", m.Question, "err", err)
		f := new(dns.Msg)
		f.SetRcode(o.req, dns.RcodeServerFailure)
		f.RecursionAvailable = true
		o.setEDNS(f)
		m = f
		err = o.ResponseWriter.WriteMsg(f)
	}
	qtype := uint16(0)
	if len(o.req.Question) > 0 {
		qtype = o.req.Question[0].Qtype
	}
	o.s.metrics.query(qtype, m.Rcode, o.proto)
	return err
}

// setEDNS replaces whatever OPT m carries with one for the client: none
// if it sent none, else the proxy's size, the client's DO bit and the
// extended errors of m's own OPT.
func (o *out) setEDNS(m *dns.Msg) {
	var ede []dns.EDNS0
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if opt, ok := rr.(*dns.OPT); ok {
			for _, e := range opt.Option {
				if e.Option() == dns.EDNS0EDE {
					ede = append(ede, e)
				}
			}
			continue
		}
		extra = append(extra, rr)
	}
	m.Extra = extra
	ro := o.req.IsEdns0()
	if ro == nil {
		if m.Rcode > 0xF {
			m.Rcode = dns.RcodeServerFailure // an extended rcode needs EDNS
		}
		return
	}
	opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	opt.SetUDPSize(o.s.cfg.UDPSize)
	opt.SetDo(ro.Do())
	opt.Option = ede
	m.Extra = append(m.Extra, opt)
}

func (o *out) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	return len(b), o.WriteMsg(m)
}
