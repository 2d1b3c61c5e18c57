package clusterset

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestPlanImports(t *testing.T) {
	doc := Document{Cluster: "west-1", Services: []Service{
		{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.97.0.10", "fd00:97::10"},
			Ports: []Port{{Name: "http", Protocol: "TCP", Port: 80}}, Endpoints: []Endpoint{{IP: "10.245.1.5"}}},
		{Namespace: "shop", Name: "idle", Type: ClusterSetIP, ClusterIPs: []string{"10.97.0.11"}},
		{Namespace: "shop", Name: "db", Type: Headless, Ports: []Port{{Name: "pg", Protocol: "TCP", Port: 5432}},
			Endpoints: []Endpoint{{IP: "10.245.1.8", Hostname: "db-0"}, {IP: "10.245.2.9"}, {IP: "192.0.2.1", Hostname: "evil"}}},
		{Namespace: "billing", Name: "api", Type: ClusterSetIP, ClusterIPs: []string{"10.97.0.12"}},
	}}
	ns := func(n string) bool { return n == "shop" }
	networks := []netip.Prefix{netip.MustParsePrefix("10.245.0.0/16"), netip.MustParsePrefix("10.97.0.0/16"), netip.MustParsePrefix("fd00:97::/64")}
	got, skipped := PlanImports("west-1", doc, ns, networks)

	wantSkipped := []Skipped{
		{"shop/db", "1 address(es) outside the cluster's declared networks"},
		{"billing/api", "namespace billing does not exist in this cluster"},
	}
	if !reflect.DeepEqual(skipped, wantSkipped) {
		t.Errorf("skipped:\n got %v\nwant %v", skipped, wantSkipped)
	}
	type view struct {
		svc, fam, typ string
		eps           []string // ip/hostname/ready
		ports         string
	}
	var views []view
	for _, sl := range got {
		if sl.Labels[LabelSourceCluster] != "west-1" || sl.Labels[discoveryv1.LabelManagedBy] != ManagedBy {
			t.Errorf("%s: labels %v", sl.Name, sl.Labels)
		}
		if _, ok := sl.Labels[discoveryv1.LabelServiceName]; ok {
			t.Errorf("%s: has %s, so kube-proxy and cluster.local would read it", sl.Name, discoveryv1.LabelServiceName)
		}
		if !strings.HasPrefix(sl.Name, sl.Labels[LabelServiceName]+"-west-1-") || len(sl.Name) > 253 {
			t.Errorf("slice name %q", sl.Name)
		}
		v := view{svc: sl.Namespace + "/" + sl.Labels[LabelServiceName], fam: string(sl.AddressType), typ: sl.Annotations[AnnotationType]}
		wantReady := map[string]string{"shop/web": "1", "shop/idle": "0"}[v.svc]
		if got := sl.Annotations[AnnotationReadyEndpoints]; got != wantReady {
			t.Errorf("%s: %s %q, want %q", sl.Name, AnnotationReadyEndpoints, got, wantReady)
		}
		for _, e := range sl.Endpoints {
			h := ""
			if e.Hostname != nil {
				h = *e.Hostname
			}
			v.eps = append(v.eps, fmt.Sprintf("%s/%s/%v", e.Addresses[0], h, *e.Conditions.Ready))
		}
		for _, p := range sl.Ports {
			v.ports += fmt.Sprintf("%s:%s/%d ", *p.Name, *p.Protocol, *p.Port)
		}
		views = append(views, v)
	}
	want := []view{
		{"shop/web", "IPv4", "ClusterSetIP", []string{"10.97.0.10//true"}, "http:TCP/80 "},
		{"shop/web", "IPv6", "ClusterSetIP", []string{"fd00:97::10//true"}, "http:TCP/80 "},
		// No ready endpoint over there: its ClusterIP is not ready here.
		{"shop/idle", "IPv4", "ClusterSetIP", []string{"10.97.0.11//false"}, ""},
		{"shop/db", "IPv4", "Headless", []string{"10.245.1.8/db-0/true", "10.245.2.9//true"}, "pg:TCP/5432 "},
	}
	if !reflect.DeepEqual(views, want) {
		t.Errorf("PlanImports:\n got %v\nwant %v", views, want)
	}

	// Names are stable, and differ between clusters and families.
	again, _ := PlanImports("west-1", doc, ns, networks)
	other, _ := PlanImports("north-1", doc, ns, networks)
	names := map[string]bool{}
	for i := range got {
		if got[i].Name != again[i].Name {
			t.Errorf("name not stable: %s, then %s", got[i].Name, again[i].Name)
		}
		names[got[i].Name], names[other[i].Name] = true, true
	}
	if len(names) != 2*len(got) {
		t.Errorf("slice names collide: %v", names)
	}
}

func TestPlanImportsEdges(t *testing.T) {
	all := func(string) bool { return true }
	// A headless Service without endpoints still gets one (empty) slice.
	got, _ := PlanImports("west-1", Document{Cluster: "west-1", Services: []Service{{Namespace: "a", Name: "h", Type: Headless}}}, all, nil)
	if len(got) != 1 || len(got[0].Endpoints) != 0 || got[0].AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("empty headless export: %+v", got)
	}
	// Over 1,000 endpoints: split in slices the API accepts.
	s := Service{Namespace: "a", Name: "big", Type: Headless, Ports: []Port{{Protocol: string(corev1.ProtocolUDP), Port: 53}}}
	for i := range 2500 {
		s.Endpoints = append(s.Endpoints, Endpoint{IP: netip.AddrFrom4([4]byte{10, 245, byte(i >> 8), byte(i)}).String()})
	}
	got, _ = PlanImports("west-1", Document{Cluster: "west-1", Services: []Service{s}}, all, nil)
	n := 0
	for _, sl := range got {
		if len(sl.Endpoints) > maxEndpointsPerSlice {
			t.Errorf("slice %s holds %d endpoints", sl.Name, len(sl.Endpoints))
		}
		n += len(sl.Endpoints)
	}
	if len(got) != 3 || n != 2500 {
		t.Errorf("2,500 endpoints in %d slices holding %d", len(got), n)
	}
}
