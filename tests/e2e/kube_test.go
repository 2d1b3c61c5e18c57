package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/lab"
	"github.com/weftnet/weft/lab/kube"
)

var kubeIdle = flag.Duration("kube.idle", 30*time.Second, "measure agent RSS and API requests of an idle --kube lab for this long (2m or more for figures; the default is a check); 0 skips the measurement")

// repoRoot is the checkout this test file is in.
func repoRoot() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..")
}

// newKubeCluster brings up a --kube lab; it fails (not skips) when the
// control-plane binaries are missing, since CI builds them first.
func newKubeCluster(t *testing.T, args ...string) (*cluster, kubernetes.Interface) {
	t.Helper()
	return newKubeClusterNamed(t, "", args...)
}

// newKubeClusterNamed is newKubeCluster with newClusterNamed's suffix.
func newKubeClusterNamed(t *testing.T, suffix string, args ...string) (*cluster, kubernetes.Interface) {
	t.Helper()
	needRoot(t)
	root := repoRoot()
	kubeBin := filepath.Join(root, "bin")
	if err := kube.BinariesBuilt(kubeBin); err != nil {
		t.Fatalf("the Kubernetes control plane is not built: %v\n`make controlplane` (scripts/build-controlplane.sh) builds kube-apiserver and kube-controller-manager into bin/", err)
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--kubelets") }) {
		// The lab's fast path: it registers the Nodes and Pods itself.
		args = append(args, "--kubelets=false")
	}
	c := newClusterNamed(t, suffix, append([]string{"--kube", "--kube-bin-dir", kubeBin,
		"--manifests", filepath.Join(root, "deploy", "kubernetes")}, args...)...)
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{kube.APIServer, kube.ControllerManager} {
				b, _ := os.ReadFile(filepath.Join(c.layout.KubeDir(), f+".log"))
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("==== %s.log (tail)\n%s", f, b)
			}
		}
	})
	// The admin's client dials inside the control-plane netns; the config
	// stays usable while the API server is stopped and restarted.
	cp, err := kube.Load(kube.Config{Dir: c.layout.KubeDir(), NetNS: c.layout.CPNS(), Address: lab.CPAddr, BinDir: kubeBin})
	if err != nil {
		t.Fatal(err)
	}
	rc := cp.AdminRESTConfig()
	rc.Timeout = 10 * time.Second
	rc.QPS, rc.Burst = 50, 100 // tests create objects in bursts
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return c, cs
}

