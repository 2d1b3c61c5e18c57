package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/weftnet/weft/clusterset"
	"github.com/weftnet/weft/serviceproxy"
)

// TestClustersetIP peers two --kube labs (east: three nodes, n1 and n2
// gateway-eligible; west: two nodes, n1 the gateway) that both export
// Service api, backed by their pods. From a pod on a node of each side
// that is no gateway, api.default.svc.clusterset.local resolves through
// the node's DNS to one clusterset IP of the default range, and
// connections to it reach every backend of both clusters: the local ones
// directly, the peer's through its ClusterIP and the gateways. When east's
// active gateway dies, the next one adopts the published table: the
// clusterset IP stays and still reaches west. When west stops exporting,
// east's clusterset IP stays and goes to east's backends only.
func TestClustersetIP(t *testing.T) {
	start := time.Now()
	east, eastCS := newKubeClusterNamed(t, "e", "--nodes", "3", "--gateways", "2", "--pods-per-node", "1")
	west, westCS := newKubeClusterNamed(t, "w", "--nodes", "2", "--gateways", "1", "--pods-per-node", "1",
		"--cluster-cidr", "10.245.0.0/16", "--service-cidr", "10.97.0.0/16")
	east.mustWeft("lab", "peer", east.name, west.name)
	t.Logf("two --kube labs (3 and 2 nodes) up and peered in %s", time.Since(start).Round(time.Second))
	ePods, wPods := east.pods(), west.pods()
	servers := startPodServers(t, append(append([]labPod{}, ePods...), wPods...))
	defer closeAll(servers)
	backends := map[netip.Addr]string{}
	for _, p := range ePods {
		backends[p.Addr()] = "east/" + p.Name
	}
	for _, p := range wPods {
		backends[p.Addr()] = "west/" + p.Name
	}
	exportAPI(t, eastCS, ePods)
	exportAPI(t, westCS, wPods)
	rng := netip.MustParsePrefix(clusterset.DefaultIPRange)
	const name = "api.default.svc.clusterset.local."

	eastNodes := []string{"n1", "n2", "n3"}
	var eastVIP netip.Addr
	for _, side := range []struct {
		c      *cluster
		pods   []labPod
		nodes  []string
		client string
		other  string
	}{{east, ePods, eastNodes, "n3", "west/"}, {west, wPods, []string{"n1", "n2"}, "n2", "east/"}} {
		from := podOn(side.pods, side.client)
		var vip netip.Addr
		took := eventually(t, 90*time.Second, side.c.name+": "+name+" answers one clusterset IP", func() error {
			m, err := askFrom(from.NSPath(), "udp", proxyAddr, name, dns.TypeA, nil)
			if err != nil {
				return err
			}
			var ok bool
			if vip, ok = firstA(m); len(m.Answer) != 1 || !ok || !rng.Contains(vip) {
				return fmt.Errorf("answers %v, want one clusterset IP of %s", records(m.Answer), rng)
			}
			return nil
		})
		t.Logf("%s: %s is %s, %s after the exports were made", side.c.name, name, vip, took.Round(time.Millisecond))
		to := netip.AddrPortFrom(vip, 80)
		eventually(t, 30*time.Second, side.c.name+": the clusterset IP reaches a backend of the other cluster", func() error {
			for range 20 {
				a, err := answer(from.NSPath(), to)
				if err != nil {
					return err
				}
				if strings.HasPrefix(backends[a.Server.Addr()], side.other) {
					return nil
				}
			}
			return fmt.Errorf("20 connections never reached the other cluster")
		})
		seen := spreadOver(t, from.NSPath(), to, 60, backends)
		t.Logf("%s: 60 connections from %s to %s: %v", side.c.name, from.Name, to, seen)
		if len(seen) != len(backends) {
			t.Errorf("%s: 60 connections to the clusterset IP reached %v, want all %d backends of both clusters", side.c.name, seen, len(backends))
		}
		if side.c == east {
			eastVIP = vip
		}
		// The gateway's status is taken at its reconcile: it may lag.
		eventually(t, 30*time.Second, side.c.name+"'s gateway counts the clusterset IP", func() error {
			gw, err := activeGateway(side.c, side.nodes)
			if err != nil {
				return err
			}
			st, err := side.c.agentStatus(gw)
			if err != nil {
				return err
			}
			if cs := st.Peering.Clusterset; cs == nil || cs.IPs != 1 || cs.IPRange != rng.String() || cs.IPError != "" {
				return fmt.Errorf("clusterset status %+v, want one clusterset IP of %s", cs, rng)
			}
			return nil
		})
		out, err := exec.Command("ip", "netns", "exec", side.c.layout.NodeNS(side.client), "nft", "list", "chain", "ip", serviceproxy.TableName,
			"service-default/api.clusterset.local/tcp/80").CombinedOutput()
		if err != nil {
			t.Errorf("%s %s: the clusterset IP's chain in %s: %v\n%s", side.c.name, side.client, serviceproxy.TableName, err, out)
		}
	}

	// East's active gateway dies (its agent, and with it its WireGuard
	// device: its pod is taken out of api's endpoints, as a dead node's
	// would be). The next gateway reads the published table and keeps the
	// clusterset IP, which still reaches west.
	from := podOn(ePods, "n3")
	gw, err := activeGateway(east, eastNodes)
	if err != nil {
		t.Fatal(err)
	}
	dropEndpointsOn(t, eastCS, gw)
	for _, n := range east.status().Nodes {
		if n.Name == gw {
			if err := syscall.Kill(n.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	killed := time.Now()
	east.mustWeft("lab", "node", "stop", "--name", east.name, gw)
	var rest []string
	for _, n := range eastNodes {
		if n != gw {
			rest = append(rest, n)
		}
	}
	eventually(t, 60*time.Second, "east's next gateway publishes the same clusterset IP", func() error {
		next, err := activeGateway(east, rest)
		if err != nil {
			return err
		}
		if next == gw {
			return fmt.Errorf("the killed gateway %s is still active", gw)
		}
		st, err := east.agentStatus(next)
		if err != nil {
			return err
		}
		if cs := st.Peering.Clusterset; cs == nil || cs.IPs != 1 || cs.LastPull.Before(killed) {
			return fmt.Errorf("%s: clusterset status %+v, want a pull since the kill with one clusterset IP", next, cs)
		}
		return nil
	})
	eventually(t, 60*time.Second, "east's clusterset IP reaches west through the next gateway", func() error {
		m, err := askFrom(from.NSPath(), "udp", proxyAddr, name, dns.TypeA, nil)
		if err != nil {
			return err
		}
		if vip, ok := firstA(m); len(m.Answer) != 1 || !ok || vip != eastVIP {
			return fmt.Errorf("answers %v, want %s as before", records(m.Answer), eastVIP)
		}
		for range 20 {
			a, err := answer(from.NSPath(), netip.AddrPortFrom(eastVIP, 80))
			if err != nil {
				return err
			}
			if strings.HasPrefix(backends[a.Server.Addr()], "west/") {
				return nil
			}
		}
		return fmt.Errorf("20 connections never reached west")
	})
	t.Logf("east's gateway %s killed: clusterset IP %s unchanged, reaching west again %s after the kill", gw, eastVIP, time.Since(killed).Round(time.Millisecond))

	// West stops exporting: east's clusterset IP stays, and only east's
	// backends answer it.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, clusterset.ExportAnnotation)
	if _, err := westCS.CoreV1().Services("default").Patch(context.Background(), "api", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := askFrom(from.NSPath(), "udp", proxyAddr, name, dns.TypeA, nil)
	if err != nil {
		t.Fatal(err)
	}
	vip, ok := firstA(m)
	if len(m.Answer) != 1 || !ok || !rng.Contains(vip) {
		t.Fatalf("%s after west unexported: %v, want east's clusterset IP still", name, records(m.Answer))
	}
	took := eventually(t, 60*time.Second, "east's clusterset IP goes to east's backends only", func() error {
		for range 20 {
			a, err := answer(from.NSPath(), netip.AddrPortFrom(vip, 80))
			if err != nil {
				return err
			}
			if !strings.HasPrefix(backends[a.Server.Addr()], "east/") {
				return fmt.Errorf("answered by %s", a.Server.Addr())
			}
		}
		return nil
	})
	t.Logf("west's unexport left east's clusterset IP %s within %s", vip, took.Round(time.Millisecond))
}

// exportAPI makes Service default/api (port 80, exported by annotation)
// with one EndpointSlice of pods at podPort.
func exportAPI(t *testing.T, cs kubernetes.Interface, pods []labPod) {
	t.Helper()
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default",
		Annotations: map[string]string{clusterset.ExportAnnotation: "true"}},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	yes := true
	name, port, proto := "http", int32(podPort), corev1.ProtocolTCP
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "api-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "api"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	for _, p := range pods {
		node := p.Node
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{p.IP}, NodeName: &node,
			Conditions: discoveryv1.EndpointConditions{Ready: &yes}})
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, sl, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// dropEndpointsOn takes the endpoints on node out of api's EndpointSlice.
func dropEndpointsOn(t *testing.T, cs kubernetes.Interface, node string) {
	t.Helper()
	ctx := context.Background()
	sl, err := cs.DiscoveryV1().EndpointSlices("default").Get(ctx, "api-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sl.Endpoints = slices.DeleteFunc(sl.Endpoints, func(e discoveryv1.Endpoint) bool { return e.NodeName != nil && *e.NodeName == node })
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, sl, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// podOn is the first of pods on node.
func podOn(pods []labPod, node string) labPod {
	for _, p := range pods {
		if p.Node == node {
			return p
		}
	}
	return pods[0]
}
