package dnsproxy

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestForwardFailover(t *testing.T) {
	// A port with nothing behind it: the kernel refuses at once.
	dead := deadPort(t)
	up := newUpstream(t, "udp")
	p := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{dead, up.addr}})
	if m := p.ask(t, "udp", "www.example.org.", dns.TypeA, 0); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Errorf("the second upstream did not answer: %s", m)
	}
}

func TestForwardServfail(t *testing.T) {
	p := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{deadPort(t)}})
	m := p.ask(t, "udp", "www.example.org.", dns.TypeA, 1232)
	if m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	var ede *dns.EDNS0_EDE
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if x, ok := e.(*dns.EDNS0_EDE); ok {
				ede = x
			}
		}
	}
	if ede == nil || ede.InfoCode != dns.ExtendedErrorCodeNoReachableAuthority || !strings.Contains(ede.ExtraText, "no upstream answered") {
		t.Errorf("extended error %v, want No Reachable Authority saying why", ede)
	}
	// The cluster zone does not depend on upstreams.
	if m := p.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA, 0); m.Rcode != dns.RcodeSuccess {
		t.Errorf("cluster name with upstreams down: %s", dns.RcodeToString[m.Rcode])
	}
}

func TestForwardTCP(t *testing.T) {
	up := newUpstream(t, "tcp") // answers TCP only
	p := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{up.addr}, tcp: true})
	if m := p.ask(t, "udp", "www.example.org.", dns.TypeA, 0); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Errorf("over a TCP upstream: %s", m)
	}
}

func deadPort(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return a
}

func TestUpstreamsFromResolvConf(t *testing.T) {
	f := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(f, []byte("# comment\nnameserver 169.254.20.10\nnameserver 192.0.2.1\nnameserver 2001:db8::1\nsearch example.org\noptions ndots:2\n"), 0o644)
	got, err := UpstreamsFromResolvConf(f, netip.MustParseAddr("169.254.20.10"))
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:53"), netip.MustParseAddrPort("[2001:db8::1]:53")}
	if !slices.Equal(got, want) {
		t.Errorf("upstreams %v, want %v (the proxy's own address left out)", got, want)
	}
	if _, err := UpstreamsFromResolvConf(filepath.Join(t.TempDir(), "missing"), netip.Addr{}); err == nil {
		t.Error("a missing resolv.conf is not an error")
	}
	for in, want := range map[string]string{"192.0.2.1": "192.0.2.1:53", "192.0.2.1:5353": "192.0.2.1:5353", "[::1]:53": "[::1]:53"} {
		if got, err := ParseUpstream(in); err != nil || got.String() != want {
			t.Errorf("ParseUpstream(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ParseUpstream("dns.example"); err == nil {
		t.Error("a host name was accepted as an upstream")
	}
}
