package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/weftnet/weft/lab"
	"github.com/weftnet/weft/lab/probe"
)

// TestNetworkPolicy runs NetworkPolicy truth tables on a 3-node --kube lab:
// namespaces x, y, z with pods a, b, c each, every pod serving TCP and UDP
// on ports 80 and 81. For each case it applies policies to the API server
// and probes every pod pair on every port until the observed matrix equals
// the one the evaluator (policyeval_test.go) computes from the API's
// documented semantics, within a bound.
func TestNetworkPolicy(t *testing.T) {
	c, cs := newKubeCluster(t, "--nodes", "3")
	ctx := context.Background()
	pt := newPolicyTable(t, c, cs)

	pt.run(t, ctx, policyCases(pt), nil)

	t.Run("the node reaches its pods through a deny-all ingress; status counts drops", func(t *testing.T) {
		pt.setPolicies(t, ctx, []*networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny-all"},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}})
		pt.converge(t, "deny-all ingress in x")
		for _, p := range pt.pods {
			if p.Namespace != "x" {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			_, err := probe.TCP(pctx, c.nodeNSPath(pt.nodeOf[p.key()]), netip.AddrPortFrom(p.IP, 80))
			cancel()
			if err != nil {
				t.Errorf("node %s to its pod %s: %v", pt.nodeOf[p.key()], p.key(), err)
			}
		}
		// The agents read their counters every 5s: poll.
		eventually(t, 15*time.Second, "drops counted for every pod of x", func() error {
			var dropped uint64
			podDrops := map[string]uint64{}
			for _, n := range []string{"n1", "n2", "n3"} {
				st, err := c.agentStatus(n)
				if err != nil || st.Policy == nil {
					return fmt.Errorf("%s status: %v, policy %v", n, err, st.Policy)
				}
				if st.Policy.Policies != 1 || st.Policy.Pods != 1 || st.Policy.LastError != "" || len(st.Policy.Problems) > 0 {
					t.Fatalf("%s policy status %+v, want 1 policy, 1 pod, no error", n, *st.Policy)
				}
				dropped += st.Policy.DroppedPackets
				for _, d := range st.Policy.TopDrops {
					podDrops[d.Pod+" "+d.Direction] += d.Packets
				}
			}
			// Every pod of x was probed through the deny-all, on its own node.
			for _, p := range []string{"x/a", "x/b", "x/c"} {
				if podDrops[p+" ingress"] == 0 {
					return fmt.Errorf("no drops counted for %s ingress; per-pod drops %v", p, podDrops)
				}
			}
			if dropped < podDrops["x/a ingress"]+podDrops["x/b ingress"]+podDrops["x/c ingress"] {
				return fmt.Errorf("total drops %d below the per-pod sum %v", dropped, podDrops)
			}
			return nil
		})
		out := c.mustWeft("policy", "show", "--socket", c.layout.Node("n1").StatusSocket)
		if !strings.Contains(out, "table ip weft-policy") || !strings.Contains(out, "x/deny-all") {
			t.Errorf("weft policy show:\n%s", out)
		}
	})

	t.Run("a new pod is isolated by the policy already in place", func(t *testing.T) {
		c.mustWeft("lab", "pod", "add", "n1", "d", "--name", c.name, "-n", "x", "-l", "pod=d")
		var st lab.Status
		if err := json.Unmarshal([]byte(c.mustWeft("lab", "status", "--json", "--name", c.name)), &st); err != nil {
			t.Fatal(err)
		}
		var d lab.PodState
		for _, p := range st.Pods {
			if p.Namespace == "x" && p.Name == "d" {
				d = p
			}
		}
		s, err := probe.Serve(lab.NetNSPath(d.NetNS), netip.AddrPortFrom(d.IP, 80))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var ya evalPod
		for _, p := range pt.pods {
			if p.key() == "y/a" {
				ya = p
			}
		}
		yaNS := lab.NetNSPath(c.layout.PodNS(pt.nodeOf["y/a"], "a"))
		took := eventually(t, 10*time.Second, "y/a blocked from the new pod x/d", func() error {
			pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			if _, err := probe.TCP(pctx, yaNS, netip.AddrPortFrom(d.IP, 80)); err == nil {
				return fmt.Errorf("y/a reached x/d")
			}
			return nil
		})
		t.Logf("new pod isolated %s after `weft lab pod add` returned", took.Round(10*time.Millisecond))
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := probe.TCP(pctx, lab.NetNSPath(d.NetNS), netip.AddrPortFrom(ya.IP, 80)); err != nil {
			t.Errorf("x/d (egress not isolated) to y/a: %v", err)
		}
	})
}

// TestNetworkPolicyVXLAN runs some of the truth tables over the VXLAN
// backend, where remote traffic arrives on weft-vxlan instead of weft0.
func TestNetworkPolicyVXLAN(t *testing.T) {
	c, cs := newKubeCluster(t, "--nodes", "3", "--backend", "vxlan")
	pt := newPolicyTable(t, c, cs)
	pt.run(t, context.Background(), policyCases(pt), []string{
		"no policy: everything allowed",
		"deny-all ingress in x",
		"pod AND namespace selector in one peer",
		"ipBlock with except",
		"egress deny overrides an ingress allow",
		"a deleted policy stops being enforced",
	})

	ctx := context.Background()
	xb := pt.nodeOf["x/b"]
	t.Run("a stopped agent leaves its policy in force; restarted, it goes on", func(t *testing.T) {
		pt.setPolicies(t, ctx, []*networkingv1.NetworkPolicy{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "deny-all"},
			Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
		}})
		pt.converge(t, "deny-all ingress in x")
		c.mustWeft("lab", "node", "stop", xb, "--name", c.name)
		pt.converge(t, "deny-all ingress in x, "+xb+"'s agent stopped")
		c.mustWeft("lab", "node", "start", xb, "--name", c.name)
		eventually(t, 30*time.Second, xb+"'s agent enforcing again", func() error {
			st, err := c.agentStatus(xb)
			if err != nil || st.Policy == nil || !st.Policy.Synced || st.Policy.Pods != 1 {
				return fmt.Errorf("status %v, %+v", err, st.Policy)
			}
			return nil
		})
		pt.converge(t, "deny-all ingress in x after "+xb+"'s restart")
	})

	t.Run("weft leave removes the policy table", func(t *testing.T) {
		ns := c.layout.NodeNS(xb)
		c.mustWeft("leave", "--socket", c.layout.Node(xb).StatusSocket)
		eventually(t, 15*time.Second, xb+"'s policy table gone", func() error {
			if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "ip", "weft-policy").CombinedOutput(); err == nil {
				return fmt.Errorf("table ip weft-policy still there: %.200s", out)
			}
			return nil
		})
	})
}

