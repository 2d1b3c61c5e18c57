// Package kube is the agent's view of Kubernetes: a lean cache of Node
// objects fed by a client-go informer, and the few writes the agent makes to
// its own Node (annotations and the NetworkUnavailable condition).
//
// The data plane never depends on the API server: gossip drives peers and
// routes. Kubernetes adds the node's podCIDR (used as a static lease), seeds
// for gossip, and removal of peers whose Node object was deleted. When the
// API server goes away, the cache keeps its last state and the informer
// retries in the background.
package kube

import (
	"log/slog"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// Annotations the agent records on its own Node.
const (
	AnnotationPublicKey = "weft.dev/public-key"
	AnnotationEndpoint  = "weft.dev/endpoint"
	AnnotationPodCIDR   = "weft.dev/pod-cidr"
	annotationPrefix    = "weft.dev/"
)

// Node is the part of a Node object weft uses. Every node watches every
// Node, so the cache keeps only this.
type Node struct {
	Name string
	// InternalIP is the first IPv4 InternalIP; invalid when the Node has none.
	InternalIP netip.Addr
	// PodCIDR is the node's IPv4 pod CIDR from spec.podCIDR(s); invalid
	// when unset or unusable.
	PodCIDR netip.Prefix
	// Annotations holds only weft.dev/* annotations.
	Annotations map[string]string
	// NetworkAvailable is true when the NetworkUnavailable condition is False.
	NetworkAvailable bool
	// PeeringGateway is true when the Node is labelled
	// LabelPeeringGateway=true: it may be its cluster's peering gateway.
	PeeringGateway bool
}

// LabelPeeringGateway marks a Node gateway-eligible for multi-cluster
// peering (value "true").
const LabelPeeringGateway = "weft.dev/peering-gateway"

// fromObject converts a Node object, logging (never failing on) odd fields:
// a Node without addresses, a malformed or IPv6-only podCIDR.
func fromObject(o *corev1.Node, log *slog.Logger) Node {
	n := Node{Name: o.Name}
	for _, a := range o.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			log.Warn("node has a malformed InternalIP; ignoring it", "node", o.Name, "address", a.Address)
			continue
		}
		if ip.Is4() && !n.InternalIP.IsValid() {
			n.InternalIP = ip
		}
	}
	cidrs := o.Spec.PodCIDRs
	if len(cidrs) == 0 && o.Spec.PodCIDR != "" {
		cidrs = []string{o.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			log.Warn("node has a malformed podCIDR; ignoring it", "node", o.Name, "podCIDR", c)
			continue
		}
		if !p.Addr().Is4() {
			log.Info("node has an IPv6 podCIDR and IPv6 is off; ignoring it", "node", o.Name, "podCIDR", c)
			continue
		}
		if !n.PodCIDR.IsValid() {
			n.PodCIDR = p.Masked()
		}
	}
	for k, v := range o.Annotations {
		if len(k) > len(annotationPrefix) && k[:len(annotationPrefix)] == annotationPrefix {
			if n.Annotations == nil {
				n.Annotations = map[string]string{}
			}
			n.Annotations[k] = v
		}
	}
	n.PeeringGateway = o.Labels[LabelPeeringGateway] == "true"
	for _, c := range o.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable {
			n.NetworkAvailable = c.Status == corev1.ConditionFalse
		}
	}
	return n
}

func sortNodes(ns []Node) {
	sort.Slice(ns, func(i, j int) bool { return ns[i].Name < ns[j].Name })
}
