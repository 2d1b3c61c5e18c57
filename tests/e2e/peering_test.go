package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/agent/kube"
	"github.com/weftnet/weft/clusterset"
	"github.com/weftnet/weft/lab"
	"github.com/weftnet/weft/lab/probe"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

var peeringBench = flag.Bool("peering.bench", false, "measure cross-cluster pod-to-pod throughput against the same path inside one cluster (make bench)")

// peeredLabs are two --kube labs peered with `weft lab peer`: east
// (10.244.0.0/16, services 10.96.0.0/16) and west (10.245.0.0/16,
// 10.97.0.0/16), three nodes each, n1 and n2 gateway-eligible, one pod
// per node.
type peeredLabs struct {
	east, west     *cluster
	eastCS, westCS kubernetes.Interface
}

func newPeeredLabs(t *testing.T) *peeredLabs {
	t.Helper()
	east, eastCS := newKubeClusterNamed(t, "e", "--nodes", "3", "--gateways", "2", "--pods-per-node", "1")
	west, westCS := newKubeClusterNamed(t, "w", "--nodes", "3", "--gateways", "2", "--pods-per-node", "1",
		"--cluster-cidr", "10.245.0.0/16", "--service-cidr", "10.97.0.0/16")
	east.mustWeft("lab", "peer", east.name, west.name)
	return &peeredLabs{east: east, west: west, eastCS: eastCS, westCS: westCS}
}