// TestKubeLab runs a 3-node --kube lab against a real kube-apiserver and
// kube-controller-manager.
func TestKubeLab(t *testing.T) {
	start := time.Now()
	c, cs := newKubeCluster(t, "--nodes", "3")
	t.Logf("3-node --kube lab up in %s", time.Since(start).Round(time.Millisecond))
	ctx := context.Background()
	for _, n := range []string{"n1", "n2", "n3"} {
		c.mustWeft("lab", "pod", "add", n, "p"+n[1:], "--name", c.name, "--labels", "node="+n)
	}
	pods := c.pods()
	servers := startPodServers(t, pods)
	defer func() { closeAll(servers) }()

	t.Run("every manifest in deploy/kubernetes is accepted by the API server", func(t *testing.T) {
		files, _ := filepath.Glob(filepath.Join(repoRoot(), "deploy", "kubernetes", "*.yaml"))
		var applied int
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue // a kustomize file, not an API object
			}
			out := c.mustWeft("lab", "apply", "--name", c.name, "--dry-run", "-f", f)
			if !strings.Contains(out, "serverside-applied (server dry run)") {
				t.Errorf("%s: %s", filepath.Base(f), out)
			}
			applied++
		}
		if applied < 6 {
			t.Errorf("applied %d manifests, want the 6 of deploy/kubernetes", applied)
		}
		// The server does validate: an invalid object is refused.
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		os.WriteFile(bad, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\n"), 0o644)
		if out, err := c.weft("lab", "apply", "--name", c.name, "--dry-run", "-f", bad); err == nil {
			t.Errorf("an invalid ConfigMap was accepted: %s", out)
		}
	})

	t.Run("leases are the podCIDRs kube-controller-manager assigned; Nodes annotated", func(t *testing.T) {
		eventually(t, 20*time.Second, "agents publish to their Nodes", func() error {
			return checkNodesPublished(ctx, c, cs, []string{"n1", "n2", "n3"}, true)
		})
	})

	t.Run("pods reach pods on other nodes over TCP and UDP", func(t *testing.T) {
		checkPodMatrix(t, pods, 15*time.Second)
	})

	t.Run("the EndpointSlice controller sees the lab's Pods", func(t *testing.T) {
		svc := filepath.Join(t.TempDir(), "svc.yaml")
		os.WriteFile(svc, []byte(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`), 0o644)
		c.mustWeft("lab", "apply", "--name", c.name, "-f", svc)
		c.mustWeft("lab", "pod", "label", "default/p1", "app=web", "--name", c.name)
		c.mustWeft("lab", "pod", "label", "default/p2", "app=web", "--name", c.name)
		want := []string{podIP(pods, "p1"), podIP(pods, "p2")}
		eventually(t, 20*time.Second, "EndpointSlice of web lists p1 and p2", func() error {
			got, err := sliceAddrs(ctx, cs, "default", "web")
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("ready endpoints %v, want %v", got, want)
			}
			return nil
		})
		c.mustWeft("lab", "pod", "label", "default/p2", "app-", "--name", c.name)
		eventually(t, 20*time.Second, "p2 leaves the EndpointSlice once unlabelled", func() error {
			got, err := sliceAddrs(ctx, cs, "default", "web")
			if err != nil {
				return err
			}
			if !slices.Equal(got, want[:1]) {
				return fmt.Errorf("ready endpoints %v, want %v", got, want[:1])
			}
			return nil
		})
		var st struct {
			Pods []struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"pods"`
		}
		if err := json.Unmarshal([]byte(c.mustWeft("lab", "status", "--json", "--name", c.name)), &st); err != nil {
			t.Fatal(err)
		}
		for _, p := range st.Pods {
			if p.Name == "p2" && (len(p.Labels) != 1 || p.Labels["node"] != "n2") {
				t.Errorf("lab state of p2 has labels %v, want only node=n2", p.Labels)
			}
		}
	})

	t.Run("idle: agent RSS and API requests", func(t *testing.T) {
		if *kubeIdle == 0 {
			t.Skip("-kube.idle=0: not measured")
		}
		measureIdle(t, c, *kubeIdle)
	})

	t.Run("a deleted Node's peer and routes go away on the others", func(t *testing.T) {
		var gone string
		for _, n := range c.status().Nodes {
			if n.Name == "n3" {
				gone = n.PodCIDR
			}
		}
		if err := cs.CoreV1().Nodes().Delete(ctx, "n3", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 20*time.Second, "n3 withdrawn on n1 and n2", func() error {
			for _, n := range []string{"n1", "n2"} {
				as, err := c.agentStatus(n)
				if err != nil {
					return err
				}
				if slices.ContainsFunc(as.Peers, func(p agent.PeerStatus) bool { return p.Name == "n3" }) {
					return fmt.Errorf("%s still lists n3 as a peer", n)
				}
				out, err := exec.Command("ip", "-n", c.layout.NodeNS(n), "route", "show", gone).CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "" {
					return fmt.Errorf("%s still routes n3's block %s: %s %v", n, gone, out, err)
				}
			}
			return nil
		})
		t.Logf("deleted Node withdrawn everywhere in %s", took.Round(time.Millisecond))
		if err := reachAll(podsOnAny(pods, "n1", "n2"), podsOnAny(pods, "n1", "n2"), 3*time.Second); err != nil {
			t.Errorf("the other nodes lost traffic: %v", err)
		}
		c.mustWeft("lab", "node", "del", "n3", "--name", c.name)
		pods = podsOnAny(pods, "n1", "n2")
	})

	t.Run("API server down: traffic flows, a new node joins; back: nothing torn down, state converges", func(t *testing.T) {
		before := tunnelCounters(t, c, []string{"n1", "n2"})
		agentPIDs := map[string]int{}
		for _, n := range c.status().Nodes {
			agentPIDs[n.Name] = n.PID
		}
		c.mustWeft("lab", "kube", "stop", "kube-apiserver", "--name", c.name)
		if _, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
			t.Fatal("the API server still answers after kube stop")
		}
		if err := reachAll(pods, pods, 3*time.Second); err != nil {
			t.Fatalf("with the API server down: %v", err)
		}
		out := c.mustWeft("lab", "node", "add", "n4", "--name", c.name)
		if !strings.Contains(out, "API server is unavailable") {
			t.Errorf("node add did not warn that the Node waits for the API server:\n%s", out)
		}
		c.mustWeft("lab", "pod", "add", "n4", "p4", "--name", c.name)
		var p4 labPod
		for _, p := range c.pods() {
			if p.Name == "p4" {
				p4 = p
			}
		}
		servers = append(servers, startPodServers(t, []labPod{p4})...)
		took := eventually(t, 10*time.Second, "pods on n1 and n2 reach the pod on n4 with the API server down", func() error {
			return reachAll(pods, []labPod{p4}, time.Second)
		})
		t.Logf("new node reached from every other node %s after it was ready, API server down", took.Round(time.Millisecond))

		c.mustWeft("lab", "kube", "start", "kube-apiserver", "--name", c.name)
		took = eventually(t, 90*time.Second, "n4's Node registered and published; n1 and n2 still published", func() error {
			return checkNodesPublished(ctx, c, cs, []string{"n1", "n2", "n4"}, false)
		})
		t.Logf("state converged %s after the API server was back", took.Round(time.Millisecond))
		if err := reachAll(append(slices.Clone(pods), p4), append(slices.Clone(pods), p4), 3*time.Second); err != nil {
			t.Fatal(err)
		}
		after := tunnelCounters(t, c, []string{"n1", "n2"})
		for k, b := range before {
			a, ok := after[k]
			switch {
			case !ok:
				t.Errorf("%s: peer gone after the outage", k)
			case a.key != b.key:
				t.Errorf("%s: peer key changed %s -> %s", k, b.key, a.key)
			case a.rx < b.rx || a.tx < b.tx:
				t.Errorf("%s: counters went back (rx %d -> %d, tx %d -> %d): the peer was re-created", k, b.rx, a.rx, b.tx, a.tx)
			case a.handshake.Before(b.handshake):
				t.Errorf("%s: last handshake went back %s -> %s", k, b.handshake, a.handshake)
			}
		}
		for _, n := range c.status().Nodes {
			if pid, ok := agentPIDs[n.Name]; ok && pid != n.PID {
				t.Errorf("agent of %s restarted during the outage (pid %d -> %d)", n.Name, pid, n.PID)
			}
		}
		pods = append(pods, p4)
	})

	t.Run("odd Node objects do not upset the agents", func(t *testing.T) {
		odd := []*corev1.Node{
			{ObjectMeta: metav1.ObjectMeta{Name: "odd-no-addresses"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "odd-annotations", Annotations: map[string]string{
				"weft.dev/public-key": "not a key!", "weft.dev/endpoint": "nowhere:-1", "weft.dev/pod-cidr": "10.244.999.0/24"}},
				Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "192.168.77.200"}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "odd-ipv6"}, Spec: corev1.NodeSpec{PodCIDR: "fd00:10:244::/64", PodCIDRs: []string{"fd00:10:244::/64"}},
				Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "fd00::77:201"}}}},
		}
		for _, n := range odd {
			if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
				t.Fatalf("creating %s: %v", n.Name, err)
			}
		}
		defer func() {
			for _, n := range odd {
				_ = cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{})
			}
		}()
		pids := map[string]int{}
		for _, n := range c.status().Nodes {
			pids[n.Name] = n.PID
		}
		time.Sleep(5 * time.Second) // several resyncs (2s) with the odd Nodes in every cache
		for _, n := range c.status().Nodes {
			as, err := c.agentStatus(n.Name)
			if err != nil || !as.Ready || !n.Running || n.PID != pids[n.Name] {
				t.Errorf("node %s: ready %v running %v pid %d (was %d) err %v", n.Name, as.Ready, n.Running, n.PID, pids[n.Name], err)
			}
			if slices.ContainsFunc(as.Peers, func(p agent.PeerStatus) bool { return strings.HasPrefix(p.Name, "odd") }) {
				t.Errorf("node %s made a peer of an odd Node: %+v", n.Name, as.Peers)
			}
		}
		live := podsOnAny(pods, "n1", "n2", "n4")
		if err := reachAll(live, live, 3*time.Second); err != nil {
			t.Error(err)
		}
	})
}

