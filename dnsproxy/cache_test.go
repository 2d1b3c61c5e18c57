package dnsproxy

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestCache(t *testing.T) {
	up := newUpstream(t, "udp")
	clk := &clock{t: time.Unix(1_000_000, 0)}
	p := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{up.addr}, now: clk.now})

	m := p.ask(t, "udp", "www.example.org.", dns.TypeA, 0)
	if n := up.queries.Load(); n != 1 || len(m.Answer) != 1 || m.Answer[0].Header().Ttl != 300 {
		t.Fatalf("first ask: %d upstream queries, answer %v", n, m.Answer)
	}
	clk.add(100 * time.Second)
	m = p.ask(t, "udp", "WWW.example.ORG.", dns.TypeA, 0)
	if n := up.queries.Load(); n != 1 {
		t.Errorf("a cached name went upstream again (%d queries)", n)
	}
	if len(m.Answer) != 1 || m.Answer[0].Header().Ttl != 200 || m.Answer[0].Header().Name != "WWW.example.ORG." {
		t.Errorf("cached answer %v, want TTL 200 and the asked case", m.Answer)
	}
	// Another type of the same name is another entry.
	p.ask(t, "udp", "www.example.org.", dns.TypeAAAA, 0)
	if n := up.queries.Load(); n != 2 {
		t.Errorf("AAAA: %d upstream queries, want 2", n)
	}
	clk.add(201 * time.Second)
	p.ask(t, "udp", "www.example.org.", dns.TypeA, 0)
	if n := up.queries.Load(); n != 3 {
		t.Errorf("an expired answer was served (%d upstream queries, want 3)", n)
	}

	// Negative answers are cached for the SOA's minimum (60s here).
	before := up.queries.Load()
	p.ask(t, "udp", "nx.example.org.", dns.TypeA, 0)
	clk.add(59 * time.Second)
	if m := p.ask(t, "udp", "nx.example.org.", dns.TypeA, 0); m.Rcode != dns.RcodeNameError || !hasSOA(m) {
		t.Errorf("cached NXDOMAIN: %s", m)
	}
	if n := up.queries.Load() - before; n != 1 {
		t.Errorf("NXDOMAIN: %d upstream queries within its negative TTL, want 1", n)
	}
	clk.add(2 * time.Second)
	p.ask(t, "udp", "nx.example.org.", dns.TypeA, 0)
	if n := up.queries.Load() - before; n != 2 {
		t.Errorf("NXDOMAIN past its negative TTL: %d upstream queries, want 2", n)
	}
	// www A and nx A: the upstream's NODATA for www AAAA has no SOA, so
	// no negative TTL, and cluster names never go through the cache.
	p.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA, 0)
	if p.cache.Len() != 2 {
		t.Errorf("cache holds %d answers, want 2", p.cache.Len())
	}
}

func TestCacheBounded(t *testing.T) {
	up := newUpstream(t, "udp")
	fwd := NewForward(ForwardConfig{Upstreams: []netip.AddrPort{up.addr}}, nil)
	c := NewCache(CacheConfig{Size: 3}, fwd, nil)
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		r := new(dns.Msg)
		r.SetQuestion(n+".example.org.", dns.TypeA)
		record(t.Context(), c, nil, r)
	}
	if c.Len() != 3 {
		t.Errorf("cache of size 3 holds %d", c.Len())
	}
	if c.get(keyOf(question("a.example.org.")), time.Now()) != nil || c.get(keyOf(question("e.example.org.")), time.Now()) == nil {
		t.Error("the least recently used answer was not the one evicted")
	}
}

func question(name string) *dns.Msg {
	r := new(dns.Msg)
	r.SetQuestion(name, dns.TypeA)
	return r
}

