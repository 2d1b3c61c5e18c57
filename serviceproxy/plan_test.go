package serviceproxy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	testCtx = Context{Node: "n1", ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")}
	ep1     = netip.MustParseAddr("10.244.1.5") // on n1
	ep2     = netip.MustParseAddr("10.244.2.5") // on n2
)

func slice(eps ...Endpoint) Slice {
	return Slice{Namespace: "default", Name: "web-x", Service: "web", Ports: []SlicePort{{Name: "http", Protocol: TCP, Port: 8080}}, Endpoints: eps}
}

func ready(a netip.Addr, node string) Endpoint {
	return Endpoint{Addr: a, Node: node, Ready: true, Serving: true}
}

func chainRules(sp *ServicePlan, name string) []string {
	for _, c := range sp.Chains {
		if c.Name == name {
			var out []string
			for _, r := range c.Rules {
				out = append(out, r.String())
			}
			return out
		}
	}
	return nil
}

func entries(es []IPEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Addr.String()+" "+e.Proto.String()+"/"+itoa(e.Port)+" "+e.Verdict.String())
	}
	return out
}

func portEntries(es []PortEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Proto.String()+"/"+itoa(e.Port)+" "+e.Verdict.String())
	}
	return out
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}

const (
	svcC = "service-default/web/tcp/80"
	extC = "external-default/web/tcp/80"
	ep1C = "endpoint-default/web/tcp/80/10.244.1.5:8080"
	ep2C = "endpoint-default/web/tcp/80/10.244.2.5:8080"
)

func TestPlanService(t *testing.T) {
	base := webService() // cluster IP 10.96.0.10, LB 192.168.50.200, node port 30080
	with := func(f func(*Service)) Service {
		s := base
		s.Ports = slices.Clone(base.Ports)
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name        string
		svc         Service
		slices      []Slice
		ips, noEP   []string
		nodePorts   []string
		noEPPorts   []string
		chains      map[string][]string
		health      *HealthCheck
		affinitySet []string
	}{{
		name:      "ready endpoints on two nodes: spread, hairpin masquerade, external masquerade",
		svc:       base,
		slices:    []Slice{slice(ready(ep1, "n1"), ready(ep2, "n2"))},
		ips:       []string{"10.96.0.10 tcp/80 goto " + svcC, "192.168.50.200 tcp/80 goto " + extC},
		nodePorts: []string{"tcp/30080 goto " + extC},
		chains: map[string][]string{
			svcC: {"ip saddr != 10.244.0.0/16 jump mark-for-masquerade", "numgen random mod 2 vmap { 0 : goto " + ep1C + ", 1 : goto " + ep2C + " }"},
			extC: {"jump mark-for-masquerade", "goto " + svcC},
			ep1C: {"ip saddr 10.244.1.5 jump mark-for-masquerade", "dnat to 10.244.1.5:8080"},
			ep2C: {"ip saddr 10.244.2.5 jump mark-for-masquerade", "dnat to 10.244.2.5:8080"},
		},
	}, {
		name:      "no endpoints: every address and the node port refused",
		svc:       base,
		noEP:      []string{"10.96.0.10 tcp/80 reject", "192.168.50.200 tcp/80 reject"},
		noEPPorts: []string{"tcp/30080 reject"},
	}, {
		name:   "not ready and not serving endpoints count as none",
		svc:    base,
		slices: []Slice{slice(Endpoint{Addr: ep1, Node: "n1"}, Endpoint{Addr: ep2, Node: "n2", Terminating: true})},
		noEP:   []string{"10.96.0.10 tcp/80 reject", "192.168.50.200 tcp/80 reject"}, noEPPorts: []string{"tcp/30080 reject"},
	}, {
		name:   "only terminating serving endpoints: they are used, so connections drain",
		svc:    base,
		slices: []Slice{slice(Endpoint{Addr: ep2, Node: "n2", Serving: true, Terminating: true}, Endpoint{Addr: ep1, Node: "n1", Terminating: true})},
		ips:    []string{"10.96.0.10 tcp/80 goto " + svcC, "192.168.50.200 tcp/80 goto " + extC}, nodePorts: []string{"tcp/30080 goto " + extC},
		chains: map[string][]string{svcC: {"ip saddr != 10.244.0.0/16 jump mark-for-masquerade", "goto " + ep2C}},
	}, {
		name:   "a ready endpoint is preferred to a terminating one",
		svc:    base,
		slices: []Slice{slice(Endpoint{Addr: ep2, Node: "n2", Serving: true, Terminating: true}, ready(ep1, "n2"))},
		chains: map[string][]string{svcC: {"ip saddr != 10.244.0.0/16 jump mark-for-masquerade", "goto " + ep1C}},
		ips:    []string{"10.96.0.10 tcp/80 goto " + svcC, "192.168.50.200 tcp/80 goto " + extC}, nodePorts: []string{"tcp/30080 goto " + extC},
	}, {
		name:   "internalTrafficPolicy Local without a local endpoint: cluster traffic dropped",
		svc:    with(func(s *Service) { s.InternalLocal = true; s.LoadBalancerIPs = nil; s.Ports[0].NodePort = 0 }),
		slices: []Slice{slice(ready(ep2, "n2"))},
		noEP:   []string{"10.96.0.10 tcp/80 drop"},
	}, {
		name: "internalTrafficPolicy Local: only the local endpoint",
		svc: with(func(s *Service) {
			s.InternalLocal = true
			s.LoadBalancerIPs = nil
			s.Ports = []ServicePort{{Name: "http", Protocol: TCP, Port: 80}}
		}),
		slices: []Slice{slice(ready(ep1, "n1"), ready(ep2, "n2"))},
		ips:    []string{"10.96.0.10 tcp/80 goto " + svcC},
		chains: map[string][]string{svcC: {"ip saddr != 10.244.0.0/16 jump mark-for-masquerade", "goto " + ep1C}, ep2C: nil},
	}, {
		name:   "trafficDistribution PreferClose: the local endpoint when there is one",
		svc:    with(func(s *Service) { s.PreferClose = true }),
		slices: []Slice{slice(ready(ep1, "n1"), ready(ep2, "n2"))},
		ips:    []string{"10.96.0.10 tcp/80 goto " + svcC, "192.168.50.200 tcp/80 goto " + extC}, nodePorts: []string{"tcp/30080 goto " + extC},
		chains: map[string][]string{svcC: {"ip saddr != 10.244.0.0/16 jump mark-for-masquerade", "goto " + ep1C}},
	}, {
		name:   "externalTrafficPolicy Local: outside clients to local endpoints with their address, pods and the node the cluster way",
		svc:    with(func(s *Service) { s.ExternalLocal = true; s.HealthCheckNodePort = 32000 }),
		slices: []Slice{slice(ready(ep1, "n1"), ready(ep2, "n2"))},
		ips:    []string{"10.96.0.10 tcp/80 goto " + svcC, "192.168.50.200 tcp/80 goto " + extC}, nodePorts: []string{"tcp/30080 goto " + extC},
		chains: map[string][]string{extC: {"ip saddr 10.244.0.0/16 goto " + svcC, "fib saddr type local jump mark-for-masquerade", "fib saddr type local goto " + svcC, "goto " + ep1C}},
		health: &HealthCheck{Port: 32000, Service: "default/web", LocalEndpoints: 1},
	}, {
		name:   "externalTrafficPolicy Local without a local endpoint: outside traffic dropped, health check says 0",
		svc:    with(func(s *Service) { s.ExternalLocal = true; s.HealthCheckNodePort = 32000 }),
		slices: []Slice{slice(ready(ep2, "n2"))},
		ips:    []string{"10.96.0.10 tcp/80 goto " + svcC, "192.168.50.200 tcp/80 goto " + extC}, nodePorts: []string{"tcp/30080 goto " + extC},
		chains: map[string][]string{extC: {"ip saddr 10.244.0.0/16 goto " + svcC, "fib saddr type local jump mark-for-masquerade", "fib saddr type local goto " + svcC, "drop"}},
		health: &HealthCheck{Port: 32000, Service: "default/web", LocalEndpoints: 0},
	}, {
		name:   "ClientIP affinity: remembered clients first, each endpoint remembers its clients",
		svc:    with(func(s *Service) { s.Affinity = 3 * time.Hour; s.LoadBalancerIPs = nil; s.Ports[0].NodePort = 0 }),
		slices: []Slice{slice(ready(ep1, "n1"), ready(ep2, "n2"))},
		ips:    []string{"10.96.0.10 tcp/80 goto " + svcC},
		chains: map[string][]string{
			svcC: {"ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
				"ip saddr @affinity-default/web/tcp/80/10.244.1.5:8080/10800s goto " + ep1C,
				"ip saddr @affinity-default/web/tcp/80/10.244.2.5:8080/10800s goto " + ep2C,
				"numgen random mod 2 vmap { 0 : goto " + ep1C + ", 1 : goto " + ep2C + " }"},
			ep1C: {"ip saddr 10.244.1.5 jump mark-for-masquerade", "update @affinity-default/web/tcp/80/10.244.1.5:8080/10800s { ip saddr }", "dnat to 10.244.1.5:8080"},
		},
		affinitySet: []string{"affinity-default/web/tcp/80/10.244.1.5:8080/10800s", "affinity-default/web/tcp/80/10.244.2.5:8080/10800s"},
	}, {
		name: "endpoint ports matched by name and protocol; a slice without the port gives none",
		svc:  with(func(s *Service) { s.LoadBalancerIPs = nil; s.Ports[0].NodePort = 0 }),
		slices: []Slice{
			{Namespace: "default", Name: "a", Service: "web", Ports: []SlicePort{{Name: "http", Protocol: UDP, Port: 9}}, Endpoints: []Endpoint{ready(ep2, "n2")}},
			{Namespace: "default", Name: "b", Service: "web", Ports: []SlicePort{{Name: "http", Protocol: TCP, Port: 8080}}, Endpoints: []Endpoint{ready(ep1, "n1")}},
		},
		ips:    []string{"10.96.0.10 tcp/80 goto " + svcC},
		chains: map[string][]string{svcC: {"ip saddr != 10.244.0.0/16 jump mark-for-masquerade", "goto " + ep1C}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			sp := PlanService(testCtx, tc.svc, tc.slices)
			check := func(what string, got, want []string) {
				t.Helper()
				if !slices.Equal(got, want) {
					t.Errorf("%s:\n got %q\nwant %q", what, got, want)
				}
			}
			check("service-ips", entries(sp.ServiceIPs), tc.ips)
			check("no-endpoint-services", entries(sp.NoEndpoints), tc.noEP)
			check("service-nodeports", portEntries(sp.NodePorts), tc.nodePorts)
			check("no-endpoint-nodeports", portEntries(sp.NoEndpointNodePorts), tc.noEPPorts)
			for name, want := range tc.chains {
				check("chain "+name, chainRules(sp, name), want)
			}
			if (sp.HealthCheck == nil) != (tc.health == nil) || (sp.HealthCheck != nil && *sp.HealthCheck != *tc.health) {
				t.Errorf("health check %+v, want %+v", sp.HealthCheck, tc.health)
			}
			var sets []string
			for _, a := range sp.Affinity {
				sets = append(sets, a.Name)
				if a.Timeout != tc.svc.Affinity {
					t.Errorf("set %s timeout %s", a.Name, a.Timeout)
				}
			}
			check("affinity sets", sets, tc.affinitySet)
			// Every goto names a chain of the plan or of the skeleton.
			names := map[string]bool{markChain: true}
			for _, c := range sp.Chains {
				names[c.Name] = true
			}
			for _, c := range sp.Chains {
				for _, r := range c.Rules {
					for _, to := range append(slices.Clone(r.Targets), r.Target) {
						if to != "" && !names[to] {
							t.Errorf("chain %s: %s names a chain the plan lacks", c.Name, r)
						}
					}
				}
			}
		})
	}
}

func TestResolveConflicts(t *testing.T) {
	a := webService()
	b := webService()
	b.Name, b.ClusterIPs = "web2", []netip.Addr{netip.MustParseAddr("10.96.0.11")}
	sl := slice(ready(ep1, "n1"))
	pa, pb := PlanService(testCtx, a, []Slice{sl}), PlanService(testCtx, b, []Slice{sl})
	p := &Plan{Services: map[string]*ServicePlan{a.Key(): pa, b.Key(): pb}}
	p.Resolve()
	if len(p.Conflicts) != 2 {
		t.Fatalf("conflicts %q, want the load-balancer address and the node port of default/web2", p.Conflicts)
	}
	for _, c := range p.Conflicts {
		if !strings.HasPrefix(c, "default/web2: ") || !strings.HasSuffix(c, "is default/web's") {
			t.Errorf("conflict %q", c)
		}
	}
	if got := entries(p.Services[b.Key()].ServiceIPs); !slices.Equal(got, []string{"10.96.0.11 tcp/80 goto service-default/web2/tcp/80"}) {
		t.Errorf("default/web2 keeps %q", got)
	}
	if len(pb.ServiceIPs) != 2 || len(pb.NodePorts) != 1 {
		t.Error("Resolve changed the plan it was given instead of a copy")
	}
	if p.Services[a.Key()] != pa {
		t.Error("a plan without conflicts was copied")
	}
}

