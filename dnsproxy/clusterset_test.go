package dnsproxy

import (
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/clusterset"
)

// testSet is cluster east-1 (testRecords, with web given a ready
// endpoint) exporting web and hl by annotation, and the derived slices,
// made by the importer itself, of:
//
//   - west-1: web (10.97.0.10, ready), hl (headless: pet-0 10.245.1.5 and
//     10.245.2.6), only (10.97.0.20, no ready endpoint), mixed (10.97.0.30),
//     duo (dual-stack: 10.97.0.40 and fd00:97::40);
//   - north-1: only (10.98.0.20, ready, its port on 8081) and mixed
//     (headless: m-0 10.246.0.5).
//
// Every derived slice is also fed to the cluster zone's records, as the
// shared informer does, which must ignore them.
func testSet(t testing.TB) (*KubeRecords, *ClustersetRecords) {
	local := testRecords()
	local.EndpointSliceHandler().OnAdd(slice("default", "web-1", "web", 80, ep{"10.244.1.7", "", true}), true)
	set := NewClustersetRecords("east-1", local)
	exported := map[string]string{"weft.dev/export": "true"}
	for _, name := range []string{"web", "hl", "dual"} {
		s := svc("default", name, func(*corev1.Service) {})
		if name != "dual" {
			s.Annotations = exported
		}
		set.ServiceHandler().OnAdd(s, true)
	}
	http := func(n int32) []clusterset.Port { return []clusterset.Port{{Name: "http", Protocol: "TCP", Port: n}} }
	docs := []clusterset.Document{
		{Cluster: "west-1", Services: []clusterset.Service{
			{Namespace: "default", Name: "web", Type: clusterset.ClusterSetIP, ClusterIPs: []string{"10.97.0.10"}, Ports: http(80),
				Endpoints: []clusterset.Endpoint{{IP: "10.245.3.3"}}},
			{Namespace: "default", Name: "hl", Type: clusterset.Headless, Ports: http(8080),
				Endpoints: []clusterset.Endpoint{{IP: "10.245.1.5", Hostname: "pet-0"}, {IP: "10.245.2.6"}}},
			{Namespace: "default", Name: "only", Type: clusterset.ClusterSetIP, ClusterIPs: []string{"10.97.0.20"}, Ports: http(80)},
			{Namespace: "default", Name: "mixed", Type: clusterset.ClusterSetIP, ClusterIPs: []string{"10.97.0.30"}, Ports: http(80),
				Endpoints: []clusterset.Endpoint{{IP: "10.245.3.4"}}},
			{Namespace: "default", Name: "duo", Type: clusterset.ClusterSetIP, ClusterIPs: []string{"10.97.0.40", "fd00:97::40"},
				Endpoints: []clusterset.Endpoint{{IP: "10.245.3.5"}}},
		}},
		{Cluster: "north-1", Services: []clusterset.Service{
			{Namespace: "default", Name: "only", Type: clusterset.ClusterSetIP, ClusterIPs: []string{"10.98.0.20"}, Ports: http(8081),
				Endpoints: []clusterset.Endpoint{{IP: "10.246.3.3"}}},
			{Namespace: "default", Name: "mixed", Type: clusterset.Headless, Ports: http(80),
				Endpoints: []clusterset.Endpoint{{IP: "10.246.0.5", Hostname: "m-0"}}},
		}},
	}
	for _, d := range docs {
		if err := d.Validate(); err != nil {
			t.Fatal(err)
		}
		sls, _ := clusterset.PlanImports(d.Cluster, d, local.Namespace, nil)
		for _, sl := range sls {
			set.EndpointSliceHandler().OnAdd(sl, true)
			local.EndpointSliceHandler().OnAdd(sl, true)
		}
	}
	return local, set
}

func newSetProxy(t *testing.T, local *KubeRecords, set SetRecords, ready func() bool, up netip.AddrPort) *proxy {
	t.Helper()
	fwd := NewForward(ForwardConfig{Upstreams: []netip.AddrPort{up}, Timeout: 500 * time.Millisecond}, nil)
	cache := NewCache(CacheConfig{Size: 100}, fwd, nil)
	cs := NewClusterset(ClustersetConfig{Ready: ready}, set, cache)
	zone, err := NewCluster(ZoneConfig{Zone: "cluster.local", Ready: ready}, local, cs)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, zone, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &proxy{srv: s, cache: cache, addr: s.Addr().String()}
}

