package serviceproxy

import (
	"net/netip"
	"slices"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/clusterset"
)

var (
	csIP      = netip.MustParseAddr("10.255.3.4")
	westCIP   = netip.MustParseAddr("10.97.0.10")
	northCIP  = netip.MustParseAddr("10.98.0.20")
	csSvcC    = "service-default/web.clusterset.local/tcp/80"
	csEp1C    = "endpoint-default/web.clusterset.local/tcp/80/10.244.1.5:8080"
	csEp2C    = "endpoint-default/web.clusterset.local/tcp/80/10.244.2.5:8080"
	csWestC   = "endpoint-default/web.clusterset.local/tcp/80/10.97.0.10:80"
	csNorthC  = "endpoint-default/web.clusterset.local/tcp/80/10.98.0.20:8081"
	masqRule  = "ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
	localWeb  = Service{Namespace: "default", Name: "web", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.10")}, Ports: []ServicePort{{Name: "http", Protocol: TCP, Port: 80}}}
	localWebS = []Slice{slice(ready(ep1, "n1"), ready(ep2, "n2"))}
)

func imported(cluster string, ip netip.Addr, port uint16, ready bool, weight int, ports ...SlicePort) ImportSlice {
	if len(ports) == 0 {
		ports = []SlicePort{{Name: "http", Protocol: TCP, Port: port}}
	}
	return ImportSlice{Namespace: "default", Name: "web-" + cluster, Service: "web", Cluster: cluster, Ports: ports,
		Endpoints: []Endpoint{{Addr: ip, Ready: ready, Serving: ready}}, Weight: weight}
}

func spreadOf(targets ...string) string {
	s := "numgen random mod " + strconv.Itoa(len(targets)) + " vmap {"
	for i, t := range targets {
		if i > 0 {
			s += ","
		}
		s += " " + strconv.Itoa(i) + " : goto " + t
	}
	return s + " }"
}

func TestPlanClusterset(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cs     ClustersetService
		ips    []string
		noEP   []string
		chains map[string][]string
		udp    int
	}{{
		name: "exported here and imported from a peer: local endpoints and the peer's ClusterIP, weighed by its endpoints",
		cs: ClustersetService{Namespace: "default", Name: "web", IP: csIP, Local: &localWeb, LocalSlices: localWebS,
			Imports: []ImportSlice{imported("west", westCIP, 80, true, 3)}},
		ips: []string{"10.255.3.4 tcp/80 goto " + csSvcC},
		chains: map[string][]string{
			csSvcC:  {masqRule, spreadOf(csWestC, csWestC, csWestC, csEp1C, csEp2C)},
			csWestC: {"ip saddr 10.97.0.10 jump mark-for-masquerade", "dnat to 10.97.0.10:80"},
			csEp1C:  {"ip saddr 10.244.1.5 jump mark-for-masquerade", "dnat to 10.244.1.5:8080"},
		},
	}, {
		name: "imported only: the peers' ClusterIPs, each at its own port number",
		cs: ClustersetService{Namespace: "default", Name: "web", IP: csIP,
			Imports: []ImportSlice{imported("west", westCIP, 80, true, 1), imported("north", northCIP, 8081, true, 2)}},
		// north sorts first: its number is the clusterset port's.
		ips: []string{"10.255.3.4 tcp/8081 goto service-default/web.clusterset.local/tcp/8081"},
		chains: map[string][]string{"service-default/web.clusterset.local/tcp/8081": {masqRule, spreadOf(
			"endpoint-default/web.clusterset.local/tcp/8081/10.97.0.10:80",
			"endpoint-default/web.clusterset.local/tcp/8081/10.98.0.20:8081",
			"endpoint-default/web.clusterset.local/tcp/8081/10.98.0.20:8081")}},
	}, {
		name: "exported here but not the peer's port: local port numbers win, the peer's endpoint keeps its own",
		cs: ClustersetService{Namespace: "default", Name: "web", IP: csIP, Local: &localWeb, LocalSlices: localWebS,
			Imports: []ImportSlice{imported("north", northCIP, 8081, true, 1)}},
		ips:    []string{"10.255.3.4 tcp/80 goto " + csSvcC},
		chains: map[string][]string{csSvcC: {masqRule, spreadOf(csNorthC, csEp1C, csEp2C)}},
	}, {
		name: "a peer's extra port joins; one with another name on a number already used is left out",
		cs: ClustersetService{Namespace: "default", Name: "web", IP: csIP, Local: &localWeb, LocalSlices: localWebS,
			Imports: []ImportSlice{imported("west", westCIP, 0, true, 1,
				SlicePort{Name: "http", Protocol: TCP, Port: 80}, SlicePort{Name: "dns", Protocol: UDP, Port: 53}, SlicePort{Name: "alt", Protocol: TCP, Port: 80})}},
		ips: []string{"10.255.3.4 tcp/80 goto " + csSvcC, "10.255.3.4 udp/53 goto service-default/web.clusterset.local/udp/53"},
		chains: map[string][]string{
			"service-default/web.clusterset.local/udp/53": {masqRule, "goto endpoint-default/web.clusterset.local/udp/53/10.97.0.10:53"},
		},
		udp: 1,
	}, {
		name: "a peer without a ready endpoint is left out",
		cs: ClustersetService{Namespace: "default", Name: "web", IP: csIP, Local: &localWeb, LocalSlices: localWebS,
			Imports: []ImportSlice{imported("west", westCIP, 80, false, 1)}},
		ips:    []string{"10.255.3.4 tcp/80 goto " + csSvcC},
		chains: map[string][]string{csSvcC: {masqRule, spreadOf(csEp1C, csEp2C)}, csWestC: nil},
	}, {
		name: "no cluster with a ready endpoint: the clusterset IP refuses",
		cs: ClustersetService{Namespace: "default", Name: "web", IP: csIP,
			Imports: []ImportSlice{imported("west", westCIP, 80, false, 1)}},
		noEP: []string{"10.255.3.4 tcp/80 reject"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			sp := PlanClusterset(testCtx, tc.cs)
			if got := entries(sp.ServiceIPs); !slices.Equal(got, tc.ips) {
				t.Errorf("service-ips:\n got %q\nwant %q", got, tc.ips)
			}
			if got := entries(sp.NoEndpoints); !slices.Equal(got, tc.noEP) {
				t.Errorf("no-endpoint-services:\n got %q\nwant %q", got, tc.noEP)
			}
			for name, want := range tc.chains {
				if got := chainRules(sp, name); !slices.Equal(got, want) {
					t.Errorf("chain %s:\n got %q\nwant %q", name, got, want)
				}
			}
			if !slices.Equal(sp.ClusterIPs, []netip.Addr{csIP}) {
				t.Errorf("cluster-ips %v: the clusterset IP refuses other ports like a ClusterIP", sp.ClusterIPs)
			}
			if len(sp.UDPEndpoints) != tc.udp {
				t.Errorf("UDP endpoints %v, want %d", sp.UDPEndpoints, tc.udp)
			}
		})
	}
}

