package policy

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// scaleInput is a large cluster: pods spread over nodes (n0 is this node)
// in namespaces of podsPerNS pods with app=app<k> (k < 10) and
// role=role<k%3>; per namespace, policies select app=app<k> and allow
// ingress from a role in namespaces of a team, on 80 and on the named port
// "web", and every fifth also restricts egress to its team and an ipBlock.
func scaleInput(policies, pods, nodes int) Input {
	const podsPerNS = 50
	in := Input{Node: "n0"}
	namespaces := pods / podsPerNS
	for n := 0; n < namespaces; n++ {
		in.Namespaces = append(in.Namespaces, mkNS(fmt.Sprintf("ns%d", n), map[string]string{"team": fmt.Sprintf("team%d", n%20)}))
	}
	for i := 0; i < pods; i++ {
		ns := fmt.Sprintf("ns%d", i/podsPerNS)
		ip := fmt.Sprintf("10.%d.%d.%d", 64+i/65536, (i/256)%256, i%256)
		in.Pods = append(in.Pods, mkPod(ns, fmt.Sprintf("p%d", i), fmt.Sprintf("n%d", i%nodes), ip,
			map[string]string{"app": fmt.Sprintf("app%d", i%10), "role": fmt.Sprintf("role%d", i%3)},
			corev1.ContainerPort{Name: "web", ContainerPort: int32(8000 + i%4), Protocol: corev1.ProtocolTCP}))
	}
	for i := 0; i < policies; i++ {
		ns := fmt.Sprintf("ns%d", i%namespaces)
		spec := networkingv1.NetworkPolicySpec{
			PodSelector: *sel("app", fmt.Sprintf("app%d", (i/namespaces)%10)),
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From: []networkingv1.NetworkPolicyPeer{
					{NamespaceSelector: sel("team", fmt.Sprintf("team%d", i%20)), PodSelector: sel("role", fmt.Sprintf("role%d", i%3))},
					{PodSelector: sel("role", "role0")},
				},
				Ports: []networkingv1.NetworkPolicyPort{tcp(80), named("web", corev1.ProtocolTCP)},
			}},
		}
		if i%5 == 0 {
			spec.PolicyTypes = both
			spec.Egress = []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", fmt.Sprintf("team%d", i%20))}}},
				{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8"}}}}, Ports: []networkingv1.NetworkPolicyPort{tcp(443), udp(53)}},
			}
		}
		in.Policies = append(in.Policies, np(ns, fmt.Sprintf("pol%d", i), spec))
	}
	return in
}

func TestScaleInputCompiles(t *testing.T) {
	in := scaleInput(100, 500, 5)
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if rs.Pods != 100 || rs.Policies == 0 || len(rs.Problems) > 0 {
		t.Errorf("pods %d policies %d problems %v", rs.Pods, rs.Policies, rs.Problems)
	}
}

// BenchmarkCompile1000Policies5000Pods is the pure compile for one node
// of 50 (100 local pods).
func BenchmarkCompile1000Policies5000Pods(b *testing.B) {
	in := scaleInput(1000, 5000, 50)
	b.ResetTimer()
	var rs Ruleset
	for i := 0; i < b.N; i++ {
		var err error
		if rs, err = Compile(in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rs.Chains)), "chains")
	b.ReportMetric(float64(len(rs.Sets)), "sets")
	b.ReportMetric(float64(rs.Policies), "local-policies")
}

// BenchmarkApply1000Policies5000Pods applies that ruleset to a fresh
// network namespace: a whole-table replace, and (the common case) an
// element update after one pod's label changed; the reference beside them
// is replacing a table holding no policy at all.
func BenchmarkApply1000Policies5000Pods(b *testing.B) {
	conn, _ := testNetns(b)
	in := scaleInput(1000, 5000, 50)
	rs, err := Compile(in)
	if err != nil {
		b.Fatal(err)
	}
	relabel := in
	relabel.Pods = append([]*corev1.Pod(nil), in.Pods...)
	p := relabel.Pods[3].DeepCopy() // a pod on another node: a peer
	p.Labels = map[string]string{"app": "app3", "role": "role1"}
	relabel.Pods[3] = p
	rs2, err := Compile(relabel)
	if err != nil {
		b.Fatal(err)
	}
	if rs.StructureFingerprint() != rs2.StructureFingerprint() {
		b.Fatal("the relabel changed the structure")
	}
	empty, _ := Compile(Input{Node: "n0"})
	a := NewApplier(conn)
	run := func(name string, f func() (Outcome, error), want Outcome) {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				got, err := f()
				if err != nil {
					b.Fatal(err)
				}
				if got != want {
					b.Fatalf("did %s, want %s", got, want)
				}
			}
		})
	}
	run("replace-empty-reference", func() (Outcome, error) { _ = Remove(conn); return a.Apply(empty) }, Replaced)
	run("replace", func() (Outcome, error) { _ = Remove(conn); return a.Apply(rs) }, Replaced)
	flip := false
	run("elements-after-label-change", func() (Outcome, error) {
		flip = !flip
		if flip {
			return a.Apply(rs2)
		}
		return a.Apply(rs)
	}, Elements)
	start := time.Now()
	c, _ := Compile(in)
	b.Logf("compile %s; %d chains, %d sets, %d ingress and %d egress map entries", time.Since(start), len(c.Chains), len(c.Sets), len(c.Ingress), len(c.Egress))
}
