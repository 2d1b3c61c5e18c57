package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fuzzWriter is a ResponseWriter that keeps the packed reply.
type fuzzWriter struct {
	remote net.Addr
	out    []byte
}

func (w *fuzzWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(169, 254, 20, 10), Port: 53}
}
func (w *fuzzWriter) RemoteAddr() net.Addr { return w.remote }
func (w *fuzzWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	w.out = b
	return nil
}
func (w *fuzzWriter) Write(b []byte) (int, error) { w.out = b; return len(b), nil }
func (w *fuzzWriter) Close() error                { return nil }
func (w *fuzzWriter) TsigStatus() error           { return nil }
func (w *fuzzWriter) TsigTimersOnly(bool)         {}
func (w *fuzzWriter) Hijack()                     {}

// FuzzQuery feeds arbitrary packets through what the server does with
// one: the header check, parsing, the guard and the whole chain (the
// cluster zone, the clusterset zone, and an upstream that is not there).
// Nothing may panic, and every reply must
// pack, carry the query's id and fit in 512 bytes (no EDNS over UDP) or in
// the advertised size.
func FuzzQuery(f *testing.F) {
	for _, s := range []struct {
		name  string
		qtype uint16
		edns  bool
	}{
		{"web.default.svc.cluster.local.", dns.TypeA, false},
		{"_http._tcp.hl.default.svc.cluster.local.", dns.TypeSRV, true},
		{"big.default.svc.cluster.local.", dns.TypeA, false},
		{"ext.default.svc.cluster.local.", dns.TypeA, true},
		{"10.0.96.10.in-addr.arpa.", dns.TypePTR, false},
		{"fd00--9.default.pod.cluster.local.", dns.TypeAAAA, false},
		{"cluster.local.", dns.TypeAXFR, false},
		{"hl.default.svc.clusterset.local.", dns.TypeA, false},
		{"_http._tcp.hl.default.svc.clusterset.local.", dns.TypeSRV, true},
		{"pet-0.west-1.hl.default.svc.clusterset.local.", dns.TypeA, false},
		{"west-1.hl.default.svc.clusterset.local.", dns.TypeAAAA, false},
		{"dns-version.clusterset.local.", dns.TypeTXT, false},
		{"5.1.245.10.in-addr.arpa.", dns.TypePTR, false},
	} {
		m := new(dns.Msg)
		m.SetQuestion(s.name, s.qtype)
		if s.edns {
			m.SetEdns0(4096, true)
		}
		b, _ := m.Pack()
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}) // a pointer loop

	rec, set := testSet(f)
	fwd := NewForward(ForwardConfig{Upstreams: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}, Timeout: 50 * time.Millisecond}, nil)
	zone, _ := NewCluster(ZoneConfig{Zone: "cluster.local"}, rec, NewClusterset(ClustersetConfig{}, set, NewCache(CacheConfig{}, fwd, nil)))
	s := NewServer(ServerConfig{Allowed: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}, zone, nil)
	remote := &net.UDPAddr{IP: net.IPv4(10, 244, 1, 2), Port: 40000}

	pc := &discardConn{}
	d := &deferral{}
	fast := context.WithValue(context.Background(), deferralKey{}, d)

	f.Fuzz(func(t *testing.T, b []byte) {
		// The UDP fast path, as serveUDPBatch calls it.
		d.deferred = false
		bw := &udpWriter{pc: pc, ap: remote.AddrPort(), buf: make([]byte, 0, 2048)}
		s.servePacket(fast, d, new(wireQuery), bw, b)
		if bw.reply != nil {
			if resp := new(dns.Msg); resp.Unpack(bw.reply) != nil || len(bw.reply) > 1232 {
				t.Fatalf("fast path reply of %d bytes does not parse or is too big", len(bw.reply))
			}
		}
		if len(b) < 12 {
			return
		}
		// As miekg/dns does before calling the handler.
		req := new(dns.Msg)
		var h dns.Header
		h.Id = uint16(b[0])<<8 | uint16(b[1])
		h.Bits = uint16(b[2])<<8 | uint16(b[3])
		h.Qdcount = uint16(b[4])<<8 | uint16(b[5])
		h.Ancount = uint16(b[6])<<8 | uint16(b[7])
		h.Nscount = uint16(b[8])<<8 | uint16(b[9])
		h.Arcount = uint16(b[10])<<8 | uint16(b[11])
		if acceptQuery(h) != dns.MsgAccept || req.Unpack(b) != nil {
			return
		}
		w := &fuzzWriter{remote: remote}
		s.ServeDNS(w, req)
		if w.out == nil {
			t.Fatal("no reply")
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(w.out); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("reply id %d response %v, want id %d", resp.Id, resp.Response, req.Id)
		}
		limit := 512
		if req.IsEdns0() != nil {
			limit = 1232
		}
		if len(w.out) > limit {
			t.Fatalf("UDP reply of %d bytes, limit %d", len(w.out), limit)
		}
	})
}

// discardConn is a PacketConn that drops what is written to it.
type discardConn struct{ net.PacketConn }

func (discardConn) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(169, 254, 20, 10), Port: 53}
}
func (discardConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }
