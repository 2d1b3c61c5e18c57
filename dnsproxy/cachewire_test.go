package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// captureConn is a PacketConn that keeps the last datagram written to it.
type captureConn struct {
	discardConn
	last []byte
}

func (c *captureConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.last = append(c.last[:0], b...)
	return len(b), nil
}

// wireProxy is the agent's chain (zone cache → cluster zone → clusterset
// zone → cache → forward) on a fake clock, served without sockets.
type wireProxy struct {
	s      *Server
	rec    *KubeRecords
	clk    *clock
	remote netip.AddrPort
}

func newWireProxy(t *testing.T) *wireProxy {
	up := newUpstream(t, "udp")
	clk := &clock{t: time.Unix(1_000_000, 0)}
	rec := testRecords()
	set := NewClustersetRecords("east-1", rec)
	fwd := NewForward(ForwardConfig{Upstreams: []netip.AddrPort{up.addr}, Timeout: time.Second}, nil)
	zone, err := NewCluster(ZoneConfig{Zone: "cluster.local"}, rec, NewClusterset(ClustersetConfig{}, set, NewCache(CacheConfig{Now: clk.now}, fwd, nil)))
	if err != nil {
		t.Fatal(err)
	}
	front := NewCache(CacheConfig{AuthoritativeOnly: true, Generation: set.Generation, Now: clk.now}, zone, nil)
	s := NewServer(ServerConfig{Allowed: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}, front, nil)
	return &wireProxy{s: s, rec: rec, clk: clk, remote: netip.MustParseAddrPort("10.244.1.2:4000")}
}

// slow answers pkt the slow way (full unpack, guard, chain).
func (p *wireProxy) slow(t *testing.T, pkt []byte) *dns.Msg {
	t.Helper()
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		t.Fatal(err)
	}
	pc := &captureConn{}
	p.s.serve(context.Background(), &udpWriter{pc: pc, ap: p.remote, direct: true}, req)
	resp := new(dns.Msg)
	if err := resp.Unpack(pc.last); err != nil {
		t.Fatalf("slow path reply: %v", err)
	}
	return resp
}