func TestServiceFromAPI(t *testing.T) {
	local := corev1.ServiceInternalTrafficPolicyLocal
	proxyMode := corev1.LoadBalancerIPModeProxy
	timeout := int32(60)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "s"},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.5", ClusterIPs: []string{"10.96.0.5"},
			ExternalIPs: []string{"203.0.113.9", "bogus"},
			Ports: []corev1.ServicePort{
				{Name: "a", Port: 80, NodePort: 30001},
				{Name: "b", Port: 9, Protocol: corev1.ProtocolSCTP, NodePort: 30002},
				{Name: "c", Port: 1, Protocol: "ICMP"},
			},
			SessionAffinity:       corev1.ServiceAffinityClientIP,
			SessionAffinityConfig: &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &timeout}},
			InternalTrafficPolicy: &local,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			HealthCheckNodePort:   32100,
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{IP: "192.168.77.200"}, {IP: "192.168.77.201", IPMode: &proxyMode}, {Hostname: "lb.example"}}}},
	}
	s, ok := ServiceFromAPI(svc)
	if !ok {
		t.Fatal("not served")
	}
	want := Service{Namespace: "ns", Name: "s",
		ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.5")}, ExternalIPs: []netip.Addr{netip.MustParseAddr("203.0.113.9")},
		LoadBalancerIPs: []netip.Addr{netip.MustParseAddr("192.168.77.200")},
		Ports:           []ServicePort{{Name: "a", Protocol: TCP, Port: 80, NodePort: 30001}, {Name: "b", Protocol: SCTP, Port: 9, NodePort: 30002}},
		Affinity:        time.Minute, InternalLocal: true, ExternalLocal: true, HealthCheckNodePort: 32100,
		Problems: []string{`externalIPs: "bogus" is not an address`, "port 1: protocol ICMP is not TCP, UDP or SCTP"}}
	if !serviceEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
	svc.Spec.ClusterIPs, svc.Spec.ClusterIP = []string{"None"}, "None"
	if _, ok := ServiceFromAPI(svc); ok {
		t.Error("a headless Service is served")
	}
	if _, ok := ServiceFromAPI(&corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "x"}}); ok {
		t.Error("an ExternalName Service is served")
	}
}

func TestSliceFromAPI(t *testing.T) {
	f, tr := false, true
	name, port, node := "http", int32(8080), "n1"
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "ns", Name: "s-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "s"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.1.5"}, NodeName: &node},
			{Addresses: []string{"10.244.1.6"}, Conditions: discoveryv1.EndpointConditions{Ready: &f, Serving: &tr, Terminating: &tr}},
			{Addresses: []string{"not-an-ip"}},
		},
	}
	s, ok := SliceFromAPI(es)
	if !ok {
		t.Fatal("not read")
	}
	want := []Endpoint{{Addr: ep1, Node: "n1", Ready: true, Serving: true}, {Addr: netip.MustParseAddr("10.244.1.6"), Serving: true, Terminating: true}}
	if !slices.Equal(s.Endpoints, want) || s.Service != "s" || !slices.Equal(s.Ports, []SlicePort{{Name: "http", Protocol: TCP, Port: 8080}}) {
		t.Errorf("got %+v", s)
	}
	delete(es.Labels, discoveryv1.LabelServiceName)
	if _, ok := SliceFromAPI(es); ok {
		t.Error("a slice of no Service (a peered cluster's import) is read")
	}
}

func TestPlanAnnounce(t *testing.T) {
	s := webService()
	sl := []Slice{slice(ready(ep2, "n2"), Endpoint{Addr: ep1, Node: "n1"})}
	if got := PlanService(testCtx, s, sl).Announce; len(got) != 1 || got[0].Addr != lbIP || !got[0].Any {
		t.Errorf("externalTrafficPolicy Cluster: %+v, want %s by any node", got, lbIP)
	}
	s.ExternalLocal = true
	if got := PlanService(testCtx, s, sl).Announce; len(got) != 1 || got[0].Any || !slices.Equal(got[0].Nodes, []string{"n2"}) {
		t.Errorf("externalTrafficPolicy Local: %+v, want %s by n2 only (n1's endpoint is not ready)", got, lbIP)
	}
	s.LoadBalancerIPs = nil
	if got := PlanService(testCtx, s, sl).Announce; got != nil {
		t.Errorf("no load-balancer address: %+v", got)
	}
}
