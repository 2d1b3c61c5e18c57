package dnsproxy

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
)

func TestAddrRun(t *testing.T) {
	a := func(name, addr string) dns.RR {
		return &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: netip.MustParseAddr(addr).AsSlice()}
	}
	aaaa := func(name, addr string) dns.RR {
		return &dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET}, AAAA: netip.MustParseAddr(addr).AsSlice()}
	}
	cname := &dns.CNAME{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET}, Target: "h."}
	srv := &dns.SRV{Hdr: dns.RR_Header{Name: "h.", Rrtype: dns.TypeSRV, Class: dns.ClassINET}, Target: "h."}
	cases := []struct {
		name string
		rrs  []dns.RR
		want int // where the run starts; len(rrs): none
	}{
		{"empty", nil, 0},
		{"one address", []dns.RR{a("h.", "10.0.0.1")}, 1},
		{"three addresses", []dns.RR{a("h.", "10.0.0.1"), a("H.", "10.0.0.2"), a("h.", "10.0.0.3")}, 0},
		{"AAAA", []dns.RR{aaaa("h.", "fd00::1"), aaaa("h.", "fd00::2")}, 0},
		{"a CNAME, then addresses", []dns.RR{cname, a("h.", "10.0.0.1"), a("h.", "10.0.0.2")}, 1},
		{"a CNAME, then one address", []dns.RR{cname, a("h.", "10.0.0.1")}, 2},
		{"two owners", []dns.RR{a("h.", "10.0.0.1"), a("g.", "10.0.0.2")}, 2},
		{"two families", []dns.RR{a("h.", "10.0.0.1"), aaaa("h.", "fd00::2")}, 2},
		{"not addresses", []dns.RR{srv, srv}, 2},
	}
	for _, c := range cases {
		if got := addrRun(c.rrs); got != c.want {
			t.Errorf("%s: run starts at %d, want %d", c.name, got, c.want)
		}
	}
}

// TestHeadlessAnswersShuffled: a headless Service's addresses come in a
// fresh order on every answer (the zone's own, a zone cache hit on the
// slow path, and one on the wire path), so each endpoint is sometimes
// first; each answer holds every address, with the TTLs and owner names
// a fixed order would have. Other answers keep their one order.
func TestHeadlessAnswersShuffled(t *testing.T) {
	p := newWireProxy(t)
	p.rec.ServiceHandler().OnAdd(svc("default", "three", func(s *corev1.Service) {
		s.Spec.ClusterIP = corev1.ClusterIPNone
	}), false)
	p.rec.EndpointSliceHandler().OnAdd(slice("default", "three-1", "three", 80,
		ep{"10.244.1.11", "", true}, ep{"10.244.2.12", "", true}, ep{"10.244.3.13", "", true}), false)
	want := []string{
		"Three.default.svc.cluster.local. IN A 10.244.1.11",
		"Three.default.svc.cluster.local. IN A 10.244.2.12",
		"Three.default.svc.cluster.local. IN A 10.244.3.13",
	}
	pack := func(name string, qtype uint16) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The zone alone, behind no cache: its own answers.
	zone := p.s.chain.(*Cache).next
	direct := func() *dns.Msg {
		q := new(dns.Msg)
		q.SetQuestion("Three.default.svc.cluster.local.", dns.TypeA)
		return record(context.Background(), zone, nil, q) // the zone reads no address
	}
	pkt := pack("Three.default.svc.cluster.local.", dns.TypeA)
	paths := []struct {
		name string
		ask  func() *dns.Msg
	}{
		{"zone", direct},
		{"zone cache, slow path", func() *dns.Msg { return p.slow(t, pkt) }},
		{"zone cache, wire path", func() *dns.Msg { return p.wire(t, pkt) }},
	}
	p.slow(t, pkt) // stores the answer
	for _, path := range paths {
		first := map[string]int{}
		for range 300 {
			m := path.ask()
			if m == nil {
				t.Fatalf("%s: no answer", path.name)
			}
			if got := rrStrings(m.Answer); !slices.Equal(got, want) {
				t.Fatalf("%s: answer\n  %s\nwant\n  %s", path.name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			for _, rr := range m.Answer {
				if rr.Header().Ttl != 5 {
					t.Fatalf("%s: TTL %d, want 5: %s", path.name, rr.Header().Ttl, rr)
				}
			}
			first[m.Answer[0].(*dns.A).A.String()]++
		}
		for _, a := range []string{"10.244.1.11", "10.244.2.12", "10.244.3.13"} {
			if first[a] == 0 {
				t.Errorf("%s: %s never came first in 300 answers: %v", path.name, a, first)
			}
		}
	}

	// Answers of one address, and SRV answers, come in their one order.
	for _, c := range []struct {
		name  string
		qtype uint16
	}{
		{"web.default.svc.cluster.local.", dns.TypeA},
		{"dual.default.svc.cluster.local.", dns.TypeAAAA},
		{"_http._tcp.hl.default.svc.cluster.local.", dns.TypeSRV},
		{"www.example.org.", dns.TypeA},
	} {
		pkt := pack(c.name, c.qtype)
		once := p.slow(t, pkt)
		for range 20 {
			for _, m := range []*dns.Msg{p.slow(t, pkt), p.wire(t, pkt)} {
				if m == nil || !slices.EqualFunc(m.Answer, once.Answer, func(a, b dns.RR) bool { return a.String() == b.String() }) ||
					!slices.EqualFunc(m.Extra, once.Extra, func(a, b dns.RR) bool { return a.String() == b.String() }) {
					t.Fatalf("%s %s: answer changed order or content:\n%v\nfirst:\n%v", c.name, dns.TypeToString[c.qtype], m, once)
				}
			}
		}
	}
}
