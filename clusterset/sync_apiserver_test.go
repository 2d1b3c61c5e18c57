package clusterset

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftnet/weft/internal/netnstest"
	"github.com/weftnet/weft/lab/kube"
)

// writes counts the requests that are not reads.
type writes struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (w *writes) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet {
		w.n.Add(1)
	}
	return w.next.RoundTrip(r)
}

// TestSyncImportsAPIServer applies imports to a real kube-apiserver (with
// etcd and kube-controller-manager, whose EndpointSlice controllers must
// leave the derived slices alone): the slices pass the API's validation,
// a second sync of the same plan writes nothing (what the server returns
// compares equal to what was planned), changes converge, a kept cluster's
// slices stay and the rest go.
func TestSyncImportsAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping in -short: starts a real control plane")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs the control plane in a network namespace")
	}
	bins := os.Getenv("WEFT_CONTROLPLANE_BIN")
	if bins == "" {
		bins, _ = filepath.Abs("../bin")
	}
	if err := kube.BinariesBuilt(bins); err != nil {
		t.Skipf("SKIPPING: REAL CONTROL PLANE NOT BUILT (make controlplane): %v", err)
	}
	addr := netip.MustParseAddr("192.168.252.2")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cp, err := kube.Start(ctx, kube.Config{Dir: t.TempDir(), NetNS: netnstest.Named(t, "weft-cstest", addr), Address: addr, BinDir: bins})
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	cfg := cp.AdminRESTConfig()
	count := &writes{}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { count.next = rt; return count })
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"shop", "big"} {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(ns string) bool { return ns == "shop" || ns == "big" }

	west := Document{Cluster: "west-1", Services: []Service{
		{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.97.0.10", "fd00:97::10"},
			Ports:     []Port{{Name: "http", Protocol: "TCP", Port: 80}, {Protocol: "UDP", Port: 53}},
			Endpoints: []Endpoint{{IP: "10.245.1.5"}}},
		{Namespace: "shop", Name: "db", Type: Headless, Ports: []Port{{Name: "pg", Protocol: "TCP", Port: 5432}},
			Endpoints: []Endpoint{{IP: "10.245.1.8", Hostname: "db-0"}, {IP: "10.245.2.9"}}},
		{Namespace: "big", Name: "many", Type: Headless, Ports: []Port{{Protocol: "SCTP", Port: 9}}},
		{Namespace: "gone", Name: "x", Type: Headless},
	}}
	for i := range 1500 {
		west.Services[2].Endpoints = append(west.Services[2].Endpoints, Endpoint{IP: netip.AddrFrom4([4]byte{10, 245, 100 + byte(i>>8), byte(i)}).String(), Hostname: "m-" + strconv.Itoa(i)})
	}
	north := Document{Cluster: "north-1", Services: []Service{
		{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.98.0.10"}},
	}}
	if err := west.Validate(); err != nil {
		t.Fatal(err)
	}
	plan := func(docs ...Document) []*discoveryv1.EndpointSlice {
		var out []*discoveryv1.EndpointSlice
		for _, d := range docs {
			sls, _ := PlanImports(d.Cluster, d, exists, nil)
			out = append(out, sls...)
		}
		return out
	}
	managed := func() map[string]discoveryv1.EndpointSlice {
		t.Helper()
		list, err := client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelManagedBy + "=" + ManagedBy})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]discoveryv1.EndpointSlice{}
		for _, s := range list.Items {
			out[s.Namespace+"/"+s.Name] = s
		}
		return out
	}

	desired := plan(west, north)
	if err := SyncImports(ctx, client, desired, nil); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	got := managed()
	// web: IPv4 and IPv6 from west, IPv4 from north; db: one; many: two
	// (1,500 endpoints).
	if len(got) != 6 || len(desired) != 6 {
		t.Fatalf("%d slices in the API, %d planned; want 6", len(got), len(desired))
	}
	before := count.n.Load()
	if before < 6 {
		t.Fatalf("%d writes counted for 6 creates: the counter does not see the client's requests", before)
	}
	if err := SyncImports(ctx, client, desired, nil); err != nil {
		t.Fatal(err)
	}
	if n := count.n.Load() - before; n != 0 {
		t.Errorf("a second sync of the same plan wrote %d times; what the API returns must compare equal to the plan", n)
	}

	// West's db moves an endpoint, many is unexported; north's gateway is
	// unreachable (kept) while west is synced without it.
	west.Services[1].Endpoints[1].IP = "10.245.3.3"
	west.Services = west.Services[:2]
	if err := SyncImports(ctx, client, plan(west), func(c string) bool { return c == "north-1" }); err != nil {
		t.Fatal(err)
	}
	got = managed()
	if len(got) != 4 {
		t.Errorf("after the change: %d slices, want 4 (west's web twice, db, north's web)", len(got))
	}
	for _, s := range got {
		if s.Labels[LabelServiceName] == "db" && s.Endpoints[1].Addresses[0] != "10.245.3.3" {
			t.Errorf("db's moved endpoint: %v", s.Endpoints)
		}
		if _, ok := s.Labels[discoveryv1.LabelServiceName]; ok {
			t.Errorf("%s has %s", s.Name, discoveryv1.LabelServiceName)
		}
	}
	// Not peered any more: everything goes.
	if err := SyncImports(ctx, client, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := managed(); len(got) != 0 {
		t.Errorf("after unpeering: %d slices left", len(got))
	}
}
