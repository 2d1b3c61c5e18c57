package policy

import (
	"fmt"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Builders for the compiler's tables.

func mkPod(ns, name, node, ip string, lbl map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Ports: ports}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func mkNS(name string, lbl map[string]string) *corev1.Namespace {
	l := map[string]string{corev1.LabelMetadataName: name}
	for k, v := range lbl {
		l[k] = v
	}
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}}
}

func sel(kv ...string) *metav1.LabelSelector {
	s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

func tcp(port int, end ...int32) networkingv1.NetworkPolicyPort {
	p := corev1.ProtocolTCP
	v := intstr.FromInt32(int32(port))
	np := networkingv1.NetworkPolicyPort{Protocol: &p, Port: &v}
	if len(end) > 0 {
		np.EndPort = &end[0]
	}
	return np
}

func udp(port int) networkingv1.NetworkPolicyPort {
	p := corev1.ProtocolUDP
	v := intstr.FromInt32(int32(port))
	return networkingv1.NetworkPolicyPort{Protocol: &p, Port: &v}
}

func named(name string, proto corev1.Protocol) networkingv1.NetworkPolicyPort {
	v := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &v}
}

func np(ns, name string, spec networkingv1.NetworkPolicySpec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

// flow is one packet's first hop of a connection.
type flow struct {
	src, dst string // "ns/name" of a pod, or an IP
	proto    uint8
	port     uint16
}

func (f flow) String() string {
	return fmt.Sprintf("%s -> %s %s/%d", f.src, f.dst, protoNames[f.proto], f.port)
}

// world evaluates flows against the compiled rulesets of every node, the
// way the kernel walks the table: egress on the source's node, then
// ingress on the destination's node.
type world struct {
	t     *testing.T
	in    Input
	nodes map[string]Ruleset
	ips   map[string]netip.Addr
}

func compileAll(t *testing.T, in Input) *world {
	t.Helper()
	w := &world{t: t, in: in, nodes: map[string]Ruleset{}, ips: map[string]netip.Addr{}}
	for _, p := range in.Pods {
		w.ips[p.Namespace+"/"+p.Name] = netip.MustParseAddr(p.Status.PodIP)
		if _, ok := w.nodes[p.Spec.NodeName]; ok {
			continue
		}
		nin := in
		nin.Node = p.Spec.NodeName
		rs, err := Compile(nin)
		if err != nil {
			t.Fatalf("Compile(%s): %v", nin.Node, err)
		}
		w.nodes[nin.Node] = rs
	}
	return w
}

func (w *world) addr(s string) netip.Addr {
	if a, ok := w.ips[s]; ok {
		return a
	}
	return netip.MustParseAddr(s)
}

func (w *world) allowed(f flow) bool {
	src, dst := w.addr(f.src), w.addr(f.dst)
	for _, rs := range w.nodes {
		if ch, ok := lookup(rs, rs.Egress, src); ok && !ch.matches(rs, Egress, dst, f.proto, f.port) {
			return false
		}
	}
	for _, rs := range w.nodes {
		if ch, ok := lookup(rs, rs.Ingress, dst); ok && !ch.matches(rs, Ingress, src, f.proto, f.port) {
			return false
		}
	}
	return true
}

func lookup(rs Ruleset, m []MapEntry, ip netip.Addr) (Chain, bool) {
	for _, e := range m {
		if e.IP == ip {
			for _, c := range rs.Chains {
				if c.Name == e.Chain {
					return c, true
				}
			}
			panic("map entry to a missing chain " + e.Chain)
		}
	}
	return Chain{}, false
}

func (c Chain) matches(rs Ruleset, d Direction, peer netip.Addr, proto uint8, port uint16) bool {
	for _, r := range c.Rules {
		if r.Peers != "" && !setHas(rs, r.Peers, peer) {
			continue
		}
		if r.Proto != 0 && r.Proto != proto {
			continue
		}
		if r.PortFirst != 0 && (port < r.PortFirst || port > r.PortLast) {
			continue
		}
		return true
	}
	return false
}

func setHas(rs Ruleset, name string, ip netip.Addr) bool {
	for _, s := range rs.Sets {
		if s.Name != name {
			continue
		}
		for _, r := range s.Ranges {
			if ip.Compare(r.First) >= 0 && ip.Compare(r.Last) <= 0 {
				return true
			}
		}
		return false
	}
	panic("rule refers to a missing set " + name)
}