func TestServeStale(t *testing.T) {
	up := newUpstream(t, "udp")
	clk := &clock{t: time.Unix(1_000_000, 0)}
	stale := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{up.addr}, now: clk.now, serveStale: time.Hour})
	fresh := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{up.addr}, now: clk.now})
	for _, p := range []*proxy{stale, fresh} {
		p.ask(t, "udp", "short.example.org.", dns.TypeA, 0)
	}
	up.failing.Store(true)
	clk.add(10 * time.Second)
	m := stale.ask(t, "udp", "short.example.org.", dns.TypeA, 0)
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 || m.Answer[0].Header().Ttl != staleTTL {
		t.Errorf("serve-stale: %s, want the old answer with TTL %d", m, staleTTL)
	}
	if m := fresh.ask(t, "udp", "short.example.org.", dns.TypeA, 0); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("without serve-stale: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	clk.add(2 * time.Hour)
	if m := stale.ask(t, "udp", "short.example.org.", dns.TypeA, 0); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("past the serve-stale window: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
}

// TestZoneCache is the cache in front of the cluster zone: it keeps the
// zone's (authoritative) answers until the records' generation moves, and
// passes everything else through.
func TestZoneCache(t *testing.T) {
	var calls atomic.Int64
	var gen atomic.Uint64
	zone := HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) {
		calls.Add(1)
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = strings.HasSuffix(r.Question[0].Name, ".cluster.local.")
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
			A: net.IPv4(10, 96, 0, byte(gen.Load()))}}
		_ = w.WriteMsg(m)
	})
	c := NewCache(CacheConfig{AuthoritativeOnly: true, Generation: gen.Load}, zone, nil)
	ask := func(name string) *dns.Msg {
		t.Helper()
		m := record(t.Context(), c, nil, question(name))
		if m == nil || len(m.Answer) != 1 {
			t.Fatalf("%s: no answer: %v", name, m)
		}
		return m
	}
	ask("web.default.svc.cluster.local.")
	m := ask("WEB.default.svc.cluster.local.")
	if calls.Load() != 1 {
		t.Errorf("the zone was asked %d times for one name, want 1 (the second from the cache)", calls.Load())
	}
	if got := m.Answer[0].Header().Name; got != "WEB.default.svc.cluster.local." {
		t.Errorf("owner name %q, want the question's case", got)
	}
	gen.Add(1) // a Service changed
	if m := ask("web.default.svc.cluster.local."); calls.Load() != 2 || !m.Answer[0].(*dns.A).A.Equal(net.IPv4(10, 96, 0, 1)) {
		t.Errorf("after a change: zone asked %d times, answer %s; want 2 and the new address", calls.Load(), m.Answer[0])
	}
	ask("www.example.org.")
	ask("www.example.org.")
	if calls.Load() != 4 {
		t.Errorf("a forwarded (non-authoritative) answer was cached: zone asked %d times, want 4", calls.Load())
	}
}

// TestCacheLRUPromotes: a hit keeps its answer from being the next one
// evicted, once it was stored (or last promoted) promoteEvery ago.
func TestCacheLRUPromotes(t *testing.T) {
	up := newUpstream(t, "udp")
	clk := &clock{t: time.Unix(1_000_000, 0)}
	fwd := NewForward(ForwardConfig{Upstreams: []netip.AddrPort{up.addr}}, nil)
	c := NewCache(CacheConfig{Size: 3, Now: clk.now}, fwd, nil)
	ask := func(n string) { record(t.Context(), c, nil, question(n+".example.org.")) }
	for _, n := range []string{"a", "b", "c"} {
		ask(n)
	}
	clk.add(promoteEvery)
	ask("a") // a hit: a moves to the front
	ask("d") // evicts the least recently used: b
	if c.get(keyOf(question("a.example.org.")), clk.now()) == nil || c.get(keyOf(question("b.example.org.")), clk.now()) != nil {
		t.Error("a hit did not keep its answer from eviction")
	}
	if n := up.queries.Load(); n != 4 {
		t.Errorf("%d upstream queries, want 4 (a's second ask from the cache)", n)
	}
}
