package clusterset

import (
	"context"
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func names(sls []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range sls {
		out = append(out, s.Namespace+"/"+s.Name)
	}
	return out
}

func TestPlanSync(t *testing.T) {
	west, _ := PlanImports("west-1", Document{Cluster: "west-1", Services: []Service{
		{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.97.0.10"}},
		{Namespace: "shop", Name: "db", Type: Headless, Endpoints: []Endpoint{{IP: "10.245.1.8"}}},
	}}, func(string) bool { return true }, nil)
	north, _ := PlanImports("north-1", Document{Cluster: "north-1", Services: []Service{
		{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.98.0.10"}},
	}}, func(string) bool { return true }, nil)
	gone, _ := PlanImports("south-1", Document{Cluster: "south-1", Services: []Service{
		{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.99.0.10"}},
	}}, func(string) bool { return true }, nil)

	var existing []discoveryv1.EndpointSlice
	for _, s := range slices.Concat(west, north, gone) {
		existing = append(existing, *s.DeepCopy())
	}
	// West's db moved: its endpoint changed.
	existing[1].Endpoints[0].Addresses = []string{"10.245.9.9"}
	existing[1].ResourceVersion = "42"
	// An empty list from the API server is the planner's nil.
	existing[0].Ports = []discoveryv1.EndpointPort{}

	// North's gateway is unreachable: its imports stay; south is no longer peered.
	keep := func(c string) bool { return c == "north-1" }
	p := planSync(existing, west, keep)
	if len(p.create) != 0 {
		t.Errorf("create %v", names(p.create))
	}
	if got := names(p.update); !slices.Equal(got, names(west[1:2])) || p.update[0].ResourceVersion != "42" {
		t.Errorf("update %v (rv %v), want %v at rv 42", got, p.update, names(west[1:2]))
	}
	if got := names(p.delete); !slices.Equal(got, names(gone)) {
		t.Errorf("delete %v, want %v", got, names(gone))
	}
	// Nothing exists yet: everything is created; nothing is desired and
	// nothing kept: everything goes.
	if p := planSync(nil, west, nil); len(p.create) != 2 || len(p.update)+len(p.delete) != 0 {
		t.Errorf("from nothing: %+v", p)
	}
	if p := planSync(existing, nil, nil); len(p.delete) != len(existing) {
		t.Errorf("to nothing: %+v", p)
	}
	// An address family change cannot be an update.
	fam := *west[0].DeepCopy()
	fam.AddressType = discoveryv1.AddressTypeIPv6
	if p := planSync([]discoveryv1.EndpointSlice{fam}, west[:1], nil); len(p.delete) != 1 || len(p.create) != 1 {
		t.Errorf("family change: %+v", p)
	}
}

// TestSyncImportsFake checks the applier's calls against client-go's fake
// clientset (the diff itself is TestPlanSync's): converging, idempotent,
// and blind to slices it does not manage.
func TestSyncImportsFake(t *testing.T) {
	ctx := context.Background()
	foreign := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "shop", Name: "web-abcde", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	client := fake.NewClientset(foreign)
	doc := Document{Cluster: "west-1", Services: []Service{
		{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.97.0.10"}},
	}}
	desired, _ := PlanImports("west-1", doc, func(string) bool { return true }, nil)
	if err := SyncImports(ctx, client, desired, nil); err != nil {
		t.Fatal(err)
	}
	writes := len(client.Actions())
	if err := SyncImports(ctx, client, desired, nil); err != nil {
		t.Fatal(err)
	}
	if extra := client.Actions()[writes:]; len(extra) != 1 || extra[0].GetVerb() != "list" {
		t.Errorf("second sync of the same plan: %v, want one list", extra)
	}
	list, _ := client.DiscoveryV1().EndpointSlices("shop").List(ctx, metav1.ListOptions{})
	if len(list.Items) != 2 {
		t.Errorf("%d slices, want the import and the foreign one", len(list.Items))
	}
	if err := SyncImports(ctx, client, nil, nil); err != nil {
		t.Fatal(err)
	}
	list, _ = client.DiscoveryV1().EndpointSlices("shop").List(ctx, metav1.ListOptions{})
	if len(list.Items) != 1 || list.Items[0].Name != foreign.Name {
		t.Errorf("after unexporting: %v, want only %s", list.Items, foreign.Name)
	}
}
