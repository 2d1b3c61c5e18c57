package dnsproxy

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Bad input gets FORMERR, REFUSED or NOTIMP (or, for garbage, nothing),
// and the proxy keeps answering.
func TestBadInput(t *testing.T) {
	up := newUpstream(t, "udp")
	p := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{up.addr}})
	q := func(name string, qtype, qclass uint16, mut func(*dns.Msg)) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		m.Question[0].Qclass = qclass
		if mut != nil {
			mut(m)
		}
		return m
	}
	tests := []struct {
		what  string
		msg   *dns.Msg
		rcode int
	}{
		{"AXFR", q("cluster.local.", dns.TypeAXFR, dns.ClassINET, nil), dns.RcodeRefused},
		{"IXFR", q("cluster.local.", dns.TypeIXFR, dns.ClassINET, nil), dns.RcodeRefused},
		{"ANY", q("web.default.svc.cluster.local.", dns.TypeANY, dns.ClassINET, nil), dns.RcodeNotImplemented},
		{"class CHAOS", q("version.bind.", dns.TypeTXT, dns.ClassCHAOS, nil), dns.RcodeRefused},
		{"class ANY", q("web.default.svc.cluster.local.", dns.TypeA, dns.ClassANY, nil), dns.RcodeRefused},
		{"unknown class", q("web.default.svc.cluster.local.", dns.TypeA, 77, nil), dns.RcodeRefused},
		{"OPT as question", q("cluster.local.", dns.TypeOPT, dns.ClassINET, nil), dns.RcodeFormatError},
		{"UPDATE", q("cluster.local.", dns.TypeSOA, dns.ClassINET, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), dns.RcodeNotImplemented},
		{"NOTIFY", q("cluster.local.", dns.TypeSOA, dns.ClassINET, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), dns.RcodeNotImplemented},
		{"an answer in a query", q("cluster.local.", dns.TypeA, dns.ClassINET, func(m *dns.Msg) {
			rr, _ := dns.NewRR("x. 1 IN A 192.0.2.1")
			m.Answer = []dns.RR{rr}
		}), dns.RcodeFormatError},
		{"two questions", q("cluster.local.", dns.TypeA, dns.ClassINET, func(m *dns.Msg) {
			m.Question = append(m.Question, m.Question[0])
		}), dns.RcodeFormatError},
		{"EDNS version 1", q("web.default.svc.cluster.local.", dns.TypeA, dns.ClassINET, func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
		}), dns.RcodeBadVers},
	}
	for _, network := range []string{"udp", "tcp"} {
		for _, tc := range tests {
			t.Run(network+" "+tc.what, func(t *testing.T) {
				c := &dns.Client{Net: network, Timeout: 2 * time.Second}
				resp, _, err := c.Exchange(tc.msg, p.addr)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Rcode != tc.rcode {
					t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tc.rcode])
				}
				if resp.Id != tc.msg.Id {
					t.Errorf("id %d, want %d", resp.Id, tc.msg.Id)
				}
			})
		}
	}

	t.Run("garbage and truncated packets get no answer; the proxy goes on", func(t *testing.T) {
		conn, err := net.Dial("udp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		good, _ := q("web.default.svc.cluster.local.", dns.TypeA, dns.ClassINET, nil).Pack()
		for _, b := range [][]byte{{}, {1}, []byte("not dns at all"), good[:len(good)-3], make([]byte, 65000)} {
			conn.Write(b)
		}
		m := p.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA, 0)
		if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
			t.Errorf("after garbage: %s", m)
		}
	})

	t.Run("oversized query", func(t *testing.T) {
		m := q("web.default.svc.cluster.local.", dns.TypeA, dns.ClassINET, nil)
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_PADDING{Padding: make([]byte, 6000)})
		resp := p.exchange(t, "tcp", m)
		if resp.Rcode != dns.RcodeFormatError {
			t.Errorf("rcode %s, want FORMERR", dns.RcodeToString[resp.Rcode])
		}
	})
}

func TestRefusesOutsiders(t *testing.T) {
	up := newUpstream(t, "udp")
	p := newProxy(t, testRecords(), proxyOpts{
		upstreams: []netip.AddrPort{up.addr},
		allowed:   []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("192.168.77.10/32")},
	})
	for _, network := range []string{"udp", "tcp"} {
		for _, name := range []string{"web.default.svc.cluster.local.", "www.example.org."} {
			if m := p.ask(t, network, name, dns.TypeA, 0); m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 {
				t.Errorf("%s %s from 127.0.0.1: %s, want REFUSED", network, name, dns.RcodeToString[m.Rcode])
			}
		}
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("an outsider's query reached the upstream %d times", n)
	}
	ok := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{up.addr}, allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if m := ok.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA, 0); m.Rcode != dns.RcodeSuccess {
		t.Errorf("an allowed client: %s", dns.RcodeToString[m.Rcode])
	}
}

// Over UDP a reply is cut to the client's size with TC set; over TCP it is
// whole. EDNS0 is echoed with the proxy's size.
func TestTruncation(t *testing.T) {
	up := newUpstream(t, "udp")
	p := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{up.addr}})
	const name = "big.default.svc.cluster.local."
	for _, tc := range []struct {
		network string
		edns    uint16
		tc      bool
		max     int
	}{
		{"udp", 0, true, 512},
		{"udp", 1232, true, 1232},
		{"udp", 4096, true, 1232}, // capped at the proxy's size
		{"tcp", 0, false, 65535},
	} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		if tc.edns > 0 {
			m.SetEdns0(tc.edns, false)
		}
		c := &dns.Client{Net: tc.network, UDPSize: 65535, Timeout: 2 * time.Second}
		conn, err := c.Dial(p.addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.UDPSize = 65535
		if err := conn.WriteMsg(m); err != nil {
			t.Fatal(err)
		}
		raw, err := conn.ReadMsgHeader(nil)
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(raw); err != nil {
			t.Fatal(err)
		}
		if resp.Truncated != tc.tc || len(raw) > tc.max {
			t.Errorf("%s edns %d: TC %v, %d bytes, %d answers; want TC %v, at most %d bytes", tc.network, tc.edns, resp.Truncated, len(raw), len(resp.Answer), tc.tc, tc.max)
		}
		if !tc.tc && len(resp.Answer) != 100 {
			t.Errorf("%s: %d answers, want all 100", tc.network, len(resp.Answer))
		}
		if opt := resp.IsEdns0(); (opt != nil) != (tc.edns > 0) || (opt != nil && opt.UDPSize() != 1232) {
			t.Errorf("%s edns %d: reply OPT %v, want one with size 1232 only when asked with EDNS", tc.network, tc.edns, opt)
		}
	}
}
