package e2e

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// An evaluator of NetworkPolicy written from the API documentation
// (https://kubernetes.io/docs/concepts/services-networking/network-policies/
// and the networking.k8s.io/v1 reference), independently of weft's
// compiler, so that the end-to-end truth tables check the compiler rather
// than repeat it.

// evalPod is a pod as the evaluator sees it.
type evalPod struct {
	Namespace, Name string
	Labels          map[string]string
	IP              netip.Addr
	Ports           []corev1.ContainerPort
}

func (p evalPod) key() string { return p.Namespace + "/" + p.Name }

// evalWorld is the cluster state a matrix is computed from.
type evalWorld struct {
	policies   []*networkingv1.NetworkPolicy
	namespaces map[string]map[string]string // labels by namespace
}

// allowed: a connection is allowed when the source's egress allows it
// and the destination's ingress allows it ("both the egress policy on
// the source pod and the ingress policy on the destination pod need to
// allow the connection").
func (w evalWorld) allowed(src, dst evalPod, proto corev1.Protocol, port int32) bool {
	return w.direction(src, dst, dst, proto, port, false) && w.direction(dst, src, dst, proto, port, true)
}

// direction checks the policies that select subject for one direction:
// "if no policy selects a pod for a direction, everything is allowed in
// that direction; otherwise only what at least one rule of one selecting
// policy allows" (policies are additive).
func (w evalWorld) direction(subject, peer, dst evalPod, proto corev1.Protocol, port int32, ingress bool) bool {
	isolated := false
	for _, np := range w.policies {
		if np.Namespace != subject.Namespace || !matches(&np.Spec.PodSelector, subject.Labels) {
			continue
		}
		if !hasType(np, ingress) {
			continue
		}
		isolated = true
		if ingress {
			for _, r := range np.Spec.Ingress {
				if w.peersMatch(r.From, peer, np.Namespace) && portsMatch(r.Ports, dst, proto, port) {
					return true
				}
			}
		} else {
			for _, r := range np.Spec.Egress {
				if w.peersMatch(r.To, peer, np.Namespace) && portsMatch(r.Ports, dst, proto, port) {
					return true
				}
			}
		}
	}
	return !isolated
}

// hasType: "If no policyTypes are specified on a NetworkPolicy then by
// default Ingress will always be set and Egress will be set if the
// NetworkPolicy has any egress rules."
func hasType(np *networkingv1.NetworkPolicy, ingress bool) bool {
	want := networkingv1.PolicyTypeEgress
	if ingress {
		want = networkingv1.PolicyTypeIngress
	}
	if len(np.Spec.PolicyTypes) == 0 {
		return ingress || len(np.Spec.Egress) > 0
	}
	return slices.Contains(np.Spec.PolicyTypes, want)
}

// peersMatch: an empty from/to matches everything; otherwise any peer.
// A peer with podSelector alone selects pods in the policy's namespace; with
// namespaceSelector alone all pods in the selected namespaces; with both,
// the selected pods in the selected namespaces; ipBlock the addresses in
// cidr but not in except.
func (w evalWorld) peersMatch(peers []networkingv1.NetworkPolicyPeer, p evalPod, policyNS string) bool {
	if len(peers) == 0 {
		return true
	}
	for _, peer := range peers {
		if peer.IPBlock != nil {
			if inBlock(peer.IPBlock, p.IP) {
				return true
			}
			continue
		}
		nsOK := p.Namespace == policyNS
		if peer.NamespaceSelector != nil {
			nsOK = matches(peer.NamespaceSelector, w.namespaces[p.Namespace])
		}
		podOK := peer.PodSelector == nil || matches(peer.PodSelector, p.Labels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}

func inBlock(b *networkingv1.IPBlock, ip netip.Addr) bool {
	if !netip.MustParsePrefix(b.CIDR).Contains(ip) {
		return false
	}
	for _, e := range b.Except {
		if netip.MustParsePrefix(e).Contains(ip) {
			return false
		}
	}
	return true
}

// portsMatch: an empty ports list matches every port; a port entry's
// protocol defaults to TCP; no port means every port of that protocol; a
// named port is looked up on the destination pod; endPort makes a range.
func portsMatch(ports []networkingv1.NetworkPolicyPort, dst evalPod, proto corev1.Protocol, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, pp := range ports {
		want := corev1.ProtocolTCP
		if pp.Protocol != nil {
			want = *pp.Protocol
		}
		if want != proto {
			continue
		}
		if pp.Port == nil {
			return true
		}
		if pp.Port.StrVal != "" {
			for _, cp := range dst.Ports {
				if cp.Name == pp.Port.StrVal && cp.Protocol == proto && cp.ContainerPort == port {
					return true
				}
			}
			continue
		}
		end := pp.Port.IntVal
		if pp.EndPort != nil {
			end = *pp.EndPort
		}
		if port >= pp.Port.IntVal && port <= end {
			return true
		}
	}
	return false
}

// matches evaluates a label selector: every matchLabels pair and every
// matchExpressions requirement must hold; an empty selector matches all.
func matches(s *metav1.LabelSelector, labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		v, ok := labels[r.Key]
		switch r.Operator {
		case metav1.LabelSelectorOpIn:
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case metav1.LabelSelectorOpNotIn:
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case metav1.LabelSelectorOpExists:
			if !ok {
				return false
			}
		case metav1.LabelSelectorOpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}