// checkNodesPublished checks, for each node, that its agent's lease is its
// Node's podCIDR (when exact), and that the Node carries the weft
// annotations and NetworkUnavailable=False.
func checkNodesPublished(ctx context.Context, c *cluster, cs kubernetes.Interface, nodes []string, exact bool) error {
	for _, name := range nodes {
		n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		as, err := c.agentStatus(name)
		if err != nil {
			return err
		}
		if exact && (n.Spec.PodCIDR == "" || as.PodCIDR != n.Spec.PodCIDR) {
			return fmt.Errorf("%s: agent lease %q, Node podCIDR %q", name, as.PodCIDR, n.Spec.PodCIDR)
		}
		key := strings.TrimSpace(c.mustWeft("lab", "exec", "--name", c.name, name, "--", "wg", "show", "weft0", "public-key"))
		want := map[string]string{
			"weft.dev/pod-cidr":   as.PodCIDR,
			"weft.dev/endpoint":   as.UnderlayIP + ":51820",
			"weft.dev/public-key": key,
		}
		for k, v := range want {
			if n.Annotations[k] != v {
				return fmt.Errorf("%s: annotation %s = %q, want %q", name, k, n.Annotations[k], v)
			}
		}
		available := false
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeNetworkUnavailable && cond.Status == corev1.ConditionFalse {
				available = true
			}
		}
		if !available {
			return fmt.Errorf("%s: NetworkUnavailable is not False: %+v", name, n.Status.Conditions)
		}
	}
	return nil
}