// policyCase is one truth table: policies to apply (replacing the last
// case's), and optionally something to do once they are applied.
type policyCase struct {
	name     string
	policies []*networkingv1.NetworkPolicy
	before   func(t *testing.T) // runs after the policies are applied
}

// policyCases are the truth tables, in order: each expects a different
// matrix from the one before it.
func policyCases(pt *policyTable) []policyCase {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(p corev1.Protocol, n int32, end ...int32) networkingv1.NetworkPolicyPort {
		v := intstr.FromInt32(n)
		pp := networkingv1.NetworkPolicyPort{Protocol: &p, Port: &v}
		if len(end) > 0 {
			pp.EndPort = &end[0]
		}
		return pp
	}
	namedPort := func(p corev1.Protocol, name string) networkingv1.NetworkPolicyPort {
		v := intstr.FromString(name)
		return networkingv1.NetworkPolicyPort{Protocol: &p, Port: &v}
	}
	sel := func(kv ...string) *metav1.LabelSelector {
		s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
		for i := 0; i+1 < len(kv); i += 2 {
			s.MatchLabels[kv[i]] = kv[i+1]
		}
		return s
	}
	pol := func(ns, name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	}
	ingress := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egress := []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	from := func(peers ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyIngressRule {
		return []networkingv1.NetworkPolicyIngressRule{{From: peers}}
	}
	podA := *sel("pod", "a")

	// The pods of node n2 (its lease) are cut out of an ipBlock.
	n2Block := pt.lease("n2")

	return []policyCase{
		{name: "no policy: everything allowed"},
		{name: "deny-all ingress in x", policies: []*networkingv1.NetworkPolicy{
			pol("x", "deny-ingress", networkingv1.NetworkPolicySpec{PolicyTypes: ingress})}},
		{name: "deny-all egress in y", policies: []*networkingv1.NetworkPolicy{
			pol("y", "deny-egress", networkingv1.NetworkPolicySpec{PolicyTypes: egress})}},
		{name: "allow x/a from pods b in x", policies: []*networkingv1.NetworkPolicy{
			pol("x", "a-from-b", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingress,
				Ingress: from(networkingv1.NetworkPolicyPeer{PodSelector: sel("pod", "b")})})}},
		{name: "allow x/a from namespace y", policies: []*networkingv1.NetworkPolicy{
			pol("x", "a-from-y", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingress,
				Ingress: from(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "y")})})}},
		{name: "pod AND namespace selector in one peer", policies: []*networkingv1.NetworkPolicy{
			pol("x", "a-from-y-b", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingress,
				Ingress: from(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "y"), PodSelector: sel("pod", "b")})})}},
		{name: "pod OR namespace selector in two peers", policies: []*networkingv1.NetworkPolicy{
			pol("x", "a-from-y-or-b", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingress,
				Ingress: from(networkingv1.NetworkPolicyPeer{NamespaceSelector: sel("ns", "y")},
					networkingv1.NetworkPolicyPeer{PodSelector: sel("pod", "b")})})}},
		{name: "matchExpressions: In, NotIn, Exists, DoesNotExist", policies: []*networkingv1.NetworkPolicy{
			pol("y", "expressions", networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pod", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"c"}}}},
				PolicyTypes: ingress,
				Ingress: from(
					networkingv1.NetworkPolicyPeer{
						NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "ns", Operator: metav1.LabelSelectorOpIn, Values: []string{"x", "z"}}}},
						PodSelector:       &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pod", Operator: metav1.LabelSelectorOpExists}, {Key: "pod", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"a"}}}}},
					networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "extra", Operator: metav1.LabelSelectorOpDoesNotExist}, {Key: "pod", Operator: metav1.LabelSelectorOpIn, Values: []string{"c"}}}}}),
			})}},
		{name: "named ports resolve on each destination pod", policies: []*networkingv1.NetworkPolicy{
			pol("z", "named", networkingv1.NetworkPolicySpec{PolicyTypes: ingress,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{namedPort(tcp, "web"), namedPort(udp, "dns")}}}})}},
		{name: "endPort range and a port outside it", policies: []*networkingv1.NetworkPolicy{
			pol("x", "range", networkingv1.NetworkPolicySpec{PolicyTypes: ingress,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(tcp, 79, 80), port(udp, 81, 90)}}}})}},
		{name: "ipBlock with except", policies: []*networkingv1.NetworkPolicy{
			pol("y", "block", networkingv1.NetworkPolicySpec{PolicyTypes: ingress,
				Ingress: from(networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: "10.244.0.0/16", Except: []string{n2Block}}})})}},
		{name: "egress deny overrides an ingress allow", policies: []*networkingv1.NetworkPolicy{
			pol("x", "deny-egress", networkingv1.NetworkPolicySpec{PolicyTypes: egress}),
			pol("y", "allow-all", networkingv1.NetworkPolicySpec{PolicyTypes: ingress, Ingress: []networkingv1.NetworkPolicyIngressRule{{}}})}},
		{name: "egress allowed to a namespace on one port", policies: []*networkingv1.NetworkPolicy{
			pol("z", "to-x-81", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "b"), PolicyTypes: egress,
				Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("ns", "x")}}, Ports: []networkingv1.NetworkPolicyPort{port(tcp, 81)}}}})}},
		{name: "a UDP-only policy does not open TCP", policies: []*networkingv1.NetworkPolicy{
			pol("z", "udp-only", networkingv1.NetworkPolicySpec{PolicyTypes: ingress,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{port(udp, 80), port(udp, 81)}}}})}},
		{name: "a label change takes effect", policies: []*networkingv1.NetworkPolicy{
			pol("x", "from-clients", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingress,
				Ingress: from(networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: sel("role", "client")})})},
			before: func(t *testing.T) {
				pt.converge(t, "before the label change")
				pt.label(t, "y/b", "role=client")
			}},
		{name: "a deleted policy stops being enforced"}, // the label-change policy is deleted
	}
}

