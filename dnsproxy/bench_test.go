package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServePacket measures the UDP fast path for one query, from the
// datagram to the packed reply: a cluster name and a cached forwarded name.
func BenchmarkServePacket(b *testing.B) {
	up := newUpstreamB(b)
	fwd := NewForward(ForwardConfig{Upstreams: []netip.AddrPort{up}}, nil)
	zone, _ := NewCluster(ZoneConfig{Zone: "cluster.local"}, testRecords(), NewCache(CacheConfig{}, fwd, nil))
	s := NewServer(ServerConfig{}, zone, nil)
	d := &deferral{}
	ctx := context.WithValue(context.Background(), deferralKey{}, d)
	w := &udpWriter{pc: discardConn{}, remote: &net.UDPAddr{IP: net.IPv4(10, 244, 1, 2), Port: 4000}, buf: make([]byte, 0, 2048)}
	for _, name := range []string{"web.default.svc.cluster.local.", "www.example.org."} {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		pkt, _ := q.Pack()
		s.serve(context.Background(), &udpWriter{pc: discardConn{}, remote: w.remote, direct: true}, q) // fill the cache
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d.deferred = false
				w.reply = nil
				s.servePacket(ctx, d, w, pkt)
				if w.reply == nil {
					b.Fatal("no inline reply")
				}
			}
		})
	}
}

func newUpstreamB(b *testing.B) netip.AddrPort {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		rr, _ := dns.NewRR(r.Question[0].Name + " 300 IN A 192.0.2.53")
		m.Answer = append(m.Answer, rr)
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	b.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}