type peerCounters struct {
	key       string
	rx, tx    int64
	handshake time.Time
}

// tunnelCounters reads, on each node, every WireGuard peer's public key
// (from the device, through wgctrl's UAPI, by `wg`) and the agent's byte
// counters and handshake time, keyed "node->peer".
func tunnelCounters(t *testing.T, c *cluster, nodes []string) map[string]peerCounters {
	t.Helper()
	out := map[string]peerCounters{}
	for _, n := range nodes {
		as, err := c.agentStatus(n)
		if err != nil {
			t.Fatal(err)
		}
		dump := c.mustWeft("lab", "exec", "--name", c.name, n, "--", "wg", "show", "weft0", "allowed-ips")
		keyOf := map[string]string{} // podCIDR -> public key
		for _, line := range strings.Split(strings.TrimSpace(dump), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				keyOf[f[1]] = f[0]
			}
		}
		for _, p := range as.Peers {
			out[n+"->"+p.Name] = peerCounters{key: keyOf[p.PodCIDR], rx: p.RxBytes, tx: p.TxBytes, handshake: p.LastHandshake}
		}
	}
	return out
}

// sliceAddrs lists the ready endpoint addresses of Service ns/name, sorted.
func sliceAddrs(ctx context.Context, cs kubernetes.Interface, ns, name string) ([]string, error) {
	l, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range l.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				out = append(out, e.Addresses...)
			}
		}
	}
	slices.SortFunc(out, func(a, b string) int { return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b)) })
	return out, nil
}

