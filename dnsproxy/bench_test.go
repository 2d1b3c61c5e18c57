package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkServePacket measures the UDP fast path for one query, from the
// datagram to the packed reply, through the chain the agent builds (zone
// cache → cluster zone → clusterset zone → cache → forward, with metrics): a cluster name,
// a headless one and a cached forwarded name, each without and with EDNS. The first
// answer of each is the zone's or the upstream's; every timed one is a
// cache hit, as in dnsperf's runs.
func BenchmarkServePacket(b *testing.B) {
	up := newUpstreamB(b)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	rec := testRecords()
	set := NewClustersetRecords("east-1", rec)
	fwd := NewForward(ForwardConfig{Upstreams: []netip.AddrPort{up}}, m)
	zone, _ := NewCluster(ZoneConfig{Zone: "cluster.local"}, rec, NewClusterset(ClustersetConfig{}, set, NewCache(CacheConfig{}, fwd, m)))
	front := NewCache(CacheConfig{AuthoritativeOnly: true, Generation: set.Generation}, zone, nil)
	s := NewServer(ServerConfig{}, front, m)
	d := &deferral{}
	wq := new(wireQuery)
	ctx := context.WithValue(context.Background(), deferralKey{}, d)
	w := &udpWriter{pc: discardConn{}, ap: netip.MustParseAddrPort("10.244.1.2:4000"), buf: make([]byte, 0, 2048)}
	// hl is headless: every hit shuffles its two addresses.
	for _, name := range []string{"web.default.svc.cluster.local.", "hl.default.svc.cluster.local.", "www.example.org."} {
		for _, edns := range []bool{false, true} {
			q := new(dns.Msg)
			q.SetQuestion(name, dns.TypeA)
			label := name
			if edns {
				q.SetEdns0(1232, false)
				label += "+edns"
			}
			pkt, _ := q.Pack()
			s.serve(context.Background(), &udpWriter{pc: discardConn{}, ap: w.ap, direct: true}, q) // fill the cache
			b.Run(label, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					d.deferred = false
					w.reply = nil
					wq.now = time.Now() // the server reads the clock once a batch: here once a query
					s.servePacket(ctx, d, wq, w, pkt)
					if w.reply == nil {
						b.Fatal("no inline reply")
					}
				}
			})
		}
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

// BenchmarkUDPRoundTrip sends bursts of 64 queries for a cached cluster
// name over loopback and reads their answers: the whole UDP path with its
// system calls (recvmmsg, sendmmsg). Per op: one query and its answer.
func BenchmarkUDPRoundTrip(b *testing.B) {
	rec := testRecords()
	zone, _ := NewCluster(ZoneConfig{Zone: "cluster.local"}, rec, HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) {}))
	m, _ := NewMetrics(prometheus.NewRegistry())
	s := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, NewCache(CacheConfig{AuthoritativeOnly: true, Generation: rec.Generation}, zone, nil), m)
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	uc, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(s.Addr()))
	if err != nil {
		b.Fatal(err)
	}
	defer uc.Close()
	q := new(dns.Msg)
	q.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	pkt, _ := q.Pack()
	buf := make([]byte, 2048)
	roundTrip := func(n int) {
		for range n {
			if _, err := uc.Write(pkt); err != nil {
				b.Fatal(err)
			}
		}
		uc.SetReadDeadline(time.Now().Add(5 * time.Second))
		for range n {
			if _, err := uc.Read(buf); err != nil {
				b.Fatal(err)
			}
		}
	}
	roundTrip(1) // the zone's answer, then cached
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		roundTrip(min(64, b.N-i))
	}
}

// BenchmarkServeWireParallel answers a cached cluster name from stored
// bytes on every CPU at once (-cpu 1,2,...): what readers of several
// sockets share (the cache's lock, the metrics) shows as ns/op that does
// not fall with more CPUs.
func BenchmarkServeWireParallel(b *testing.B) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	rec := testRecords()
	set := NewClustersetRecords("east-1", rec)
	zone, _ := NewCluster(ZoneConfig{Zone: "cluster.local"}, rec, NewClusterset(ClustersetConfig{}, set, NewCache(CacheConfig{}, nil, m)))
	s := NewServer(ServerConfig{}, NewCache(CacheConfig{AuthoritativeOnly: true, Generation: set.Generation}, zone, nil), m)
	q := new(dns.Msg)
	q.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
	pkt, _ := q.Pack()
	ap := netip.MustParseAddrPort("10.244.1.2:4000")
	s.serve(context.Background(), &udpWriter{pc: discardConn{}, ap: ap, direct: true}, q) // fill the cache
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		wq := new(wireQuery)
		w := &udpWriter{pc: discardConn{}, ap: ap, buf: make([]byte, 0, 2048)}
		for pb.Next() {
			wq.now = time.Now()
			if !s.serveWire(wq, w, pkt) {
				b.Error("not answered from the cache")
				return
			}
		}
	})
}