func derivedSlice(typ string, fam discoveryv1.AddressType, ready string, mutate ...func(*discoveryv1.EndpointSlice)) *discoveryv1.EndpointSlice {
	name, port, yes := "http", int32(80), true
	o := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-west-1a2b", Labels: map[string]string{
			clusterset.LabelServiceName: "web", clusterset.LabelSourceCluster: "west", discoveryv1.LabelManagedBy: clusterset.ManagedBy},
			Annotations: map[string]string{clusterset.AnnotationType: typ, clusterset.AnnotationReadyEndpoints: ready}},
		AddressType: fam,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.97.0.10"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}}},
	}
	for _, m := range mutate {
		m(o)
	}
	return o
}

func TestImportSliceFromAPI(t *testing.T) {
	for _, tc := range []struct {
		name   string
		o      *discoveryv1.EndpointSlice
		ok     bool
		weight int
	}{
		{"a ClusterSetIP import", derivedSlice("ClusterSetIP", discoveryv1.AddressTypeIPv4, "3"), true, 3},
		{"no count: weight 1", derivedSlice("ClusterSetIP", discoveryv1.AddressTypeIPv4, ""), true, 1},
		{"a bad count: weight 1", derivedSlice("ClusterSetIP", discoveryv1.AddressTypeIPv4, "-5"), true, 1},
		{"a huge count is capped", derivedSlice("ClusterSetIP", discoveryv1.AddressTypeIPv4, "99999999"), true, maxWeight},
		{"headless imports are not served", derivedSlice("Headless", discoveryv1.AddressTypeIPv4, "3"), false, 0},
		{"IPv6", derivedSlice("ClusterSetIP", discoveryv1.AddressTypeIPv6, "3"), false, 0},
		{"another manager", derivedSlice("ClusterSetIP", discoveryv1.AddressTypeIPv4, "3", func(o *discoveryv1.EndpointSlice) {
			o.Labels[discoveryv1.LabelManagedBy] = "endpointslice-controller.k8s.io"
		}), false, 0},
		{"a Service's own slice", derivedSlice("ClusterSetIP", discoveryv1.AddressTypeIPv4, "3", func(o *discoveryv1.EndpointSlice) {
			o.Labels[discoveryv1.LabelServiceName] = "web"
		}), false, 0},
		{"no source cluster", derivedSlice("ClusterSetIP", discoveryv1.AddressTypeIPv4, "3", func(o *discoveryv1.EndpointSlice) {
			delete(o.Labels, clusterset.LabelSourceCluster)
		}), false, 0},
	} {
		im, ok := ImportSliceFromAPI(tc.o)
		if ok != tc.ok || (ok && (im.Weight != tc.weight || im.Service != "web" || im.Cluster != "west" || len(im.Endpoints) != 1 || im.Endpoints[0].Addr != westCIP)) {
			t.Errorf("%s: %+v %v, want ok %v weight %d", tc.name, im, ok, tc.ok, tc.weight)
		}
	}
}

