package clusterset

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestExports(t *testing.T) {
	web := corev1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}
	dnsPort := corev1.ServicePort{Name: "dns", Protocol: corev1.ProtocolUDP, Port: 53}
	services := []*corev1.Service{
		svc("shop", "web", exported, []string{"10.97.0.10", "fd00:97::10"}, web),
		svc("shop", "db", exported, []string{"None"}, web),
		svc("shop", "private", nil, []string{"10.97.0.11"}, web),
		svc("shop", "bycr", nil, []string{"10.97.0.12"}, dnsPort),
		svc("shop", "off", map[string]string{ExportAnnotation: "yes"}, []string{"10.97.0.13"}, web),
		svc("shop", "pending", exported, nil, web), // no ClusterIP yet
		{ // ExternalName: the MCS API cannot import it
			ObjectMeta: svc("shop", "ext", exported, nil).ObjectMeta,
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"},
		},
	}
	f := false
	eps := []*discoveryv1.EndpointSlice{
		slice("shop", "web-abc", "web", discoveryv1.AddressTypeIPv4, "http", 8080,
			ep{ip: "10.245.1.5"}, ep{ip: "10.245.2.7", ready: &f}),
		slice("shop", "db-b", "db", discoveryv1.AddressTypeIPv4, "http", 5432,
			ep{ip: "10.245.2.9", host: "db-1"}, ep{ip: "10.245.1.8", host: "db-0"}),
		slice("shop", "db-fqdn", "db", discoveryv1.AddressTypeFQDN, "http", 5432, ep{ip: "db.example.com"}),
		// A derived slice of an import: not this cluster's endpoints.
		{ObjectMeta: slice("shop", "db-east", "", discoveryv1.AddressTypeIPv4, "http", 1, ep{ip: "10.246.0.1"}).ObjectMeta},
	}
	byCR := func(ns, name string) bool { return ns == "shop" && name == "bycr" }
	got := Exports("west-1", services, eps, byCR)
	want := Document{Cluster: "west-1", Services: []Service{
		{Namespace: "shop", Name: "bycr", Type: ClusterSetIP, ClusterIPs: []string{"10.97.0.12"},
			Ports: []Port{{Name: "dns", Protocol: "UDP", Port: 53}}},
		{Namespace: "shop", Name: "db", Type: Headless,
			// A headless Service's ports are what its endpoints listen on.
			Ports:     []Port{{Name: "http", Protocol: "TCP", Port: 5432}},
			Endpoints: []Endpoint{{IP: "10.245.1.8", Hostname: "db-0"}, {IP: "10.245.2.9", Hostname: "db-1"}}},
		{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.97.0.10", "fd00:97::10"},
			Ports:     []Port{{Name: "http", Protocol: "TCP", Port: 80}},
			Endpoints: []Endpoint{{IP: "10.245.1.5"}}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Exports:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Exports made an invalid document: %v", err)
	}
	// Without the CRD, only annotations count.
	if got := Exports("west-1", services, eps, nil); len(got.Services) != 2 {
		t.Errorf("without ServiceExports: %d services exported, want 2 (web, db)", len(got.Services))
	}
	// Nothing exported is an empty list, not null, on the wire.
	if got := Exports("west-1", nil, nil, nil); got.Services == nil {
		t.Errorf("no exports: Services is nil")
	}
}
