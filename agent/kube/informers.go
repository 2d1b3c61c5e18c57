package kube

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Informers shares one watch per kind between the agent's parts (the DNS
// proxy and the policy enforcer both read Pods, for instance). Each
// accessor sets the kind's strip transform the first time it is called, so
// every consumer sees the same lean objects; call the accessors you need,
// register handlers, then Start.
//
// Informers is not safe for concurrent use before Start: the agent wires
// its parts up from one goroutine.
type Informers struct {
	factory informers.SharedInformerFactory
	made    map[string]cache.SharedIndexInformer
}

// NewInformers makes the shared factory. resync 0 means no periodic
// re-delivery: consumers keep their own state and act on changes.
func NewInformers(client kubernetes.Interface, resync time.Duration) *Informers {
	return &Informers{
		factory: informers.NewSharedInformerFactoryWithOptions(client, resync),
		made:    map[string]cache.SharedIndexInformer{},
	}
}

// Pods watches every Pod in the cluster (a node's policy needs remote pods'
// labels and IPs; DNS needs their addresses).
func (i *Informers) Pods() cache.SharedIndexInformer {
	return i.get("pods", func() cache.SharedIndexInformer { return i.factory.Core().V1().Pods().Informer() }, stripPod)
}

// Namespaces watches Namespaces (labels for namespaceSelector).
func (i *Informers) Namespaces() cache.SharedIndexInformer {
	return i.get("namespaces", func() cache.SharedIndexInformer { return i.factory.Core().V1().Namespaces().Informer() }, stripMeta)
}

// Services watches Services.
func (i *Informers) Services() cache.SharedIndexInformer {
	return i.get("services", func() cache.SharedIndexInformer { return i.factory.Core().V1().Services().Informer() }, stripMeta)
}

// EndpointSlices watches discovery.k8s.io/v1 EndpointSlices.
func (i *Informers) EndpointSlices() cache.SharedIndexInformer {
	return i.get("endpointslices", func() cache.SharedIndexInformer { return i.factory.Discovery().V1().EndpointSlices().Informer() }, stripMeta)
}

// NetworkPolicies watches networking.k8s.io/v1 NetworkPolicies.
func (i *Informers) NetworkPolicies() cache.SharedIndexInformer {
	return i.get("networkpolicies", func() cache.SharedIndexInformer { return i.factory.Networking().V1().NetworkPolicies().Informer() }, stripMeta)
}

func (i *Informers) get(kind string, newInformer func() cache.SharedIndexInformer, strip cache.TransformFunc) cache.SharedIndexInformer {
	if inf, ok := i.made[kind]; ok {
		return inf
	}
	inf := newInformer()
	// SetTransform fails only once the informer runs; Start comes after
	// every accessor, so this cannot fail here.
	_ = inf.SetTransform(strip)
	i.made[kind] = inf
	return inf
}

// Start runs every informer asked for so far until stop is closed.
func (i *Informers) Start(stop <-chan struct{}) { i.factory.Start(stop) }

// stripMeta drops managed fields, the largest part of most objects that
// weft never reads.
func stripMeta(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Namespace:
		o.ManagedFields = nil
	case *corev1.Service:
		o.ManagedFields = nil
	case *discoveryv1.EndpointSlice:
		o.ManagedFields = nil
	case *networkingv1.NetworkPolicy:
		o.ManagedFields = nil
		delete(o.Annotations, corev1.LastAppliedConfigAnnotation)
	}
	return obj, nil
}

// stripPod keeps what DNS and policy read: metadata (labels), node name,
// hostname and subdomain, container ports (named ports) and pod IPs and
// phase. Volumes, env, probes, conditions and container statuses go.
func stripPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	p.ManagedFields = nil
	delete(p.Annotations, corev1.LastAppliedConfigAnnotation)
	lean := corev1.PodSpec{
		NodeName:    p.Spec.NodeName,
		Hostname:    p.Spec.Hostname,
		Subdomain:   p.Spec.Subdomain,
		HostNetwork: p.Spec.HostNetwork,
	}
	for _, c := range p.Spec.Containers {
		lean.Containers = append(lean.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
	}
	for _, c := range p.Spec.InitContainers {
		// Sidecars (restartable init containers) may declare named ports.
		if len(c.Ports) > 0 {
			lean.InitContainers = append(lean.InitContainers, corev1.Container{Name: c.Name, Ports: c.Ports, RestartPolicy: c.RestartPolicy})
		}
	}
	p.Spec = lean
	p.Status = corev1.PodStatus{
		Phase:  p.Status.Phase,
		PodIP:  p.Status.PodIP,
		PodIPs: p.Status.PodIPs,
		HostIP: p.Status.HostIP,
	}
	return p, nil
}