// reachAcross probes every pod of to from every pod of from.
func reachAcross(from, to []labPod, each time.Duration) error {
	for _, a := range from {
		for _, b := range to {
			if err := reach(a, b, each); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestPeeringVXLAN peers two VXLAN labs (no control plane): every pod
// reaches every pod across both ways, and bulk TCP crosses whole (the
// overlay's MTU is larger than the peering tunnel's: the gateway must make
// path MTU discovery work).
func TestPeeringVXLAN(t *testing.T) {
	east := newClusterNamed(t, "e", "--backend", "vxlan", "--nodes", "3", "--gateways", "2", "--pods-per-node", "1",
		"--cluster-cidr", "10.246.0.0/16", "--service-cidr", "10.98.0.0/16")
	west := newClusterNamed(t, "w", "--backend", "vxlan", "--nodes", "3", "--gateways", "2", "--pods-per-node", "1",
		"--cluster-cidr", "10.247.0.0/16", "--service-cidr", "10.99.0.0/16")
	east.mustWeft("lab", "peer", east.name, west.name)
	ePods, wPods := east.pods(), west.pods()
	servers := startPodServers(t, append(append([]labPod{}, ePods...), wPods...))
	defer closeAll(servers)
	took := eventually(t, 60*time.Second, "every east pod reaches every west pod and back", func() error {
		if err := reachAcross(ePods, wPods, 2*time.Second); err != nil {
			return err
		}
		return reachAcross(wPods, ePods, 2*time.Second)
	})
	t.Logf("cross-cluster pod matrix over VXLAN overlays complete %s after `weft lab peer`", took.Round(time.Millisecond))
	bulkAcross(t, ePods[len(ePods)-1], wPods[len(wPods)-1])
}

// bulkAcross sends 20 MB of TCP from a to b and back (iperf3 -n): full
// size segments must cross, or the transfer stalls and times out.
func bulkAcross(t *testing.T, a, b labPod) {
	t.Helper()
	for _, dir := range [][2]labPod{{a, b}, {b, a}} {
		from, to := dir[0], dir[1]
		srv := exec.Command("ip", "netns", "exec", to.NetNS, "iperf3", "-s", "-1", "-B", to.IP, "-p", "5202")
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		var out []byte
		var err error
		eventually(t, 10*time.Second, "iperf3 server listening", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err = exec.CommandContext(ctx, "ip", "netns", "exec", from.NetNS, "iperf3", "-c", to.IP, "-p", "5202", "-n", "20M").CombinedOutput()
			if err != nil && strings.Contains(string(out), "Connection refused") {
				return errors.New("refused")
			}
			return nil
		})
		_ = srv.Process.Kill()
		_ = srv.Wait()
		if err != nil {
			t.Fatalf("20 MB of TCP from %s to %s did not cross: %v\n%s", from.IP, to.IP, err, out)
		}
	}
}

// activeGateway is the active gateway every node of c agrees on.
func activeGateway(c *cluster, nodes []string) (string, error) {
	active := ""
	for _, n := range nodes {
		st, err := c.agentStatus(n)
		if err != nil {
			return "", err
		}
		if st.Peering == nil || st.Peering.ActiveGateway == "" {
			return "", fmt.Errorf("%s: no active gateway", n)
		}
		if active != "" && st.Peering.ActiveGateway != active {
			return "", fmt.Errorf("%s elects %s, others %s", n, st.Peering.ActiveGateway, active)
		}
		active = st.Peering.ActiveGateway
	}
	return active, nil
}

// remoteOf is the remote cluster name's status on node.
func remoteOf(c *cluster, node, name string) (agent.RemoteClusterStatus, error) {
	st, err := c.agentStatus(node)
	if err != nil {
		return agent.RemoteClusterStatus{}, err
	}
	if st.Peering == nil {
		return agent.RemoteClusterStatus{}, errors.New("no peering status")
	}
	for _, r := range st.Peering.Remotes {
		if r.Name == name {
			return r, nil
		}
	}
	return agent.RemoteClusterStatus{}, fmt.Errorf("%s does not list remote cluster %s", node, name)
}

// TestPeering peers two --kube labs and checks the list: pods in
// each reach pods in the other over TCP and UDP with their own addresses;
// the WAN segment carries nothing but WireGuard between gateways; a
// gateway sending from an undeclared range is refused; a bad peering file
// is refused without tearing the peering down; killing the active gateway
// moves the traffic to the next, and the time it took is printed.
func TestPeering(t *testing.T) {
	start := time.Now()
	pl := newPeeredLabs(t)
	east, west := pl.east, pl.west
	t.Logf("two 3-node --kube labs up and peered in %s", time.Since(start).Round(time.Second))
	ePods, wPods := east.pods(), west.pods()
	servers := startPodServers(t, append(append([]labPod{}, ePods...), wPods...))
	defer closeAll(servers)
	nodes := []string{"n1", "n2", "n3"}

	took := eventually(t, 60*time.Second, "every east pod reaches every west pod and back", func() error {
		if err := reachAcross(ePods, wPods, 2*time.Second); err != nil {
			return err
		}
		return reachAcross(wPods, ePods, 2*time.Second)
	})
	t.Logf("cross-cluster pod matrix (%d×%d, TCP and UDP, both ways) complete %s after `weft lab peer`", len(ePods), len(wPods), took.Round(time.Millisecond))

	bulkAcross(t, ePods[len(ePods)-1], wPods[len(wPods)-1])

	var eastGW, westGW string
	eventually(t, 20*time.Second, "status shows one active gateway per cluster and a handshake between them", func() error {
		var err error
		if eastGW, err = activeGateway(east, nodes); err != nil {
			return err
		}
		if westGW, err = activeGateway(west, nodes); err != nil {
			return err
		}
		r, err := remoteOf(east, eastGW, west.name)
		if err != nil {
			return err
		}
		if r.Gateway != westGW || r.LastHandshake.IsZero() || r.RxBytes == 0 {
			return fmt.Errorf("east's gateway %s sees west as %+v, want a handshake with %s", eastGW, r, westGW)
		}
		return nil
	})
	t.Logf("active gateways: east %s, west %s", eastGW, westGW)

	t.Run("WANCarriesOnlyWireGuard", func(t *testing.T) {
		wan := lab.WANNS(east.name, west.name)
		pcap := capture(t, wan, "br0", "not arp", func() error { return reachAcross(ePods, wPods, 3*time.Second) })
		wg := pcapCount(t, pcap, fmt.Sprintf("udp port %d and src net %s and dst net %s", lab.LabPeeringPort, lab.WANSubnet, lab.WANSubnet))
		if wg == 0 {
			t.Fatal("no WireGuard packets on the WAN while pods talked across")
		}
		if n := pcapCount(t, pcap, fmt.Sprintf("not (udp port %d)", lab.LabPeeringPort)); n != 0 {
			out, _ := exec.Command("tcpdump", "-r", pcap, "-nn", fmt.Sprintf("not (udp port %d)", lab.LabPeeringPort)).Output()
			t.Errorf("%d packets on the WAN are not the gateways' WireGuard:\n%s", n, firstLines(string(out), 10))
		}
		t.Logf("WAN capture: %d packets, all WireGuard between gateways", wg)
	})

	t.Run("UndeclaredSourceRefused", func(t *testing.T) {
		// West's active gateway sends to an east pod from an address west
		// never declared: west's WireGuard sends it (it routes by
		// destination), east's drops it (not in west's AllowedIPs). The
		// same ping from west's declared pod range is the control.
		ns := west.layout.NodeNS(westGW)
		const bogus = "10.250.0.1"
		if out, err := exec.Command("ip", "-n", ns, "addr", "add", bogus+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		defer exec.Command("ip", "-n", ns, "addr", "del", bogus+"/32", "dev", "lo").Run()
		st, err := west.agentStatus(westGW)
		if err != nil {
			t.Fatal(err)
		}
		declared := netip.MustParsePrefix(st.PodCIDR).Addr().Next().String() // its pod-block address
		target := ePods[0].IP
		ping := func(src string) error {
			return exec.Command("ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", "-I", src, target).Run()
		}
		eventually(t, 10*time.Second, "ping from west's declared range", func() error { return ping(declared) })
		// Captured behind east's WireGuard (on its peering device): the
		// declared source arrives, the undeclared one never does.
		pcap := capture(t, east.layout.NodeNS(eastGW), agent.DefaultPeeringInterface, "icmp", func() error {
			for i := 0; i < 3; i++ {
				if ping(bogus) == nil {
					return fmt.Errorf("an east pod answered a packet from %s, which west never declared", bogus)
				}
			}
			return ping(declared)
		})
		if n := pcapCount(t, pcap, "src host "+bogus); n != 0 {
			t.Errorf("%d packets from the undeclared %s came out of east's WireGuard", n, bogus)
		}
		if n := pcapCount(t, pcap, "src host "+declared); n == 0 {
			t.Error("the control ping from west's declared range did not show on east's peering device")
		}
	})

	t.Run("BadFileKeepsPeering", func(t *testing.T) {
		file := east.layout.PeeringFile()
		good, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.Replace(string(good), "10.245.0.0/16", "10.244.128.0/17", 1)
		if bad == string(good) {
			t.Fatalf("west's pod CIDR is not in east's peering file:\n%s", good)
		}
		badPath := filepath.Join(t.TempDir(), "peering.yaml")
		if err := os.WriteFile(badPath, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := east.weft("peering", "check", badPath, "--name", east.name, "--pod-cidr", "10.244.0.0/16", "--service-cidr", "10.96.0.0/16")
		if err == nil || !strings.Contains(out, "podCIDRs[0]") || !strings.Contains(out, "overlaps") {
			t.Errorf("weft peering check of an overlapping bundle: err %v\n%s", err, out)
		}
		if err := os.WriteFile(file, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(file, good, 0o644)
		eventually(t, 15*time.Second, "every east agent refuses the file", func() error {
			for _, n := range nodes {
				st, err := east.agentStatus(n)
				if err != nil {
					return err
				}
				if st.Peering == nil || !strings.Contains(st.Peering.LastError, "overlaps") {
					return fmt.Errorf("%s: peering error %q", n, st.Peering.LastError)
				}
			}
			return nil
		})
		if err := reachAcross(ePods, wPods, 3*time.Second); err != nil {
			t.Fatalf("the refused file tore the peering down: %v", err)
		}
		if err := os.WriteFile(file, good, 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "the good file is accepted again", func() error {
			st, err := east.agentStatus("n3")
			if err != nil {
				return err
			}
			if st.Peering.LastError != "" {
				return errors.New(st.Peering.LastError)
			}
			return nil
		})
	})

	t.Run("GatewayFailover", func(t *testing.T) {
		// Pods away from the gateway being killed keep probing across.
		var from []labPod
		for _, p := range ePods {
			if p.Node != eastGW {
				from = append(from, p)
			}
		}
		// SIGKILL the agent here, timed from the signal; `node stop` then
		// records it (it finds the process gone).
		pid := 0
		for _, n := range east.status().Nodes {
			if n.Name == eastGW {
				pid = n.PID
			}
		}
		if pid == 0 {
			t.Fatalf("no pid for %s's agent", eastGW)
		}
		killed := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		east.mustWeft("lab", "node", "stop", "--name", east.name, eastGW)
		var rest []string
		for _, n := range nodes {
			if n != eastGW {
				rest = append(rest, n)
			}
		}
		var next string
		var elected time.Time // when the other nodes first agreed on the next gateway
		eventually(t, 30*time.Second, "traffic across resumes through the next gateway", func() error {
			var err error
			if next, err = activeGateway(east, rest); err != nil {
				return err
			}
			if next == eastGW {
				return errors.New("the killed gateway is still active")
			}
			if elected.IsZero() {
				elected = time.Now()
			}
			for _, a := range from {
				for _, b := range wPods {
					if err := reach(a, b, time.Second); err != nil {
						return err
					}
				}
			}
			return nil
		})
		took := time.Since(killed)
		t.Logf("gateway failover: east's active gateway %s killed; traffic resumed through %s %s later", eastGW, next, took.Round(time.Millisecond))
		fmt.Printf("FIGURE peering gateway failover: %s (SIGKILL of the active gateway's agent to every probe across answering; the next gateway elected by every node %s after the kill, traffic %s after that)\n",
			took.Round(time.Millisecond), elected.Sub(killed).Round(time.Millisecond), (took - elected.Sub(killed)).Round(time.Millisecond))
		eventually(t, 20*time.Second, "west follows the new gateway", func() error {
			r, err := remoteOf(west, westGW, east.name)
			if err != nil {
				return err
			}
			if r.Gateway != next {
				return fmt.Errorf("west sends to %s, not %s", r.Gateway, next)
			}
			return nil
		})
		east.mustWeft("lab", "node", "start", "--name", east.name, eastGW)
		eventually(t, 30*time.Second, "the restarted node keeps the new gateway (stickiness)", func() error {
			gw, err := activeGateway(east, nodes)
			if err != nil {
				return err
			}
			if gw != next {
				return fmt.Errorf("active gateway moved back to %s", gw)
			}
			return nil
		})
	})

	t.Run("ClustersetDNS", func(t *testing.T) {
		checkClustersetDNS(t, pl, ePods, wPods)
	})

	t.Run("LabelMakesEligible", func(t *testing.T) {
		// n3 is not eligible by config; the Node label makes it so.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, kube.LabelPeeringGateway)
		if _, err := pl.eastCS.CoreV1().Nodes().Patch(ctx, "n3", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 20*time.Second, "n3 becomes gateway-eligible", func() error {
			st, err := east.agentStatus("n3")
			if err != nil {
				return err
			}
			if !st.Peering.Gateway || st.Peering.PublicKey == "" {
				return fmt.Errorf("n3 peering status %+v", st.Peering)
			}
			return nil
		})
	})

	if *peeringBench {
		benchPeering(t, pl, ePods, wPods)
	}
}

// benchPeering measures one-stream TCP throughput from an east pod on a
// node that is not the gateway to a west pod on a node that is not the
// gateway (pod → overlay → gateway → peering tunnel → gateway → overlay →
// pod), against the same from an east pod to another east pod on a third
// node (one overlay hop), median of 3 each, in the same run.
func benchPeering(t *testing.T, pl *peeredLabs, ePods, wPods []labPod) {
	eGW, err := activeGateway(pl.east, []string{"n1", "n2", "n3"})
	if err != nil {
		t.Fatal(err)
	}
	wGW, err := activeGateway(pl.west, []string{"n1", "n2", "n3"})
	if err != nil {
		t.Fatal(err)
	}
	var src, inCluster, across labPod
	for _, p := range ePods {
		if p.Node == "n3" {
			src = p
		}
	}
	for _, p := range ePods {
		if p.Node != src.Node && p.Node != eGW {
			inCluster = p
		}
	}
	for _, p := range wPods {
		if p.Node != wGW {
			across = p
		}
	}
	state := func(p labPod) lab.PodState { return lab.PodState{NetNS: p.NetNS, IP: p.Addr()} }
	var local, remote []float64
	for i := 0; i < 3; i++ {
		local = append(local, iperf(t, pl.east, state(src), state(inCluster)))
		remote = append(remote, iperf(t, pl.east, state(src), state(across)))
	}
	l, r := medianF(local), medianF(remote)
	fmt.Printf("FIGURE peering throughput: cross-cluster %.2f Gbit/s, in-cluster %.2f Gbit/s, ratio %.2f (median of 3, one TCP stream, %s/%s -> %s/%s vs -> %s/%s)\n",
		r, l, r/l, src.Node, src.Name, across.Node, across.Name, inCluster.Node, inCluster.Name)
}

// checkClustersetDNS exports two Services in west, a headless one over
// west's pods and a ClusterIP one, and resolves them from an east pod
// through its node's DNS proxy as <svc>.<ns>.svc.clusterset.local; the
// headless answer is west's endpoints, which answer when connected to.
// Taking the export back removes the names.
func checkClustersetDNS(t *testing.T, pl *peeredLabs, ePods, wPods []labPod) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := pl.westCS
	exported := map[string]string{clusterset.ExportAnnotation: "true"}
	web := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Annotations: exported},
		Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Ports: []corev1.ServicePort{{Name: "http", Port: podPort}}}}
	api := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "default", Annotations: exported},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	for _, svc := range []*corev1.Service{web, api} {
		if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	yes := true
	name, port, proto := "http", int32(podPort), corev1.ProtocolTCP
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	var webIPs []string
	for i, p := range wPods {
		host := fmt.Sprintf("web-%d", i)
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{p.IP}, Hostname: &host,
			Conditions: discoveryv1.EndpointConditions{Ready: &yes}})
		webIPs = append(webIPs, p.IP)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	apiIP := clusterIP(t, cs, "default", "api")

	var from labPod
	for _, p := range ePods {
		if p.Node == "n3" {
			from = p
		}
	}
	took := eventually(t, 60*time.Second, "west's headless export resolves from an east pod", func() error {
		return expectA(from, "web.default.svc.clusterset.local.", webIPs...)
	})
	t.Logf("west's exports resolve in east %s after they were created", took.Round(time.Millisecond))
	eventually(t, 15*time.Second, "the gateways' status counts the export and the import", func() error {
		for _, side := range []struct {
			c         *cluster
			other     string
			exp, imps int
		}{{pl.west, pl.east.name, 2, 0}, {pl.east, pl.west.name, 0, 2}} {
			gw, err := activeGateway(side.c, []string{"n1", "n2", "n3"})
			if err != nil {
				return err
			}
			st, err := side.c.agentStatus(gw)
			if err != nil {
				return err
			}
			cs := st.Peering.Clusterset
			if cs == nil || cs.Exported != side.exp || cs.Imported[side.other] != side.imps {
				return fmt.Errorf("%s's gateway %s: clusterset status %+v, want %d exported and %d imported from %s", side.c.name, gw, cs, side.exp, side.imps, side.other)
			}
		}
		return nil
	})
	// The ClusterIP export answers east's one clusterset IP once east's
	// gateway has allocated it (west's ClusterIP until then).
	rng := netip.MustParsePrefix(clusterset.DefaultIPRange)
	eventually(t, 30*time.Second, "west's ClusterIP export answers a clusterset IP in east", func() error {
		m, err := askFrom(from.NSPath(), "udp", proxyAddr, "api.default.svc.clusterset.local.", dns.TypeA, nil)
		if err != nil {
			return err
		}
		if a, ok := firstA(m); len(m.Answer) != 1 || !ok || !rng.Contains(a) {
			return fmt.Errorf("answers %v, want one address of %s (west's ClusterIP is %s)", records(m.Answer), rng, apiIP)
		}
		return nil
	})
	host := "web-0." + lab.ClusterID(pl.west.name) + ".web.default.svc.clusterset.local."
	if err := expectA(from, host, webIPs[0]); err != nil {
		t.Errorf("per-cluster hostname: %v", err)
	}
	m, err := askFrom(from.NSPath(), "udp", proxyAddr, "_http._tcp.web.default.svc.clusterset.local.", dns.TypeSRV, nil)
	if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != len(webIPs) {
		t.Errorf("SRV of the headless export: %v %v", err, m)
	}
	m, err = askFrom(from.NSPath(), "udp", proxyAddr, "dns-version.clusterset.local.", dns.TypeTXT, nil)
	if err != nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		t.Errorf("dns-version.clusterset.local TXT: %v %v", err, m)
	}
	// The answer is usable: every west endpoint answers the east pod.
	for _, ip := range webIPs {
		seen, err := probe.TCP(ctx, from.NSPath(), netip.AddrPortFrom(netip.MustParseAddr(ip), podPort))
		if err != nil || seen.Addr() != from.Addr() {
			t.Errorf("connecting to the resolved %s: seen %v, %v", ip, seen, err)
		}
	}
	// cluster.local stays the cluster's own: west's Service is not there.
	m, err = askFrom(from.NSPath(), "udp", proxyAddr, "web.default.svc.cluster.local.", dns.TypeA, nil)
	if err != nil || m.Rcode != dns.RcodeNameError {
		t.Errorf("west's web in east's cluster.local: %v %v", err, m)
	}

	// Taking the export back removes the name.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, clusterset.ExportAnnotation)
	if _, err := cs.CoreV1().Services("default").Patch(ctx, "web", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the unexported Service leaves clusterset.local", func() error {
		m, err := askFrom(from.NSPath(), "udp", proxyAddr, "web.default.svc.clusterset.local.", dns.TypeA, nil)
		if err != nil {
			return err
		}
		if m.Rcode != dns.RcodeNameError {
			return fmt.Errorf("rcode %s, answers %v", dns.RcodeToString[m.Rcode], records(m.Answer))
		}
		return nil
	})
}

// firstA is the first A record's address of m.
func firstA(m *dns.Msg) (netip.Addr, bool) {
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			return netip.AddrFromSlice(a.A.To4())
		}
	}
	return netip.Addr{}, false
}