// wire answers pkt from stored bytes, or returns nil if the wire path
// leaves it to the slow path.
func (p *wireProxy) wire(t *testing.T, pkt []byte) *dns.Msg {
	t.Helper()
	w := &udpWriter{pc: discardConn{}, ap: p.remote, buf: make([]byte, 0, 2048)}
	if !p.s.serveWire(new(wireQuery), w, pkt) {
		if w.reply != nil {
			t.Fatal("the wire path wrote a reply it disowned")
		}
		return nil
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(w.reply); err != nil {
		t.Fatalf("wire path reply does not parse: %v", err)
	}
	return resp
}

// TestWirePathMatchesSlowPath: a cache hit answered from stored bytes is
// the reply the slow path gives the same query (id, flags, the question
// in the client's case, records and their aged TTLs, OPT), and what the
// wire path does not serve (too big for the client, uncached, unusual
// queries) it leaves alone.
func TestWirePathMatchesSlowPath(t *testing.T) {
	type opt struct {
		size    uint16
		do      bool
		options []dns.EDNS0
		version uint8
	}
	cases := []struct {
		name  string // as asked the second time (the first is lower case)
		qtype uint16
		edns  *opt
		cd    bool
		hit   bool // answered by the wire path
	}{
		{"WeB.Default.svc.CLUSTER.local.", dns.TypeA, nil, false, true},
		{"web.default.svc.cluster.local.", dns.TypeA, &opt{size: 1232, do: true}, false, true},
		{"web.default.svc.cluster.local.", dns.TypeA, &opt{size: 100}, false, true},
		{"web.default.svc.cluster.local.", dns.TypeAAAA, nil, true, true}, // NODATA, CD
		{"Dual.default.svc.cluster.local.", dns.TypeAAAA, &opt{size: 4096}, false, true},
		{"hl.default.svc.cluster.local.", dns.TypeA, nil, false, true},
		{"_HTTP._tcp.hl.default.svc.cluster.local.", dns.TypeSRV, &opt{size: 1232}, false, true},
		{"nx.default.svc.cluster.local.", dns.TypeA, nil, false, true}, // NXDOMAIN, SOA
		{"dns-version.cluster.local.", dns.TypeTXT, nil, false, true},
		{"DNS-version.clusterset.local.", dns.TypeTXT, nil, false, true},
		{"10.0.96.10.in-addr.arpa.", dns.TypePTR, nil, false, true}, // the zone's, in the zone cache
		{"WWW.example.ORG.", dns.TypeA, nil, false, true},
		{"www.example.org.", dns.TypeA, &opt{size: 1232, options: []dns.EDNS0{&dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"}}}, false, true},
		{"Nx.Example.Org.", dns.TypeA, &opt{size: 1232}, false, true}, // a cached NXDOMAIN
		{"www.example.org.", dns.TypeA, &opt{size: 1232, options: []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID}}}, false, false},
		{"www.example.org.", dns.TypeA, &opt{size: 1232, version: 1}, false, false},   // BADVERS
		{"big.default.svc.cluster.local.", dns.TypeA, nil, false, false},              // truncated
		{"big.default.svc.cluster.local.", dns.TypeA, &opt{size: 4096}, false, false}, // 1232 bytes at most
		{"cluster.local.", dns.TypeAXFR, nil, false, false},
		{"ext.default.svc.cluster.local.", dns.TypeA, nil, false, true}, // a CNAME and its target
	}
	p := newWireProxy(t)
	for _, c := range cases {
		pack := func(name string) []byte {
			m := new(dns.Msg)
			m.SetQuestion(name, c.qtype)
			m.Id = dns.Id()
			m.CheckingDisabled = c.cd
			if c.edns != nil {
				m.SetEdns0(c.edns.size, c.edns.do)
				o := m.IsEdns0()
				o.Option = c.edns.options
				o.SetVersion(c.edns.version)
			}
			b, err := m.Pack()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		label := c.name + " " + dns.TypeToString[c.qtype]
		p.slow(t, pack(strings.ToLower(c.name))) // stores the answer
		p.clk.add(2 * time.Second)
		pkt := pack(c.name)
		got := p.wire(t, pkt)
		if (got != nil) != c.hit {
			t.Errorf("%s: answered by the wire path: %v, want %v", label, got != nil, c.hit)
		}
		if got == nil {
			continue
		}
		// Address runs are shuffled on each path (shuffle.go): compare
		// them in one order.
		if want := p.slow(t, pkt); sortedAnswer(got).String() != sortedAnswer(want).String() {
			t.Errorf("%s: the wire path answered\n%s\nthe slow path\n%s", label, got, want)
		}
		if got.Question[0].Name != c.name {
			t.Errorf("%s: question %q, want the client's case", label, got.Question[0].Name)
		}
		p.clk.add(-2 * time.Second)
	}

	// A change to the records is a miss for every zone answer.
	pkt := func(name string) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		b, _ := m.Pack()
		return b
	}
	p.rec.NamespaceHandler().OnAdd(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, false)
	if p.wire(t, pkt("web.default.svc.cluster.local.")) != nil {
		t.Error("a zone answer was served from the wire path after the records changed")
	}
	if p.wire(t, pkt("www.example.org.")) == nil {
		t.Error("a forwarded answer was not served from the wire path after the records changed")
	}
	// Expired answers are misses.
	p.clk.add(time.Hour)
	if p.wire(t, pkt("www.example.org.")) != nil {
		t.Error("an expired answer was served from the wire path")
	}
}

func TestParseQuery(t *testing.T) {
	plain := func(name string, mut func(*dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		if mut != nil {
			mut(m)
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, c := range []struct {
		what  string
		pkt   []byte
		ok    bool
		lname string
	}{
		{"plain", plain("Web.Default.svc.cluster.local.", nil), true, "web.default.svc.cluster.local."},
		{"root", plain(".", nil), true, "."},
		{"EDNS", plain("a.b.", func(m *dns.Msg) { m.SetEdns0(4096, true) }), true, "a.b."},
		{"a dot in a label", plain(`a\.b.c.`, nil), false, ""},
		{"a space", plain(`a\032b.c.`, nil), false, ""},
		{"not ASCII", plain(`a\200b.c.`, nil), false, ""},
		{"a response", plain("a.b.", func(m *dns.Msg) { m.Response = true }), false, ""},
		{"NOTIFY", plain("a.b.", func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), false, ""},
		{"two additional records", plain("a.b.", func(m *dns.Msg) {
			m.SetEdns0(4096, false)
			m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: "a.b.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)})
		}), false, ""},
		{"an A record as additional", plain("a.b.", func(m *dns.Msg) {
			m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: "a.b.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(1, 2, 3, 4)})
		}), false, ""},
		{"trailing bytes", append(plain("a.b.", nil), 0), false, ""},
		{"short", plain("a.b.", nil)[:15], false, ""},
		{"a pointer", []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}, false, ""},
		{"OPT data past the end", func() []byte {
			b := plain("a.b.", func(m *dns.Msg) { m.SetEdns0(4096, false) })
			b[len(b)-1] = 3 // rdlength 3, no data
			return b
		}(), false, ""},
		{"a short option", append(func() []byte {
			b := plain("a.b.", func(m *dns.Msg) { m.SetEdns0(4096, false) })
			b[len(b)-1] = 3
			return b
		}(), 0, 10, 0), false, ""},
	} {
		q := new(wireQuery)
		ok := parseQuery(q, c.pkt)
		if ok != c.ok || (ok && string(q.lname) != c.lname) {
			t.Errorf("%s: ok %v name %q, want %v %q", c.what, ok, q.lname, c.ok, c.lname)
		}
	}
}

// TestWirePathMetrics: a query answered from stored bytes is counted as
// the slow path counts it (queries by type, rcode and transport; a cache
// hit for a forwarded name, none for the zone cache's).
func TestWirePathMetrics(t *testing.T) {
	up := newUpstream(t, "udp")
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	rec := testRecords()
	set := NewClustersetRecords("east-1", rec)
	fwd := NewForward(ForwardConfig{Upstreams: []netip.AddrPort{up.addr}, Timeout: time.Second}, m)
	zone, _ := NewCluster(ZoneConfig{Zone: "cluster.local"}, rec, NewClusterset(ClustersetConfig{}, set, NewCache(CacheConfig{}, fwd, m)))
	s := NewServer(ServerConfig{}, NewCache(CacheConfig{AuthoritativeOnly: true, Generation: set.Generation}, zone, nil), m)
	remote := netip.MustParseAddrPort("10.244.1.2:4000")
	for _, c := range []struct {
		name  string
		qtype uint16
	}{{"www.example.org.", dns.TypeA}, {"nx.example.org.", dns.TypeA}, {"web.default.svc.cluster.local.", dns.TypeA}, {"nx.default.svc.cluster.local.", dns.TypeAAAA}} {
		r := new(dns.Msg)
		r.SetQuestion(c.name, c.qtype)
		pkt, _ := r.Pack()
		s.serve(context.Background(), &udpWriter{pc: discardConn{}, ap: remote, direct: true}, r)
		for range 2 {
			if !s.serveWire(new(wireQuery), &udpWriter{pc: discardConn{}, ap: remote, buf: make([]byte, 0, 512)}, pkt) {
				t.Fatalf("%s was not answered from the cache", c.name)
			}
		}
	}
	for _, c := range []struct {
		metric prometheus.Counter
		want   float64
	}{
		{m.queries.WithLabelValues("A", "NOERROR", "udp"), 6},
		{m.queries.WithLabelValues("A", "NXDOMAIN", "udp"), 3},
		{m.queries.WithLabelValues("AAAA", "NXDOMAIN", "udp"), 3},
		{m.cacheHits, 4},
		{m.cacheMisses, 2},
	} {
		var got dto.Metric
		if err := c.metric.Write(&got); err != nil {
			t.Fatal(err)
		}
		if got.GetCounter().GetValue() != c.want {
			t.Errorf("%s: %v, want %v", c.metric.Desc(), got.GetCounter().GetValue(), c.want)
		}
	}
}

// sortedAnswer is m with its answer section sorted, for comparing
// answers whose address runs are shuffled.
func sortedAnswer(m *dns.Msg) *dns.Msg {
	c := m.Copy()
	slices.SortStableFunc(c.Answer, func(a, b dns.RR) int { return strings.Compare(a.String(), b.String()) })
	return c
}
