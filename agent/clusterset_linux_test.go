package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/weftnet/weft/agent/kube"
	"github.com/weftnet/weft/clusterset"
	"github.com/weftnet/weft/dnsproxy"
	"github.com/weftnet/weft/internal/netnstest"
	"github.com/weftnet/weft/internal/poll"
	"github.com/weftnet/weft/peering"
)

// testCluster is one cluster's API (a fake clientset) with its informers
// running, a clustersetSync and the DNS records of one of its nodes.
type testCluster struct {
	client *fake.Clientset
	sync   *clustersetSync
	set    *dnsproxy.ClustersetRecords
}

func newTestCluster(t *testing.T, id string, objs ...kruntime.Object) *testCluster {
	t.Helper()
	client := fake.NewClientset(objs...)
	inf := kube.NewInformers(client, 0)
	c := &testCluster{client: client, sync: newClustersetSync(client, inf, id, clustersetIPConfig{Off: "off in this test"}, slog.New(slog.DiscardHandler))}
	local := dnsproxy.NewKubeRecords()
	c.set = dnsproxy.NewClustersetRecords(id, local)
	must := func(_ any, err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(inf.Services().AddEventHandler(local.ServiceHandler()))
	must(inf.Services().AddEventHandler(c.set.ServiceHandler()))
	must(inf.EndpointSlices().AddEventHandler(local.EndpointSliceHandler()))
	must(inf.EndpointSlices().AddEventHandler(c.set.EndpointSliceHandler()))
	must(inf.Namespaces().AddEventHandler(local.NamespaceHandler()))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	inf.Start(ctx.Done())
	waitFor(t, "informers synced", c.sync.synced)
	return c
}

func waitFor(t *testing.T, what string, cond func() bool, why ...*error) {
	t.Helper()
	poll.Eventually(t, 10*time.Second, 20*time.Millisecond, what, func() error {
		switch {
		case cond():
			return nil
		case len(why) > 0 && *why[0] != nil:
			return *why[0]
		}
		return errors.New("still false")
	})
}

// inNetNS runs f on a thread of its own in ns: the test's namespace is
// its locked thread's only, and goroutines (a listener, the HTTP client's
// dials) run elsewhere. The thread ends with f, still locked, so it never
// runs anything else.
func inNetNS(ns netns.NsHandle, f func()) {
	runtime.LockOSThread()
	if err := netns.Set(ns); err != nil {
		panic(err)
	}
	f()
}

// msgWriter keeps the reply the zone writes.
type msgWriter struct {
	dns.ResponseWriter // nil: the zone only calls WriteMsg
	msg                *dns.Msg
}

func (w *msgWriter) WriteMsg(m *dns.Msg) error { w.msg = m; return nil }

// lookup answers name A from the cluster's clusterset zone.
func (c *testCluster) lookup(name string) []string {
	z := dnsproxy.NewClusterset(dnsproxy.ClustersetConfig{}, c.set, dnsproxy.HandlerFunc(func(context.Context, dns.ResponseWriter, *dns.Msg) {}))
	w := &msgWriter{}
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	z.ServeDNS(context.Background(), w, m)
	var out []string
	if w.msg != nil {
		for _, rr := range w.msg.Answer {
			if a, ok := rr.(*dns.A); ok {
				out = append(out, a.A.String())
			}
		}
	}
	return out
}

// TestClustersetExchange is the export exchange between two clusters'
// gateways as the peering loop drives it: west serves on its tunnel
// address, east pulls, writes derived slices, and east's DNS answers west's
// Services under clusterset.local; a headless export answers its
// endpoints; an unreachable gateway keeps the imports; unpeering removes
// them.
func TestClustersetExchange(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: puts a tunnel address on lo in a fresh network namespace")
	}
	ns := netnstest.Enter(t)
	tunnel := peering.TunnelPrefix.Addr().Next()
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	tunnelNet := &net.IPNet{IP: tunnel.AsSlice(), Mask: net.CIDRMask(128, 128)}
	if err := netlink.AddrAdd(lo, &netlink.Addr{IPNet: tunnelNet, Flags: unix.IFA_F_NODAD}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	namespace := func(name string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	exported := map[string]string{clusterset.ExportAnnotation: "true"}
	port := int32(8080)
	name, ready, dbHost := "http", true, "db-0"
	west := newTestCluster(t, "west-1",
		namespace("shop"),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Annotations: exported},
			Spec: corev1.ServiceSpec{ClusterIP: "10.97.0.10", ClusterIPs: []string{"10.97.0.10"},
				Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", Annotations: exported},
			Spec: corev1.ServiceSpec{ClusterIP: "None", ClusterIPs: []string{"None"}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.245.1.5"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db-1", Labels: map[string]string{discoveryv1.LabelServiceName: "db"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.245.2.7"}, Hostname: &dbHost, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "private"},
			Spec: corev1.ServiceSpec{ClusterIP: "10.97.0.11", ClusterIPs: []string{"10.97.0.11"}}},
	)
	east := newTestCluster(t, "east-1", namespace("shop"))
	east.sync.ips = clustersetIPConfig{Range: netip.MustParsePrefix("10.255.0.0/16"),
		Local: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("10.96.0.0/16")}}
	// east's nodes read the table its gateway publishes.
	table := &ipTable{log: slog.New(slog.DiscardHandler), consumers: []clustersetIPsConsumer{ipsFunc(east.set.SetClustersetIPs)}}
	published := func() map[string]string {
		cm, err := east.client.CoreV1().ConfigMaps(clusterset.IPsNamespace).Get(ctx, clusterset.IPsConfigMap, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the clusterset IP table: %v", err)
		}
		table.set(cm)
		return cm.Data
	}

	addr := netip.AddrPortFrom(tunnel, peering.DefaultExportPort)
	served := make(chan error, 1)
	go inNetNS(ns, func() { served <- west.sync.Serve(ctx, addr) })
	east.sync.http = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			done := make(chan struct{})
			go inNetNS(ns, func() {
				defer close(done)
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			})
			<-done
			return c, err
		},
	}}
	remote := clusterset.Remote{Cluster: "west", ID: "west-1", Addr: addr,
		Networks: []netip.Prefix{netip.MustParsePrefix("10.245.0.0/16"), netip.MustParsePrefix("10.97.0.0/16")}}
	var pullErr error
	waitFor(t, "west serving", func() bool {
		pullErr = east.sync.Pull(ctx, []clusterset.Remote{remote})
		return pullErr == nil
	}, &pullErr)

	list, err := east.client.DiscoveryV1().EndpointSlices("shop").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 2 {
		t.Fatalf("east holds %d slices (%v), want web's and db's imports", len(list.Items), err)
	}
	waitFor(t, "east's DNS to answer web", func() bool {
		return strings.Join(east.lookup("web.shop.svc.clusterset.local."), ",") == "10.97.0.10"
	})
	waitFor(t, "east's DNS to answer db's endpoints", func() bool {
		return strings.Join(east.lookup("db.shop.svc.clusterset.local."), ",") == "10.245.2.7" &&
			strings.Join(east.lookup("db-0.west-1.db.shop.svc.clusterset.local."), ",") == "10.245.2.7"
	})
	if got := east.lookup("private.shop.svc.clusterset.local."); len(got) != 0 {
		t.Errorf("an unexported Service resolves in east: %v", got)
	}
	// east's gateway gave web (not the headless db) a clusterset IP, and
	// east's DNS answers it.
	data := published()
	vip, err := netip.ParseAddr(data["shop.web"])
	if err != nil || len(data) != 1 || !netip.MustParsePrefix("10.255.0.0/16").Contains(vip) {
		t.Fatalf("clusterset IP table %v, want shop.web in 10.255.0.0/16 alone", data)
	}
	if got := strings.Join(east.lookup("web.shop.svc.clusterset.local."), ","); got != vip.String() {
		t.Errorf("east's DNS answers web with %s, want its clusterset IP %s", got, vip)
	}
	if st := east.sync.Status(); st.IPs != 1 || st.IPRange != "10.255.0.0/16" || st.IPError != "" {
		t.Errorf("status %+v, want one clusterset IP of 10.255.0.0/16", st)
	}

	// West's gateway goes away: a zero address, or a failing fetch, keeps
	// what was imported.
	west.sync.Stop()
	if err := <-served; err != nil {
		t.Errorf("Serve after Stop: %v", err)
	}
	if err := east.sync.Pull(ctx, []clusterset.Remote{{Cluster: "west", ID: "west-1"}}); err != nil {
		t.Errorf("Pull with no gateway address: %v", err)
	}
	if err := east.sync.Pull(ctx, []clusterset.Remote{remote}); err == nil || !strings.Contains(err.Error(), "cluster west") {
		t.Errorf("Pull from a stopped gateway: %v, want an error naming the cluster", err)
	}
	if list, _ := east.client.DiscoveryV1().EndpointSlices("shop").List(ctx, metav1.ListOptions{}); len(list.Items) != 2 {
		t.Errorf("imports after west's gateway went away: %d slices, want 2 kept", len(list.Items))
	}
	if got := published()["shop.web"]; got != vip.String() {
		t.Errorf("web's clusterset IP after west's gateway went away: %q, want %s kept", got, vip)
	}
	// Unpeered: the imports go.
	if err := east.sync.Pull(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if list, _ := east.client.DiscoveryV1().EndpointSlices("shop").List(ctx, metav1.ListOptions{}); len(list.Items) != 0 {
		t.Errorf("imports after unpeering: %d slices, want none", len(list.Items))
	}
	waitFor(t, "east's DNS to forget web", func() bool { return len(east.lookup("web.shop.svc.clusterset.local.")) == 0 })
	if got := published(); len(got) != 0 {
		t.Errorf("clusterset IP table after unpeering: %v, want empty", got)
	}
}

// ipsFunc is a clustersetIPsConsumer of a function.
type ipsFunc func(map[string]netip.Addr)

func (f ipsFunc) SetClustersetIPs(ips map[string]netip.Addr) { f(ips) }