// run applies each case and converges on its matrix. only, when set,
// picks the cases to run by name.
func (pt *policyTable) run(t *testing.T, ctx context.Context, cases []policyCase, only []string) {
	var prev map[probeKey]bool
	for _, tc := range cases {
		if only != nil && !slices.Contains(only, tc.name) {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			pt.setPolicies(t, ctx, tc.policies)
			if tc.before != nil {
				tc.before(t)
			}
			// Each case must expect a matrix other than the last one's, so
			// that converging proves the change was enforced.
			want := pt.expected()
			if prev != nil && maps.Equal(want, prev) {
				t.Fatalf("case expects the same matrix as the one before it; it would prove nothing")
			}
			prev = want
			pt.converge(t, tc.name)
		})
	}

}

// policyTable is the lab's pods, servers and the policies applied.
type policyTable struct {
	c       *cluster
	cs      kubernetes.Interface
	pods    []evalPod
	nodeOf  map[string]string
	world   evalWorld
	applied []*networkingv1.NetworkPolicy
	leases  map[string]string
}

func (pt *policyTable) lease(node string) string { return pt.leases[node] }

// newPolicyTable labels namespaces x, y, z (ns=<name>), adds pods a, b, c
// to each, rotated over the nodes, with named ports "web" and "dns" (80 on
// a and b, 81 on c), and starts TCP and UDP servers on 80 and 81 in each.
func newPolicyTable(t *testing.T, c *cluster, cs kubernetes.Interface) *policyTable {
	ctx := context.Background()
	pt := &policyTable{c: c, cs: cs, nodeOf: map[string]string{}, leases: map[string]string{},
		world: evalWorld{namespaces: map[string]map[string]string{}}}
	nodes := []string{"n1", "n2", "n3"}
	for i, ns := range []string{"x", "y", "z"} {
		labels := map[string]string{"ns": ns}
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		labels[corev1.LabelMetadataName] = ns
		pt.world.namespaces[ns] = labels
		for j, name := range []string{"a", "b", "c"} {
			n := nodes[(i+j)%3]
			p := "80"
			if name == "c" {
				p = "81"
			}
			c.mustWeft("lab", "pod", "add", n, name, "--name", c.name, "-n", ns, "-l", "pod="+name,
				"--ports", "web="+p+"/TCP,dns="+p+"/UDP")
		}
	}
	var st lab.Status
	if err := json.Unmarshal([]byte(c.mustWeft("lab", "status", "--json", "--name", c.name)), &st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		pt.leases[n.Name] = n.PodCIDR
	}
	var servers []*probe.Server
	t.Cleanup(func() { closeAll(servers) })
	for _, p := range st.Pods {
		ep := evalPod{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels, IP: p.IP}
		for _, pp := range p.Ports {
			ep.Ports = append(ep.Ports, corev1.ContainerPort{Name: pp.Name, ContainerPort: pp.Port, Protocol: corev1.Protocol(pp.Protocol)})
		}
		pt.pods = append(pt.pods, ep)
		pt.nodeOf[ep.key()] = p.Node
		for _, port := range []uint16{80, 81} {
			s, err := probe.Serve(lab.NetNSPath(p.NetNS), netip.AddrPortFrom(p.IP, port))
			if err != nil {
				t.Fatal(err)
			}
			servers = append(servers, s)
		}
	}
	if len(pt.pods) != 9 {
		t.Fatalf("lab has %d pods, want 9", len(pt.pods))
	}
	slices.SortFunc(pt.pods, func(a, b evalPod) int { return strings.Compare(a.key(), b.key()) })
	return pt
}

