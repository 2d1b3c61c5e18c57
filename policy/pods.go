package policy

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// pod is what policy reads of a Pod.
type pod struct {
	key       string // ns/name
	namespace string
	labels    labels.Set
	ip        netip.Addr // IPv4; invalid when the pod has none yet
	local     bool
	host      bool // hostNetwork: its address is its node's
	ports     []corev1.ContainerPort
}

// eligible reports whether the pod takes part in pod-network policy: it
// has an IPv4 pod address, is not on the host network, and has not
// terminated (a terminated pod's address may already be someone else's).
func (p *pod) eligible() bool { return p.ip.IsValid() && !p.host }

func newPod(o *corev1.Pod, node string) *pod {
	p := &pod{
		key:       o.Namespace + "/" + o.Name,
		namespace: o.Namespace,
		labels:    labels.Set(o.Labels),
		local:     o.Spec.NodeName == node,
		host:      o.Spec.HostNetwork,
	}
	if o.Status.Phase == corev1.PodSucceeded || o.Status.Phase == corev1.PodFailed {
		return p
	}
	ips := []string{o.Status.PodIP}
	for _, ip := range o.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	for _, s := range ips {
		if a, err := netip.ParseAddr(s); err == nil && a.Unmap().Is4() {
			p.ip = a.Unmap()
			break
		}
	}
	for _, c := range o.Spec.Containers {
		p.ports = append(p.ports, c.Ports...)
	}
	for _, c := range o.Spec.InitContainers {
		// Only sidecars (restartable init containers) serve.
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			p.ports = append(p.ports, c.Ports...)
		}
	}
	return p
}

// namedPort resolves a named port on the pod for protocol proto.
func (p *pod) namedPort(name string, proto corev1.Protocol) (uint16, bool) {
	for _, cp := range p.ports {
		pp := cp.Protocol
		if pp == "" {
			pp = corev1.ProtocolTCP
		}
		if cp.Name == name && pp == proto && cp.ContainerPort > 0 && cp.ContainerPort < 65536 {
			return uint16(cp.ContainerPort), true
		}
	}
	return 0, false
}

// namespaceLabels returns a namespace's labels. A namespace the cache
// does not know yet has the label the API server sets on every namespace.
func namespaceLabels(known map[string]labels.Set, ns string) labels.Set {
	if l, ok := known[ns]; ok {
		return l
	}
	return labels.Set{corev1.LabelMetadataName: ns}
}
