package policy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	tcpP  = 6
	udpP  = 17
	sctpP = 132
)

// cluster is three namespaces x, y, z (labels team=<name>) with pods a, b,
// c each (label pod=<name>) spread over nodes n1 and n2; every pod declares
// the named ports "serve" (80/TCP) and "serve-udp" (80/UDP), except x/c
// which serves both on 81. Pods alternate nodes: n1 has x/a, x/c, y/b, z/a,
// z/c (10.244.1.x), n2 the others (10.244.2.x).
func cluster() Input {
	in := Input{Namespaces: []*corev1.Namespace{
		mkNS("x", map[string]string{"team": "x"}),
		mkNS("y", map[string]string{"team": "y", "env": "prod"}),
		mkNS("z", map[string]string{"team": "z"}),
	}}
	ip := 1
	for _, ns := range []string{"x", "y", "z"} {
		for _, name := range []string{"a", "b", "c"} {
			node := "n1"
			if ip%2 == 0 {
				node = "n2"
			}
			port := int32(80)
			if ns == "x" && name == "c" {
				port = 81
			}
			addr := "10.244.1." + string(rune('0'+ip))
			if node == "n2" {
				addr = "10.244.2." + string(rune('0'+ip))
			}
			in.Pods = append(in.Pods, mkPod(ns, name, node, addr, map[string]string{"pod": name},
				corev1.ContainerPort{Name: "serve", ContainerPort: port, Protocol: corev1.ProtocolTCP},
				corev1.ContainerPort{Name: "serve-udp", ContainerPort: port, Protocol: corev1.ProtocolUDP}))
			ip++
		}
	}
	return in
}

var (
	ingressOnly = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	egressOnly  = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	both        = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	all         = metav1.LabelSelector{}
)