// recordingApplier keeps the last plan applied.
type recordingApplier struct{ last *Plan }

func (r *recordingApplier) Apply(p *Plan) (Stats, error) {
	r.last = p
	return Stats{Outcome: Incremental}, nil
}
func (r *recordingApplier) Forget()             {}
func (r *recordingApplier) Drifted(Lister) bool { return false }

// The controller serves a clusterset IP while the table has it and a
// cluster exports the Service, and follows this cluster's export.
func TestControllerClustersetIPs(t *testing.T) {
	ap := &recordingApplier{}
	c := NewController(ControllerConfig{Config: Config{Proxy: ProxyWeft}, Context: testCtx, Applier: ap})
	key := ClustersetKey("default", "web")
	svc := func(exported bool) *corev1.Service {
		o := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.10", Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
		if exported {
			o.Annotations = map[string]string{clusterset.ExportAnnotation: "true"}
		}
		return o
	}
	name, port, yes := "http", int32(8080), true
	own := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.244.1.5"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}}},
	}
	spreadRule := func() string {
		t.Helper()
		sp := ap.last.Services[key]
		if sp == nil {
			return ""
		}
		r := chainRules(sp, csSvcC)
		if len(r) == 0 {
			return "(refused)"
		}
		return r[len(r)-1]
	}

	c.setService(svc(false))
	c.setSlice(own)
	c.setSlice(derivedSlice("ClusterSetIP", discoveryv1.AddressTypeIPv4, "1"))
	c.sync()
	if _, ok := ap.last.Services[key]; ok {
		t.Fatal("a clusterset IP is served before the table has one")
	}
	c.SetClustersetIPs(map[string]netip.Addr{"default/web": csIP})
	c.sync()
	if got, want := spreadRule(), spreadOf(csWestC); got != "goto "+csWestC && got != want {
		t.Errorf("not exported here: %q, want only west's ClusterIP", got)
	}
	c.setService(svc(true))
	c.sync()
	if got, want := spreadRule(), spreadOf(csWestC, csEp1C); got != want {
		t.Errorf("exported here: %q, want %q", got, want)
	}
	// The local slice changes: the clusterset IP follows.
	own2 := own.DeepCopy()
	own2.Endpoints = append(own2.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.244.2.5"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}})
	c.setSlice(own2)
	c.sync()
	if got, want := spreadRule(), spreadOf(csWestC, csEp1C, csEp2C); got != want {
		t.Errorf("after a local endpoint was added: %q, want %q", got, want)
	}
	// The peer's import goes, then the local export: nothing left to serve.
	c.deleteSlice(derivedSlice("ClusterSetIP", discoveryv1.AddressTypeIPv4, "1"))
	c.sync()
	if got, want := spreadRule(), spreadOf(csEp1C, csEp2C); got != want {
		t.Errorf("after the import went: %q, want %q", got, want)
	}
	c.setService(svc(false))
	c.sync()
	if _, ok := ap.last.Services[key]; ok {
		t.Error("served with no cluster exporting the Service")
	}
	c.setService(svc(true))
	c.SetClustersetIPs(nil)
	c.sync()
	if _, ok := ap.last.Services[key]; ok {
		t.Error("served after the table lost the address")
	}
	if _, ok := ap.last.Services["default/web"]; !ok {
		t.Error("the Service's own ClusterIP is gone")
	}
}