// setPolicies replaces the applied policies with ps.
func (pt *policyTable) setPolicies(t *testing.T, ctx context.Context, ps []*networkingv1.NetworkPolicy) {
	t.Helper()
	for _, p := range pt.applied {
		err := pt.cs.NetworkingV1().NetworkPolicies(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	pt.applied = nil
	for _, p := range ps {
		got, err := pt.cs.NetworkingV1().NetworkPolicies(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create NetworkPolicy %s/%s: %v", p.Namespace, p.Name, err)
		}
		// The evaluator reads the policies as the API server stored them.
		pt.applied = append(pt.applied, got)
	}
	pt.world.policies = pt.applied
}

// label sets a pod's label through `weft lab pod label`.
func (pt *policyTable) label(t *testing.T, key, kv string) {
	t.Helper()
	pt.c.mustWeft("lab", "pod", "label", key, kv, "--name", pt.c.name)
	k, v, _ := strings.Cut(kv, "=")
	for i := range pt.pods {
		if pt.pods[i].key() == key {
			l := map[string]string{}
			for a, b := range pt.pods[i].Labels {
				l[a] = b
			}
			l[k] = v
			pt.pods[i].Labels = l
		}
	}
}

// probeKey is one cell of the matrix.
type probeKey struct {
	src, dst string
	proto    corev1.Protocol
	port     int32
}

func (k probeKey) String() string {
	return fmt.Sprintf("%s -> %s %s/%d", k.src, k.dst, k.proto, k.port)
}

// expected computes the matrix from the evaluator.
func (pt *policyTable) expected() map[probeKey]bool {
	out := map[probeKey]bool{}
	for _, s := range pt.pods {
		for _, d := range pt.pods {
			if s.key() == d.key() {
				continue // a pod's traffic to itself never leaves it
			}
			for _, proto := range []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP} {
				for _, port := range []int32{80, 81} {
					out[probeKey{s.key(), d.key(), proto, port}] = pt.world.allowed(s, d, proto, port)
				}
			}
		}
	}
	return out
}

// observe probes every cell in parallel; a probe that gets no answer
// within a short timeout counts as blocked.
func (pt *policyTable) observe() map[probeKey]bool {
	byKey := map[string]evalPod{}
	for _, p := range pt.pods {
		byKey[p.key()] = p
	}
	nsPath := func(p evalPod) string {
		return lab.NetNSPath(pt.c.layout.PodNS(pt.nodeOf[p.key()], p.Name))
	}
	want := pt.expected()
	out := make(map[probeKey]bool, len(want))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k := range want {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, d := byKey[k.src], byKey[k.dst]
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			target := netip.AddrPortFrom(d.IP, uint16(k.port))
			var seen netip.AddrPort
			var err error
			if k.proto == corev1.ProtocolTCP {
				seen, err = probe.TCP(ctx, nsPath(s), target)
			} else {
				seen, err = probe.UDP(ctx, nsPath(s), target)
			}
			ok := err == nil && seen.Addr() == s.IP
			mu.Lock()
			out[k] = ok
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// converge polls the matrix until it equals the expected one.
func (pt *policyTable) converge(t *testing.T, what string) {
	t.Helper()
	want := pt.expected()
	allowed := 0
	for _, v := range want {
		if v {
			allowed++
		}
	}
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	var diff []string
	for rounds := 1; ; rounds++ {
		got := pt.observe()
		diff = diff[:0]
		for k, w := range want {
			if got[k] != w {
				diff = append(diff, fmt.Sprintf("%v: got allowed=%v, want %v", k, got[k], w))
			}
		}
		if len(diff) == 0 {
			t.Logf("%s: matrix of %d probes (%d allowed) as expected after %s (%d rounds)", what, len(want), allowed, time.Since(start).Round(10*time.Millisecond), rounds)
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(diff)
			pt.c.dumpLogs()
			t.Fatalf("%s: matrix differs in %d of %d probes after %s:\n%s", what, len(diff), len(want), time.Since(start).Round(time.Millisecond), strings.Join(diff, "\n"))
		}
	}
}