func TestCompileSemantics(t *testing.T) {
	podA := *sel("pod", "a")
	tests := []struct {
		name     string
		policies []*networkingv1.NetworkPolicy
		allow    []flow
		deny     []flow
	}{
		{
			name:  "no policy: everything passes",
			allow: []flow{{"x/a", "y/b", tcpP, 80}, {"z/c", "x/a", udpP, 81}, {"x/a", "8.8.8.8", udpP, 53}},
		},
		{
			name:     "deny-all ingress isolates the namespace's pods for ingress only",
			policies: []*networkingv1.NetworkPolicy{np("x", "deny", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly})},
			allow:    []flow{{"x/a", "y/a", tcpP, 80}, {"y/a", "z/a", tcpP, 80}},
			deny:     []flow{{"y/a", "x/a", tcpP, 80}, {"x/b", "x/a", udpP, 81}, {"1.2.3.4", "x/c", tcpP, 80}},
		},
		{
			name:     "policyTypes omitted and no egress rules: ingress only",
			policies: []*networkingv1.NetworkPolicy{np("x", "deny", networkingv1.NetworkPolicySpec{PodSelector: all})},
			allow:    []flow{{"x/a", "y/a", tcpP, 80}},
			deny:     []flow{{"y/a", "x/a", tcpP, 80}},
		},
		{
			name:     "deny-all egress",
			policies: []*networkingv1.NetworkPolicy{np("x", "deny", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: egressOnly})},
			allow:    []flow{{"y/a", "x/a", tcpP, 80}},
			deny:     []flow{{"x/a", "y/a", tcpP, 80}, {"x/a", "x/b", udpP, 80}, {"x/b", "8.8.8.8", udpP, 53}},
		},
		{
			name: "policyTypes omitted with egress rules: egress isolated too",
			policies: []*networkingv1.NetworkPolicy{np("x", "eg", networkingv1.NetworkPolicySpec{PodSelector: podA,
				Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("pod", "b")}}}}})},
			allow: []flow{{"x/a", "x/b", tcpP, 80}},
			deny:  []flow{{"x/a", "x/c", tcpP, 80}, {"x/b", "x/a", tcpP, 80}},
		},
		{
			name: "allow from a pod selector (same namespace only)",
			policies: []*networkingv1.NetworkPolicy{np("x", "from-b", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("pod", "b")}}}}})},
			allow: []flow{{"x/b", "x/a", tcpP, 80}, {"x/b", "x/a", udpP, 81}, {"y/a", "x/b", tcpP, 80}},
			deny:  []flow{{"x/c", "x/a", tcpP, 80}, {"y/b", "x/a", tcpP, 80}},
		},
		{
			name: "allow from a namespace selector",
			policies: []*networkingv1.NetworkPolicy{np("x", "from-y", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "y")}}}}})},
			allow: []flow{{"y/a", "x/a", tcpP, 80}, {"y/c", "x/a", tcpP, 81}},
			deny:  []flow{{"x/b", "x/a", tcpP, 80}, {"z/b", "x/a", tcpP, 80}},
		},
		{
			name: "pod AND namespace selector in one peer",
			policies: []*networkingv1.NetworkPolicy{np("x", "and", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "y"), PodSelector: sel("pod", "b")}}}}})},
			allow: []flow{{"y/b", "x/a", tcpP, 80}},
			deny:  []flow{{"y/c", "x/a", tcpP, 80}, {"x/b", "x/a", tcpP, 80}, {"z/b", "x/a", tcpP, 80}},
		},
		{
			name: "pod OR namespace selector in two peers",
			policies: []*networkingv1.NetworkPolicy{np("x", "or", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "y")}, {PodSelector: sel("pod", "b")}}}}})},
			allow: []flow{{"y/b", "x/a", tcpP, 80}, {"y/c", "x/a", tcpP, 80}, {"x/b", "x/a", tcpP, 80}},
			deny:  []flow{{"x/c", "x/a", tcpP, 80}, {"z/b", "x/a", tcpP, 80}},
		},
		{
			name: "empty namespaceSelector selects every namespace",
			policies: []*networkingv1.NetworkPolicy{np("x", "any-ns", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: sel("pod", "c")}}}}})},
			allow: []flow{{"y/c", "x/a", tcpP, 80}, {"z/c", "x/a", tcpP, 80}, {"x/c", "x/a", tcpP, 80}},
			deny:  []flow{{"y/b", "x/a", tcpP, 80}, {"1.2.3.4", "x/a", tcpP, 80}},
		},
		{
			name: "matchExpressions In, NotIn, Exists, DoesNotExist",
			policies: []*networkingv1.NetworkPolicy{np("x", "expr", networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pod", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}},
				PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
					{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpExists}}},
						PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "pod", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"a"}}}}},
					{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpDoesNotExist}, {Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"z"}}}},
						PodSelector: sel("pod", "a")},
				}}}})},
			allow: []flow{{"y/b", "x/a", tcpP, 80}, {"y/c", "x/b", tcpP, 80}, {"z/a", "x/a", tcpP, 80}, {"y/a", "x/c", tcpP, 80}},
			deny:  []flow{{"y/a", "x/a", tcpP, 80}, {"z/b", "x/b", tcpP, 80}, {"x/c", "x/a", tcpP, 80}},
		},
		{
			name: "ports by number: TCP 80 only",
			policies: []*networkingv1.NetworkPolicy{np("x", "p80", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{tcp(80)}}}})},
			allow: []flow{{"y/b", "x/a", tcpP, 80}, {"1.2.3.4", "x/a", tcpP, 80}},
			deny:  []flow{{"y/b", "x/a", tcpP, 81}, {"y/b", "x/a", udpP, 80}, {"y/b", "x/a", sctpP, 80}},
		},
		{
			name: "a UDP-only policy does not open TCP",
			policies: []*networkingv1.NetworkPolicy{np("x", "udp", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{udp(80), udp(81)}}}})},
			allow: []flow{{"y/b", "x/a", udpP, 80}, {"y/b", "x/c", udpP, 81}},
			deny:  []flow{{"y/b", "x/a", tcpP, 80}, {"y/b", "x/c", tcpP, 81}},
		},
		{
			name: "protocol without port: every port of it",
			policies: []*networkingv1.NetworkPolicy{np("x", "sctp", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{{Protocol: ptr(corev1.ProtocolSCTP)}}}}})},
			allow: []flow{{"y/b", "x/a", sctpP, 9}, {"y/b", "x/a", sctpP, 80}},
			deny:  []flow{{"y/b", "x/a", tcpP, 9}},
		},
		{
			name: "endPort range",
			policies: []*networkingv1.NetworkPolicy{np("x", "range", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{tcp(80, 81)}}}})},
			allow: []flow{{"y/b", "x/a", tcpP, 80}, {"y/b", "x/a", tcpP, 81}},
			deny:  []flow{{"y/b", "x/a", tcpP, 79}, {"y/b", "x/a", tcpP, 82}, {"y/b", "x/a", udpP, 80}},
		},
		{
			name: "named port resolves on each destination pod (ingress)",
			policies: []*networkingv1.NetworkPolicy{np("x", "named", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{Ports: []networkingv1.NetworkPolicyPort{named("serve", corev1.ProtocolTCP)}}}})},
			allow: []flow{{"y/b", "x/a", tcpP, 80}, {"y/b", "x/c", tcpP, 81}},
			deny:  []flow{{"y/b", "x/a", tcpP, 81}, {"y/b", "x/c", tcpP, 80}, {"y/b", "x/a", udpP, 80}},
		},
		{
			name: "named port resolves on each destination pod (egress)",
			policies: []*networkingv1.NetworkPolicy{np("y", "named", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: egressOnly,
				Egress: []networkingv1.NetworkPolicyEgressRule{{
					To:    []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "x")}},
					Ports: []networkingv1.NetworkPolicyPort{named("serve-udp", corev1.ProtocolUDP)}}}})},
			allow: []flow{{"y/a", "x/a", udpP, 80}, {"y/a", "x/c", udpP, 81}},
			deny:  []flow{{"y/a", "x/a", udpP, 81}, {"y/a", "x/c", udpP, 80}, {"y/a", "x/a", tcpP, 80}, {"y/a", "z/a", udpP, 80}},
		},
		{
			name: "ipBlock with except",
			policies: []*networkingv1.NetworkPolicy{np("x", "block", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
				Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
					CIDR: "10.244.0.0/16", Except: []string{"10.244.2.0/24"}}}}}}})},
			allow: []flow{{"y/b", "x/a", tcpP, 80}, {"10.244.9.9", "x/b", tcpP, 80}},
			deny:  []flow{{"y/a", "x/a", tcpP, 80}, {"1.2.3.4", "x/a", tcpP, 80}},
		},
		{
			name: "egress ipBlock 0.0.0.0/0 except the cluster",
			policies: []*networkingv1.NetworkPolicy{np("x", "world", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: egressOnly,
				Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
					CIDR: "0.0.0.0/0", Except: []string{"10.244.0.0/16"}}}}}}})},
			allow: []flow{{"x/a", "8.8.8.8", udpP, 53}, {"x/a", "255.255.255.254", tcpP, 1}},
			deny:  []flow{{"x/a", "y/a", tcpP, 80}},
		},
		{
			name: "egress deny overrides an ingress allow",
			policies: []*networkingv1.NetworkPolicy{
				np("x", "deny-egress", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: egressOnly}),
				np("y", "allow-all", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
					Ingress: []networkingv1.NetworkPolicyIngressRule{{}}}),
			},
			allow: []flow{{"z/a", "y/a", tcpP, 80}},
			deny:  []flow{{"x/a", "y/a", tcpP, 80}, {"x/b", "y/b", udpP, 81}},
		},
		{
			name: "policies add up; policyTypes Egress ignores ingress rules",
			policies: []*networkingv1.NetworkPolicy{
				np("x", "from-b", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingressOnly,
					Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("pod", "b")}}}}}),
				np("x", "from-z", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: ingressOnly,
					Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "z")}}}}}),
				np("x", "egress-only", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "c"), PolicyTypes: egressOnly,
					Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("pod", "none")}}}},
					Egress:  []networkingv1.NetworkPolicyEgressRule{{}}}),
			},
			allow: []flow{{"x/b", "x/a", tcpP, 80}, {"z/c", "x/a", tcpP, 80}, {"y/a", "x/c", tcpP, 80}, {"x/c", "1.2.3.4", tcpP, 80}},
			deny:  []flow{{"y/a", "x/a", tcpP, 80}},
		},
		{
			name: "an empty ingress rule allows everything to the selected pods",
			policies: []*networkingv1.NetworkPolicy{
				np("x", "deny", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: both}),
				np("x", "open-a", networkingv1.NetworkPolicySpec{PodSelector: podA, PolicyTypes: both,
					Ingress: []networkingv1.NetworkPolicyIngressRule{{}}, Egress: []networkingv1.NetworkPolicyEgressRule{{}}}),
			},
			allow: []flow{{"y/a", "x/a", tcpP, 80}, {"x/a", "y/a", tcpP, 80}},
			deny:  []flow{{"y/a", "x/b", tcpP, 80}, {"x/b", "x/a", tcpP, 80}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := cluster()
			in.Policies = tt.policies
			w := compileAll(t, in)
			for _, f := range tt.allow {
				if !w.allowed(f) {
					t.Errorf("%v: denied, want allowed", f)
				}
			}
			for _, f := range tt.deny {
				if w.allowed(f) {
					t.Errorf("%v: allowed, want denied", f)
				}
			}
			for node, rs := range w.nodes {
				if len(rs.Problems) > 0 {
					t.Errorf("%s: unexpected problems %q", node, rs.Problems)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestCompileCountsAndSharing(t *testing.T) {
	in := cluster()
	in.Node = "n1"
	in.Policies = []*networkingv1.NetworkPolicy{
		np("x", "deny", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly}),
		np("y", "from-x", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "x")}}}}}),
		np("z", "nothing-here", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "nope")}),
	}
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	// n1 has pods x/a x/c y/b z/a z/c (odd positions).
	if rs.Policies != 2 || rs.AllPolicies != 3 || rs.Pods != 3 {
		t.Errorf("policies %d/%d pods %d, want 2/3 and 3", rs.Policies, rs.AllPolicies, rs.Pods)
	}
	if len(rs.Chains) != 2 || len(rs.Ingress) != 3 || len(rs.Egress) != 0 {
		t.Errorf("chains %d ingress entries %d egress %d, want x's two pods sharing one chain", len(rs.Chains), len(rs.Ingress), len(rs.Egress))
	}
	if len(rs.Sets) != 1 || len(rs.Sets[0].Ranges) != 3 {
		t.Errorf("sets %+v, want one with x's three pods", rs.Sets)
	}
}

