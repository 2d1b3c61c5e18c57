package dnsproxy

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Every record form of the Kubernetes DNS specification, over UDP and TCP,
// against a whole chain whose forwarder asks a local upstream.
func TestClusterZone(t *testing.T) {
	up := newUpstream(t, "udp")
	p := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{up.addr}})
	const z = ".cluster.local."
	nodata := []string{}
	p.checkZone(t, "cluster.local.", []zoneCase{
		{"dns-version" + z, dns.TypeTXT, 0, []string{`dns-version.cluster.local. IN TXT "1.1.0"`}, nil, false},
		{"web.default.svc" + z, dns.TypeA, 0, []string{"web.default.svc.cluster.local. IN A 10.96.0.10"}, nil, false},
		{"WeB.DeFault.SVC.Cluster.Local.", dns.TypeA, 0, []string{"WeB.DeFault.SVC.Cluster.Local. IN A 10.96.0.10"}, nil, false},
		{"web.default.svc" + z, dns.TypeAAAA, 0, nodata, nil, true},
		{"web.default.svc" + z, dns.TypeMX, 0, nodata, nil, true},
		{"dual.default.svc" + z, dns.TypeAAAA, 0, []string{"dual.default.svc.cluster.local. IN AAAA fd00::11"}, nil, false},
		{"dual.default.svc" + z, dns.TypeA, 0, []string{"dual.default.svc.cluster.local. IN A 10.96.0.11"}, nil, false},
		{"_http._tcp.web.default.svc" + z, dns.TypeSRV, 0,
			[]string{"_http._tcp.web.default.svc.cluster.local. IN SRV 0 100 80 web.default.svc.cluster.local."},
			[]string{"web.default.svc.cluster.local. IN A 10.96.0.10"}, false},
		{"_dns._udp.web.default.svc" + z, dns.TypeSRV, 0,
			[]string{"_dns._udp.web.default.svc.cluster.local. IN SRV 0 100 53 web.default.svc.cluster.local."}, nil, false},
		{"_http._udp.web.default.svc" + z, dns.TypeSRV, dns.RcodeNameError, nodata, nil, true},
		{"_http._tcp.web.default.svc" + z, dns.TypeA, 0, nodata, nil, true},
		{"_tcp.web.default.svc" + z, dns.TypeSRV, 0, nodata, nil, true},
		{"_sctp.web.default.svc" + z, dns.TypeSRV, dns.RcodeNameError, nodata, nil, true},
		{"hl.default.svc" + z, dns.TypeA, 0, []string{
			"hl.default.svc.cluster.local. IN A 10.244.1.5",
			"hl.default.svc.cluster.local. IN A 10.244.2.6"}, nil, false},
		{"pet-0.hl.default.svc" + z, dns.TypeA, 0, []string{"pet-0.hl.default.svc.cluster.local. IN A 10.244.1.5"}, nil, false},
		{"10-244-2-6.hl.default.svc" + z, dns.TypeA, 0, []string{"10-244-2-6.hl.default.svc.cluster.local. IN A 10.244.2.6"}, nil, false},
		{"pet-2.hl.default.svc" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},  // not ready
		{"pet-0.web.default.svc" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true}, // not headless
		{"_http._tcp.hl.default.svc" + z, dns.TypeSRV, 0, []string{
			"_http._tcp.hl.default.svc.cluster.local. IN SRV 0 100 8080 10-244-2-6.hl.default.svc.cluster.local.",
			"_http._tcp.hl.default.svc.cluster.local. IN SRV 0 100 8080 pet-0.hl.default.svc.cluster.local."},
			[]string{"10-244-2-6.hl.default.svc.cluster.local. IN A 10.244.2.6", "pet-0.hl.default.svc.cluster.local. IN A 10.244.1.5"}, false},
		{"empty.default.svc" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"ext.default.svc" + z, dns.TypeA, 0, []string{
			"ext.default.svc.cluster.local. IN CNAME www.example.org.",
			"www.example.org. IN A 192.0.2.53"}, nil, false},
		{"ext.default.svc" + z, dns.TypeCNAME, 0, []string{"ext.default.svc.cluster.local. IN CNAME www.example.org."}, nil, false},
		{"10-244-1-9.default.pod" + z, dns.TypeA, 0, []string{"10-244-1-9.default.pod.cluster.local. IN A 10.244.1.9"}, nil, false},
		{"10-244-7-7.other.pod" + z, dns.TypeA, 0, []string{"10-244-7-7.other.pod.cluster.local. IN A 10.244.7.7"}, nil, false},
		{"fd00--9.default.pod" + z, dns.TypeAAAA, 0, []string{"fd00--9.default.pod.cluster.local. IN AAAA fd00::9"}, nil, false},
		{"1-2-3.default.pod" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"10-244-1-09.default.pod" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"10.0.96.10.in-addr.arpa.", dns.TypePTR, 0, []string{"10.0.96.10.in-addr.arpa. IN PTR web.default.svc.cluster.local."}, nil, false},
		{"5.1.244.10.in-addr.arpa.", dns.TypePTR, 0, []string{"5.1.244.10.in-addr.arpa. IN PTR pet-0.hl.default.svc.cluster.local."}, nil, false},
		{"6.2.244.10.in-addr.arpa.", dns.TypePTR, 0, []string{"6.2.244.10.in-addr.arpa. IN PTR 10-244-2-6.hl.default.svc.cluster.local."}, nil, false},
		{"1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, 0,
			[]string{"1.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. IN PTR dual.default.svc.cluster.local."}, nil, false},
		{"nope.default.svc" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"web.nope.svc" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"default.svc" + z, dns.TypeA, 0, nodata, nil, true},
		{"missing.svc" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"svc" + z, dns.TypeA, 0, nodata, nil, true},
		{"x.y.web.default.svc" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"web.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"cluster.local.", dns.TypeSOA, 0, nil, nil, false},
		{"www.example.org.", dns.TypeA, 0, []string{"www.example.org. IN A 192.0.2.53"}, nil, false},
		{"nx.example.org.", dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"99.0.96.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nodata, nil, true}, // forwarded
	})
}

func TestClusterZoneTTLs(t *testing.T) {
	zone, err := NewCluster(ZoneConfig{Zone: "Example.Test", TTL: 30 * time.Second, NegativeTTL: 7 * time.Second}, testRecords(), nil)
	if err != nil {
		t.Fatal(err)
	}
	a := zone.resolve("web.default.svc.example.test.", dns.TypeA, []string{"web", "default", "svc"})
	if len(a.answer) != 1 || a.answer[0].Header().Ttl != 30 {
		t.Errorf("answer %v, want one record with TTL 30", a.answer)
	}
	soa := zone.soa().(*dns.SOA)
	if soa.Hdr.Name != "example.test." || soa.Minttl != 7 || soa.Hdr.Ttl != 7 {
		t.Errorf("SOA %v, want example.test. with minimum and TTL 7", soa)
	}
	for _, bad := range []string{"", ".", "a..b", strings.Repeat("x", 64) + ".local"} {
		if _, err := NewCluster(ZoneConfig{Zone: bad}, testRecords(), nil); err == nil {
			t.Errorf("zone %q accepted", bad)
		}
	}
	if _, err := NewCluster(ZoneConfig{Zone: "cluster.local", Pods: "sometimes"}, testRecords(), nil); err == nil || !strings.Contains(err.Error(), "pods:") {
		t.Errorf("pods mode: err %v, want one naming pods", err)
	}
}

func TestPodModes(t *testing.T) {
	up := newUpstream(t, "udp")
	for _, tc := range []struct {
		mode         PodRecords
		known, other int
	}{
		{PodsInsecure, dns.RcodeSuccess, dns.RcodeSuccess},
		{PodsVerified, dns.RcodeSuccess, dns.RcodeNameError},
		{PodsDisabled, dns.RcodeNameError, dns.RcodeNameError},
	} {
		p := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{up.addr}, pods: tc.mode})
		if m := p.ask(t, "udp", "10-244-1-9.default.pod.cluster.local.", dns.TypeA, 0); m.Rcode != tc.known {
			t.Errorf("%s: a pod's own address: %s, want %s", tc.mode, dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.known])
		}
		if m := p.ask(t, "udp", "10-244-1-9.other.pod.cluster.local.", dns.TypeA, 0); m.Rcode != tc.other {
			t.Errorf("%s: an address in the wrong namespace: %s, want %s", tc.mode, dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.other])
		}
	}
}

// Before the informers' first list, the zone says SERVFAIL (retry), not a
// wrong NXDOMAIN; forwarded names are answered meanwhile.
func TestClusterZoneNotReady(t *testing.T) {
	up := newUpstream(t, "udp")
	var ready atomic.Bool
	p := newProxy(t, testRecords(), proxyOpts{upstreams: []netip.AddrPort{up.addr}, ready: ready.Load})
	if m := p.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA, 0); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("before sync: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	if m := p.ask(t, "udp", "www.example.org.", dns.TypeA, 0); m.Rcode != dns.RcodeSuccess {
		t.Errorf("forwarded before sync: %s, want NOERROR", dns.RcodeToString[m.Rcode])
	}
	ready.Store(true)
	if m := p.ask(t, "udp", "web.default.svc.cluster.local.", dns.TypeA, 0); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Errorf("after sync: %s", m)
	}
}