// Every record form of the multicluster DNS specification, and the
// cluster zone unchanged beside it.
func TestClustersetZone(t *testing.T) {
	up := newUpstream(t, "udp")
	local, set := testSet(t)
	p := newSetProxy(t, local, set, nil, up.addr)
	const z = ".svc.clusterset.local."
	nodata := []string{}
	p.checkZone(t, ClustersetZone, []zoneCase{
		{"dns-version.clusterset.local.", dns.TypeTXT, 0, []string{`dns-version.clusterset.local. IN TXT "1.0.0"`}, nil, false},
		{"dns-version.clusterset.local.", dns.TypeA, 0, nodata, nil, true},
		{"clusterset.local.", dns.TypeNS, 0, []string{"clusterset.local. IN NS ns.dns.clusterset.local."}, nil, false},
		{"clusterset.local.", dns.TypeSOA, 0, nil, nil, false},
		// ClusterSetIP without a clusterset IP yet: each exporting cluster's ClusterIP.
		{"web.default" + z, dns.TypeA, 0, []string{
			"web.default.svc.clusterset.local. IN A 10.96.0.10",
			"web.default.svc.clusterset.local. IN A 10.97.0.10"}, nil, false},
		{"WeB.DeFault.SVC.ClusterSet.Local.", dns.TypeA, 0, []string{
			"WeB.DeFault.SVC.ClusterSet.Local. IN A 10.96.0.10",
			"WeB.DeFault.SVC.ClusterSet.Local. IN A 10.97.0.10"}, nil, false},
		{"web.default" + z, dns.TypeAAAA, 0, nodata, nil, true},
		{"web.default" + z, dns.TypeTXT, 0, nodata, nil, true},
		// Dual-stack: an A and an AAAA, from two derived slices.
		{"duo.default" + z, dns.TypeA, 0, []string{"duo.default.svc.clusterset.local. IN A 10.97.0.40"}, nil, false},
		{"duo.default" + z, dns.TypeAAAA, 0, []string{"duo.default.svc.clusterset.local. IN AAAA fd00:97::40"}, nil, false},
		{"0.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.9.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, 0,
			[]string{"0.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.9.0.0.0.0.d.f.ip6.arpa. IN PTR duo.default.svc.clusterset.local."}, nil, false},
		// A cluster without a ready endpoint is left out.
		{"only.default" + z, dns.TypeA, 0, []string{"only.default.svc.clusterset.local. IN A 10.98.0.20"}, nil, false},
		{"_http._tcp.web.default" + z, dns.TypeSRV, 0,
			[]string{"_http._tcp.web.default.svc.clusterset.local. IN SRV 0 100 80 web.default.svc.clusterset.local."},
			[]string{"web.default.svc.clusterset.local. IN A 10.96.0.10", "web.default.svc.clusterset.local. IN A 10.97.0.10"}, false},
		{"_http._tcp.only.default" + z, dns.TypeSRV, 0, []string{
			"_http._tcp.only.default.svc.clusterset.local. IN SRV 0 100 80 only.default.svc.clusterset.local.",
			"_http._tcp.only.default.svc.clusterset.local. IN SRV 0 100 8081 only.default.svc.clusterset.local."}, nil, false},
		{"_dns._udp.web.default" + z, dns.TypeSRV, 0, // a port only this cluster's Service has
			[]string{"_dns._udp.web.default.svc.clusterset.local. IN SRV 0 100 53 web.default.svc.clusterset.local."}, nil, false},
		{"_http._udp.web.default" + z, dns.TypeSRV, dns.RcodeNameError, nodata, nil, true},
		{"_http._tcp.web.default" + z, dns.TypeA, 0, nodata, nil, true},
		{"_tcp.web.default" + z, dns.TypeSRV, 0, nodata, nil, true},
		{"_sctp.web.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		// No per-cluster name for a Service with ClusterIPs.
		{"west-1.web.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"pet-0.west-1.web.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		// Headless: every cluster's ready endpoints.
		{"hl.default" + z, dns.TypeA, 0, []string{
			"hl.default.svc.clusterset.local. IN A 10.244.1.5",
			"hl.default.svc.clusterset.local. IN A 10.244.2.6",
			"hl.default.svc.clusterset.local. IN A 10.245.1.5",
			"hl.default.svc.clusterset.local. IN A 10.245.2.6"}, nil, false},
		{"pet-0.east-1.hl.default" + z, dns.TypeA, 0, []string{"pet-0.east-1.hl.default.svc.clusterset.local. IN A 10.244.1.5"}, nil, false},
		{"pet-0.west-1.hl.default" + z, dns.TypeA, 0, []string{"pet-0.west-1.hl.default.svc.clusterset.local. IN A 10.245.1.5"}, nil, false},
		{"PET-0.West-1.hl.default" + z, dns.TypeA, 0, []string{"PET-0.West-1.hl.default.svc.clusterset.local. IN A 10.245.1.5"}, nil, false},
		{"10-245-2-6.west-1.hl.default" + z, dns.TypeA, 0, []string{"10-245-2-6.west-1.hl.default.svc.clusterset.local. IN A 10.245.2.6"}, nil, false},
		{"pet-0.west-1.hl.default" + z, dns.TypeAAAA, 0, nodata, nil, true},
		{"pet-0.north-1.hl.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"pet-9.west-1.hl.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"pet-2.east-1.hl.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true}, // not ready
		// <clusterid>.<service>: an empty non-terminal, no records of its own.
		{"west-1.hl.default" + z, dns.TypeA, 0, nodata, nil, true},
		{"north-1.hl.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		// The cluster.local form has no clusterset counterpart.
		{"pet-0.hl.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"_http._tcp.hl.default" + z, dns.TypeSRV, 0, []string{
			"_http._tcp.hl.default.svc.clusterset.local. IN SRV 0 100 8080 10-244-2-6.east-1.hl.default.svc.clusterset.local.",
			"_http._tcp.hl.default.svc.clusterset.local. IN SRV 0 100 8080 10-245-2-6.west-1.hl.default.svc.clusterset.local.",
			"_http._tcp.hl.default.svc.clusterset.local. IN SRV 0 100 8080 pet-0.east-1.hl.default.svc.clusterset.local.",
			"_http._tcp.hl.default.svc.clusterset.local. IN SRV 0 100 8080 pet-0.west-1.hl.default.svc.clusterset.local."},
			[]string{
				"10-244-2-6.east-1.hl.default.svc.clusterset.local. IN A 10.244.2.6",
				"10-245-2-6.west-1.hl.default.svc.clusterset.local. IN A 10.245.2.6",
				"pet-0.east-1.hl.default.svc.clusterset.local. IN A 10.244.1.5",
				"pet-0.west-1.hl.default.svc.clusterset.local. IN A 10.245.1.5"}, false},
		// Types disagree: the lowest cluster id's (north-1, headless) wins.
		{"mixed.default" + z, dns.TypeA, 0, []string{"mixed.default.svc.clusterset.local. IN A 10.246.0.5"}, nil, false},
		{"m-0.north-1.mixed.default" + z, dns.TypeA, 0, []string{"m-0.north-1.mixed.default.svc.clusterset.local. IN A 10.246.0.5"}, nil, false},
		// Not exported anywhere (dual is this cluster's, without the annotation).
		{"dual.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"nope.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"default.svc.clusterset.local.", dns.TypeA, 0, nodata, nil, true},
		{"missing.svc.clusterset.local.", dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"svc.clusterset.local.", dns.TypeA, 0, nodata, nil, true},
		{"web.default.clusterset.local.", dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"pod.clusterset.local.", dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"a.b.c.d.e.default" + z, dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		// PTR: the other clusters' addresses; this cluster's keep their cluster.local names.
		{"10.0.97.10.in-addr.arpa.", dns.TypePTR, 0, []string{"10.0.97.10.in-addr.arpa. IN PTR web.default.svc.clusterset.local."}, nil, false},
		{"5.1.245.10.in-addr.arpa.", dns.TypePTR, 0, []string{"5.1.245.10.in-addr.arpa. IN PTR pet-0.west-1.hl.default.svc.clusterset.local."}, nil, false},
		{"6.2.245.10.in-addr.arpa.", dns.TypePTR, 0, []string{"6.2.245.10.in-addr.arpa. IN PTR 10-245-2-6.west-1.hl.default.svc.clusterset.local."}, nil, false},
		{"10.0.96.10.in-addr.arpa.", dns.TypePTR, 0, []string{"10.0.96.10.in-addr.arpa. IN PTR web.default.svc.cluster.local."}, nil, false},
		// cluster.local is unchanged: the derived slices are not its.
		{"hl.default.svc.cluster.local.", dns.TypeA, 0, []string{
			"hl.default.svc.cluster.local. IN A 10.244.1.5",
			"hl.default.svc.cluster.local. IN A 10.244.2.6"}, nil, false},
		{"web.default.svc.cluster.local.", dns.TypeA, 0, []string{"web.default.svc.cluster.local. IN A 10.96.0.10"}, nil, false},
		{"only.default.svc.cluster.local.", dns.TypeA, dns.RcodeNameError, nodata, nil, true},
		{"www.example.org.", dns.TypeA, 0, []string{"www.example.org. IN A 192.0.2.53"}, nil, false},
		{"99.0.97.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nodata, nil, true}, // forwarded
	})
}

// The records follow the informers: an import withdrawn, an export
// unmarked, a ServiceExport added; every change moves the generation.
func TestClustersetRecordsChanges(t *testing.T) {
	local, set := testSet(t)
	cs := NewClusterset(ClustersetConfig{}, set, nil)
	a := func(name string) []string {
		ans := cs.resolve(name, dns.TypeA, dns.SplitDomainName(strings.TrimSuffix(name, "."+ClustersetZone)))
		return rrStrings(ans.answer)
	}
	gen := set.Generation()
	moved := func(what string) {
		t.Helper()
		if g := set.Generation(); g == gen {
			t.Errorf("%s: generation unchanged", what)
		} else {
			gen = g
		}
	}

	// West withdraws web: its derived slice goes.
	sls, _ := clusterset.PlanImports("west-1", clusterset.Document{Cluster: "west-1", Services: []clusterset.Service{
		{Namespace: "default", Name: "web", Type: clusterset.ClusterSetIP, ClusterIPs: []string{"10.97.0.10"}}}}, local.Namespace, nil)
	set.EndpointSliceHandler().OnDelete(cache.DeletedFinalStateUnknown{Key: "default/" + sls[0].Name, Obj: sls[0]})
	moved("import deleted")
	if got := a("web.default.svc.clusterset.local."); !slices.Equal(got, []string{"web.default.svc.clusterset.local. IN A 10.96.0.10"}) {
		t.Errorf("after west withdrew web: %v", got)
	}
	if got := set.ReverseSet(netip.MustParseAddr("10.97.0.10")); len(got) != 0 {
		t.Errorf("PTR of a withdrawn import: %v", got)
	}
	// This cluster stops exporting web.
	set.ServiceHandler().OnUpdate(nil, svc("default", "web", func(*corev1.Service) {}))
	moved("annotation removed")
	if got := a("web.default.svc.clusterset.local."); len(got) != 0 {
		t.Errorf("after unexporting web: %v", got)
	}
	// A ServiceExport exports dual (dual-stack).
	se := &unstructured.Unstructured{}
	se.SetAPIVersion("multicluster.x-k8s.io/v1alpha1")
	se.SetKind("ServiceExport")
	se.SetNamespace("default")
	se.SetName("dual")
	set.ServiceExportHandler().OnAdd(se, true)
	moved("ServiceExport added")
	if got := a("dual.default.svc.clusterset.local."); !slices.Equal(got, []string{"dual.default.svc.clusterset.local. IN A 10.96.0.11"}) {
		t.Errorf("exported by ServiceExport: %v", got)
	}
	set.ServiceExportHandler().OnDelete(se)
	moved("ServiceExport deleted")
	// A local change shows too (the generation covers the local records).
	local.NamespaceHandler().OnAdd(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, false)
	moved("local namespace")
	// An unrelated slice changes nothing here.
	set.EndpointSliceHandler().OnAdd(slice("default", "x-1", "x", 80, ep{"10.244.5.5", "", true}), false)
	if set.Generation() != gen {
		t.Errorf("a Service's own slice moved the clusterset generation")
	}
}

// Before the informers' first list the zone says SERVFAIL, not NXDOMAIN.
func TestClustersetZoneNotReady(t *testing.T) {
	up := newUpstream(t, "udp")
	local, set := testSet(t)
	var ready atomic.Bool
	p := newSetProxy(t, local, set, ready.Load, up.addr)
	if m := p.ask(t, "udp", "web.default.svc.clusterset.local.", dns.TypeA, 0); m.Rcode != dns.RcodeServerFailure {
		t.Errorf("before sync: %s, want SERVFAIL", dns.RcodeToString[m.Rcode])
	}
	ready.Store(true)
	if m := p.ask(t, "udp", "web.default.svc.clusterset.local.", dns.TypeA, 0); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 2 {
		t.Errorf("after sync: %s", m)
	}
}

// With clusterset IPs: a Service with ClusterIPs answers its one address
// (SRV's additional section too, and its PTR), whatever its clusters'
// readiness; headless Services and Services without one are unchanged.
func TestClustersetIPs(t *testing.T) {
	_, set := testSet(t)
	cs := NewClusterset(ClustersetConfig{}, set, nil)
	ask := func(name string, qtype uint16) answer {
		return cs.resolve(name, qtype, dns.SplitDomainName(strings.TrimSuffix(name, "."+ClustersetZone)))
	}
	a := func(name string) []string { return rrStrings(ask(name, dns.TypeA).answer) }
	const z = ".svc.clusterset.local."
	gen := set.Generation()
	set.SetClustersetIPs(map[string]netip.Addr{
		"default/web":   netip.MustParseAddr("10.255.0.7"),
		"default/only":  netip.MustParseAddr("10.255.0.8"),
		"default/hl":    netip.MustParseAddr("10.255.0.9"),  // headless: not used
		"default/mixed": netip.MustParseAddr("10.255.0.10"), // north-1's headless type wins
	})
	if set.Generation() == gen {
		t.Error("a new table did not move the generation")
	}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"web.default" + z, []string{"web.default.svc.clusterset.local. IN A 10.255.0.7"}},
		{"only.default" + z, []string{"only.default.svc.clusterset.local. IN A 10.255.0.8"}},
		{"duo.default" + z, []string{"duo.default.svc.clusterset.local. IN A 10.97.0.40"}}, // none yet: the ClusterIPs
		{"mixed.default" + z, []string{"mixed.default.svc.clusterset.local. IN A 10.246.0.5"}},
		{"hl.default" + z, []string{
			"hl.default.svc.clusterset.local. IN A 10.244.1.5",
			"hl.default.svc.clusterset.local. IN A 10.244.2.6",
			"hl.default.svc.clusterset.local. IN A 10.245.1.5",
			"hl.default.svc.clusterset.local. IN A 10.245.2.6"}},
	} {
		if got := a(tc.name); !slices.Equal(got, tc.want) {
			t.Errorf("%s A:\n got %v\nwant %v", tc.name, got, tc.want)
		}
	}
	if got := rrStrings(ask("web.default"+z, dns.TypeAAAA).answer); len(got) != 0 {
		t.Errorf("web AAAA: %v, want none (the clusterset IP is IPv4)", got)
	}
	srv := ask("_http._tcp.web.default"+z, dns.TypeSRV)
	if got, want := rrStrings(srv.extra), []string{"web.default.svc.clusterset.local. IN A 10.255.0.7"}; !slices.Equal(got, want) {
		t.Errorf("web SRV additional: %v, want %v", got, want)
	}
	if got, want := rrStrings(cs.ptr("7.0.255.10.in-addr.arpa.", netip.MustParseAddr("10.255.0.7"))),
		[]string{"7.0.255.10.in-addr.arpa. IN PTR web.default.svc.clusterset.local."}; !slices.Equal(got, want) {
		t.Errorf("PTR of the clusterset IP: %v, want %v", got, want)
	}
	// The same table again changes nothing; none at all brings the
	// ClusterIPs back.
	gen = set.Generation()
	set.SetClustersetIPs(map[string]netip.Addr{
		"default/web": netip.MustParseAddr("10.255.0.7"), "default/only": netip.MustParseAddr("10.255.0.8"),
		"default/hl": netip.MustParseAddr("10.255.0.9"), "default/mixed": netip.MustParseAddr("10.255.0.10"),
	})
	if set.Generation() != gen {
		t.Error("the same table moved the generation")
	}
	set.SetClustersetIPs(nil)
	if got := a("web.default" + z); len(got) != 2 {
		t.Errorf("web A without a clusterset IP: %v, want both ClusterIPs", got)
	}
	if got := cs.ptr("7.0.255.10.in-addr.arpa.", netip.MustParseAddr("10.255.0.7")); len(got) != 0 {
		t.Errorf("PTR of a released clusterset IP: %v", got)
	}
}