func TestLabelChangeOnlyChangesElements(t *testing.T) {
	in := cluster()
	in.Node = "n1"
	in.Policies = []*networkingv1.NetworkPolicy{
		np("x", "from-web", networkingv1.NetworkPolicySpec{PodSelector: *sel("pod", "a"), PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &all, PodSelector: sel("role", "web")}}}}}),
	}
	before, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	in.Pods[4].Labels = map[string]string{"pod": "b", "role": "web"} // y/b becomes a peer
	after, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if before.StructureFingerprint() != after.StructureFingerprint() {
		t.Error("a peer's label change changed the chains")
	}
	if before.ElementsFingerprint() == after.ElementsFingerprint() {
		t.Error("a peer's label change did not change the set elements")
	}
	if len(after.Sets) != 1 || len(after.Sets[0].Ranges) != 1 || after.Sets[0].Ranges[0].First.String() != "10.244.1.5" {
		t.Errorf("peer set after = %+v, want y/b's address", after.Sets)
	}
	// A second selected target with the same rules joins the map, not a new chain.
	in.Pods[2].Labels["pod"] = "a" // x/c on n1
	again, _ := Compile(in)
	if again.StructureFingerprint() != after.StructureFingerprint() {
		t.Error("a second target with the same rules changed the chains")
	}
	if len(again.Ingress) != 2 {
		t.Errorf("ingress map %+v, want x/a and x/c", again.Ingress)
	}
}