func podIP(pods []labPod, name string) string {
	for _, p := range pods {
		if p.Name == name {
			return p.IP
		}
	}
	return ""
}

func podsOnAny(pods []labPod, nodes ...string) []labPod {
	var out []labPod
	for _, p := range pods {
		if slices.Contains(nodes, p.Node) {
			out = append(out, p)
		}
	}
	return out
}

// measureIdle records, over d, every agent's RSS and the API requests the
// agents make, counted by the API server: a FlowSchema that matches only
// the weft ServiceAccount classifies them, and
// apiserver_flowcontrol_dispatched_requests_total counts them.
func measureIdle(t *testing.T, c *cluster, d time.Duration) {
	fs := filepath.Join(t.TempDir(), "flowschema.yaml")
	os.WriteFile(fs, []byte(`apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: weft-agents}
spec:
  priorityLevelConfiguration: {name: workload-low}
  matchingPrecedence: 500
  distinguisherMethod: {type: ByUser}
  rules:
  - subjects:
    - kind: ServiceAccount
      serviceAccount: {name: weft, namespace: weft-system}
    resourceRules:
    - verbs: ["*"]
      apiGroups: ["*"]
      resources: ["*"]
      clusterScope: true
      namespaces: ["*"]
    nonResourceRules:
    - verbs: ["*"]
      nonResourceURLs: ["*"]
`), 0o644)
	c.mustWeft("lab", "apply", "--name", c.name, "-f", fs)
	// The agents' watches were opened before the schema existed; from now
	// on each new request is classified by it.
	time.Sleep(5 * time.Second)
	nodes := c.status().Nodes
	count := func() float64 {
		out := c.mustWeft("lab", "exec", "--name", c.name, "cp", "--", "kubectl", "--kubeconfig", c.layout.AdminKubeconfig(), "get", "--raw", "/metrics")
		var sum float64
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if strings.HasPrefix(l, "apiserver_flowcontrol_dispatched_requests_total{") && strings.Contains(l, `flow_schema="weft-agents"`) {
				v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
				sum += v
			}
		}
		return sum
	}
	rss := func() []int {
		var out []int
		for _, n := range nodes {
			out = append(out, vmRSS(n.PID))
		}
		return out
	}
	step := 30 * time.Second
	start := rss()
	prev := count()
	first := prev
	var perStep []float64
	var rssSteps [][]int
	for elapsed := time.Duration(0); elapsed < d; elapsed += step {
		time.Sleep(step)
		cur := count()
		perStep = append(perStep, cur-prev)
		rssSteps = append(rssSteps, rss())
		prev = cur
	}
	total := prev - first
	perMin := total / d.Minutes()
	t.Logf("idle %s, %d agents", d, len(nodes))
	t.Logf("API requests by all agents: %.0f = %.1f/min (%.2f/min per agent); per %s: %v", total, perMin, perMin/float64(len(nodes)), step, perStep)
	t.Logf("agent RSS (KiB) at start %v, then every %s: %v", start, step, rssSteps)
	// The counter does count the agents' identity: one request with the
	// agents' kubeconfig moves it.
	c.mustWeft("lab", "exec", "--name", c.name, "cp", "--", "kubectl", "--kubeconfig", c.layout.AgentKubeconfig(), "get", "nodes")
	if after := count(); after <= prev {
		t.Errorf("a request as the weft ServiceAccount did not move the counter (%.0f -> %.0f): the figures above mean nothing", prev, after)
	}
	if perMin/float64(len(nodes)) > 10 {
		t.Errorf("an idle agent makes %.1f API requests a minute; the watches should keep it near zero", perMin/float64(len(nodes)))
	}
}

func vmRSS(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return -1
}