func TestCompileProblems(t *testing.T) {
	in := cluster()
	in.Node = "n1"
	host := mkPod("x", "host", "n1", "192.168.77.11", map[string]string{"pod": "host"})
	host.Spec.HostNetwork = true
	in.Pods = append(in.Pods, host)
	bogus := corev1.Protocol("ICMP")
	in.Policies = []*networkingv1.NetworkPolicy{
		np("x", "all", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "fd00::/64"}}}},
				{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &bogus}}},
				{From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Near"}}}}}},
			}}),
	}
	in.Policies = append(in.Policies, np("y", "from-host", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &all, PodSelector: sel("pod", "host")}}}}}))
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pod x/host is on the host network", "is IPv6", `protocol "ICMP"`, "spec.ingress[2]: from[0]: podSelector",
		"y/from-host: spec.ingress[0].from[0] selects host-network pod x/host"}
	got := strings.Join(rs.Problems, "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("problems do not mention %q:\n%s", w, got)
		}
	}
	// The bad rules allow nothing: the pods stay isolated.
	in2 := in
	w := compileAll(t, in2)
	if w.allowed(flow{"y/a", "x/a", tcpP, 80}) {
		t.Error("a rule weft could not compile opened the pod")
	}

	in.Policies = append(in.Policies, np("x", "broken", networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Near"}}}}))
	if _, err := Compile(in); err == nil || !strings.Contains(err.Error(), "x/broken: spec.podSelector") {
		t.Errorf("Compile with an unparseable podSelector: %v, want an error naming x/broken spec.podSelector", err)
	}
}

func TestCompileSkipsPodsWithoutAddresses(t *testing.T) {
	in := cluster()
	in.Node = "n1"
	done := mkPod("x", "done", "n1", "10.244.1.99", map[string]string{"pod": "a"})
	done.Status.Phase = corev1.PodSucceeded
	pending := mkPod("x", "pending", "n1", "", map[string]string{"pod": "a"})
	pending.Status.PodIPs = nil
	in.Pods = append(in.Pods, done, pending)
	in.Policies = []*networkingv1.NetworkPolicy{
		np("x", "from-a", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("pod", "a")}}}}}),
	}
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Ingress) != 2 {
		t.Errorf("ingress map %+v, want only x/a and x/c", rs.Ingress)
	}
	if len(rs.Sets) != 1 || len(rs.Sets[0].Ranges) != 1 {
		t.Errorf("peer set %+v, want only x/a (not the finished pod's address)", rs.Sets)
	}
}

func TestShow(t *testing.T) {
	in := cluster()
	in.Node = "n1"
	in.Policies = []*networkingv1.NetworkPolicy{np("x", "web", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{
			From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: sel("team", "y")}},
			Ports: []networkingv1.NetworkPolicyPort{tcp(80, 90)}}}})}
	rs, err := Compile(in)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	Show(&b, rs)
	for _, want := range []string{
		"# 1 policies select 2 pods on this node",
		"table ip weft-policy {",
		"elements = { 10.244.1.5, 10.244.2.4, 10.244.2.6 }",
		"10.244.1.1 : jump in-",
		"# x/a",
		"set ingress-drops {",
		"meta l4proto tcp th dport 80-90 accept\t# x/web ingress[0]",
		"ip daddr @ingress-drops counter name",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("Show lacks %q:\n%s", want, b.String())
		}
	}
}

// A namespace's kubernetes.io/metadata.name label is assumed when the
// object lacks it (older API servers) or is not in the cache yet.
func TestNamespaceNameLabel(t *testing.T) {
	in := cluster()
	in.Namespaces = []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "y"}}} // no labels; x and z not cached
	in.Policies = []*networkingv1.NetworkPolicy{np("x", "from-y-z", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
			{NamespaceSelector: sel(corev1.LabelMetadataName, "y")},
			{NamespaceSelector: sel(corev1.LabelMetadataName, "z")},
		}}}})}
	w := compileAll(t, in)
	for _, f := range []flow{{"y/a", "x/a", tcpP, 80}, {"z/b", "x/c", tcpP, 80}} {
		if !w.allowed(f) {
			t.Errorf("%v denied", f)
		}
	}
	if w.allowed(flow{"x/b", "x/a", tcpP, 80}) {
		t.Error("x/b allowed by a selector on the names y and z")
	}
}
