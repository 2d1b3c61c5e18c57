package dnsproxy

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// KubeRecords implements Records from informer events. It keeps its own
// lean copies (what DNS reads of Services, EndpointSlices, Namespaces and
// Pods) with the indexes the cluster zone needs, so a query takes one read
// lock and no API object is held.
type KubeRecords struct {
	// gen counts changes; it is bumped under mu, before the change, so an
	// answer computed after reading it never reflects older data.
	gen atomic.Uint64

	mu         sync.RWMutex                     // guards every field below
	services   map[string]Service               // "ns/name"
	clusterIPs map[netip.Addr][]string          // address → "ns/name" of Services
	slices     map[string]leanSlice             // "ns/slice-name"
	bySvc      map[string]map[string]struct{}   // "ns/service" → slice keys
	epAddrs    map[netip.Addr]map[string]string // address → slice key → hostname
	namespaces map[string]struct{}
	pods       map[string]leanPod            // "ns/name"
	podIPs     map[string]map[netip.Addr]int // ns → address → pods having it
}

// leanSlice is an EndpointSlice's ready endpoints.
type leanSlice struct {
	namespace, service string
	endpoints          []Endpoint
}

type leanPod struct {
	namespace string
	addrs     []netip.Addr
}

var _ Records = (*KubeRecords)(nil)

// Generation is the number of changes so far: answers computed from the
// records stay valid while it is unchanged (the cluster zone's cache keys
// on it).
func (k *KubeRecords) Generation() uint64 { return k.gen.Load() }

// NewKubeRecords makes an empty set; Handlers feed it.
func NewKubeRecords() *KubeRecords {
	return &KubeRecords{
		services:   map[string]Service{},
		clusterIPs: map[netip.Addr][]string{},
		slices:     map[string]leanSlice{},
		bySvc:      map[string]map[string]struct{}{},
		epAddrs:    map[netip.Addr]map[string]string{},
		namespaces: map[string]struct{}{},
		pods:       map[string]leanPod{},
		podIPs:     map[string]map[netip.Addr]int{},
	}
}

// Service implements Records.
func (k *KubeRecords) Service(namespace, name string) (Service, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	s, ok := k.services[namespace+"/"+name]
	return s, ok
}

// Endpoints implements Records.
func (k *KubeRecords) Endpoints(namespace, name string) []Endpoint {
	k.mu.RLock()
	defer k.mu.RUnlock()
	keys := make([]string, 0, len(k.bySvc[namespace+"/"+name]))
	for key := range k.bySvc[namespace+"/"+name] {
		keys = append(keys, key)
	}
	slices.Sort(keys) // a stable order of answers
	var out []Endpoint
	for _, key := range keys {
		out = append(out, k.slices[key].endpoints...)
	}
	return out
}

// Namespace implements Records.
func (k *KubeRecords) Namespace(name string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	_, ok := k.namespaces[name]
	return ok
}

// PodIP implements Records.
func (k *KubeRecords) PodIP(namespace string, a netip.Addr) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.podIPs[namespace][a] > 0
}

// Reverse implements Records: Services by ClusterIP, and endpoints of
// headless Services by address (an endpoint without a hostname by its
// dashed address).
func (k *KubeRecords) Reverse(a netip.Addr) []ReverseTarget {
	k.mu.RLock()
	defer k.mu.RUnlock()
	var out []ReverseTarget
	for _, key := range k.clusterIPs[a] {
		s := k.services[key]
		out = append(out, ReverseTarget{Namespace: s.Namespace, Service: s.Name})
	}
	for sliceKey, host := range k.epAddrs[a] {
		sl := k.slices[sliceKey]
		if s, ok := k.services[sl.namespace+"/"+sl.service]; !ok || !s.Headless {
			continue
		}
		if host == "" {
			host = dashed(a)
		}
		out = append(out, ReverseTarget{Namespace: sl.namespace, Service: sl.service, Hostname: host})
	}
	slices.SortFunc(out, func(x, y ReverseTarget) int {
		return strings.Compare(x.Namespace+"/"+x.Service+"/"+x.Hostname, y.Namespace+"/"+y.Service+"/"+y.Hostname)
	})
	return out
}

// ServiceHandler feeds Services.
func (k *KubeRecords) ServiceHandler() cache.ResourceEventHandler {
	return handler(func(o *corev1.Service) { k.setService(o) }, k.deleteService)
}

// EndpointSliceHandler feeds EndpointSlices.
func (k *KubeRecords) EndpointSliceHandler() cache.ResourceEventHandler {
	return handler(func(o *discoveryv1.EndpointSlice) { k.setSlice(o) }, k.deleteSlice)
}

// NamespaceHandler feeds Namespaces.
func (k *KubeRecords) NamespaceHandler() cache.ResourceEventHandler {
	return handler(func(o *corev1.Namespace) {
		k.mu.Lock()
		k.gen.Add(1)
		k.namespaces[o.Name] = struct{}{}
		k.mu.Unlock()
	}, func(o *corev1.Namespace) {
		k.mu.Lock()
		k.gen.Add(1)
		delete(k.namespaces, o.Name)
		k.mu.Unlock()
	})
}

// PodHandler feeds Pods (for verified pod records).
func (k *KubeRecords) PodHandler() cache.ResourceEventHandler {
	return handler(func(o *corev1.Pod) { k.setPod(o) }, k.deletePod)
}

// handler adapts typed set/delete functions to informer events, unwrapping
// the tombstone of an object deleted while the watch was down.
func handler[T any](set func(T), del func(T)) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if o, ok := obj.(T); ok {
				set(o)
			}
		},
		UpdateFunc: func(_, obj any) {
			if o, ok := obj.(T); ok {
				set(o)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if o, ok := obj.(T); ok {
				del(o)
			}
		},
	}
}

func (k *KubeRecords) setService(o *corev1.Service) {
	s := LeanService(o)
	key := o.Namespace + "/" + o.Name
	k.mu.Lock()
	k.gen.Add(1)
	defer k.mu.Unlock()
	k.unindexServiceLocked(key)
	k.services[key] = s
	for _, a := range s.ClusterIPs {
		k.clusterIPs[a] = append(k.clusterIPs[a], key)
	}
}

func (k *KubeRecords) deleteService(o *corev1.Service) {
	key := o.Namespace + "/" + o.Name
	k.mu.Lock()
	k.gen.Add(1)
	defer k.mu.Unlock()
	k.unindexServiceLocked(key)
	delete(k.services, key)
}

func (k *KubeRecords) unindexServiceLocked(key string) {
	for _, a := range k.services[key].ClusterIPs {
		k.clusterIPs[a] = slices.DeleteFunc(k.clusterIPs[a], func(s string) bool { return s == key })
		if len(k.clusterIPs[a]) == 0 {
			delete(k.clusterIPs, a)
		}
	}
}

func (k *KubeRecords) setSlice(o *discoveryv1.EndpointSlice) {
	key := o.Namespace + "/" + o.Name
	sl, ok := leanSliceOf(o)
	k.mu.Lock()
	k.gen.Add(1)
	defer k.mu.Unlock()
	k.unindexSliceLocked(key)
	if !ok {
		return
	}
	k.slices[key] = sl
	indexAdd(k.bySvc, sl.namespace+"/"+sl.service, key, struct{}{})
	for _, ep := range sl.endpoints {
		for _, a := range ep.Addrs {
			indexAdd(k.epAddrs, a, key, ep.Hostname)
		}
	}
}

func (k *KubeRecords) deleteSlice(o *discoveryv1.EndpointSlice) {
	k.mu.Lock()
	k.gen.Add(1)
	defer k.mu.Unlock()
	k.unindexSliceLocked(o.Namespace + "/" + o.Name)
}

func (k *KubeRecords) unindexSliceLocked(key string) {
	old, ok := k.slices[key]
	if !ok {
		return
	}
	for _, ep := range old.endpoints {
		for _, a := range ep.Addrs {
			indexRemove(k.epAddrs, a, key)
		}
	}
	indexRemove(k.bySvc, old.namespace+"/"+old.service, key)
	delete(k.slices, key)
}

func (k *KubeRecords) setPod(o *corev1.Pod) {
	key := o.Namespace + "/" + o.Name
	var addrs []netip.Addr
	if !o.Spec.HostNetwork {
		for _, ip := range o.Status.PodIPs {
			if a, err := netip.ParseAddr(ip.IP); err == nil {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	k.mu.Lock()
	k.gen.Add(1)
	defer k.mu.Unlock()
	k.deletePodLocked(key)
	if len(addrs) == 0 {
		return
	}
	k.pods[key] = leanPod{namespace: o.Namespace, addrs: addrs}
	if k.podIPs[o.Namespace] == nil {
		k.podIPs[o.Namespace] = map[netip.Addr]int{}
	}
	for _, a := range addrs {
		k.podIPs[o.Namespace][a]++
	}
}

func (k *KubeRecords) deletePod(o *corev1.Pod) {
	k.mu.Lock()
	k.gen.Add(1)
	defer k.mu.Unlock()
	k.deletePodLocked(o.Namespace + "/" + o.Name)
}

func (k *KubeRecords) deletePodLocked(key string) {
	p, ok := k.pods[key]
	if !ok {
		return
	}
	for _, a := range p.addrs {
		if k.podIPs[p.namespace][a]--; k.podIPs[p.namespace][a] <= 0 {
			delete(k.podIPs[p.namespace], a)
		}
	}
	if len(k.podIPs[p.namespace]) == 0 {
		delete(k.podIPs, p.namespace)
	}
	delete(k.pods, key)
}

// LeanService is what DNS reads of a Service.
func LeanService(o *corev1.Service) Service {
	s := Service{Namespace: o.Namespace, Name: o.Name}
	if o.Spec.Type == corev1.ServiceTypeExternalName {
		s.ExternalName = strings.TrimSuffix(strings.ToLower(o.Spec.ExternalName), ".")
		return s
	}
	ips := o.Spec.ClusterIPs
	if len(ips) == 0 && o.Spec.ClusterIP != "" {
		ips = []string{o.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if ip == corev1.ClusterIPNone {
			s.Headless = true
			continue
		}
		if a, err := netip.ParseAddr(ip); err == nil {
			s.ClusterIPs = append(s.ClusterIPs, a.Unmap())
		}
	}
	for _, p := range o.Spec.Ports {
		if p.Name == "" {
			continue
		}
		s.Ports = append(s.Ports, Port{Name: strings.ToLower(p.Name), Protocol: protocol(p.Protocol), Port: uint16(p.Port)})
	}
	return s
}

// leanSliceOf is an EndpointSlice's ready endpoints; false when the slice
// belongs to no Service or holds FQDN addresses.
func leanSliceOf(o *discoveryv1.EndpointSlice) (leanSlice, bool) {
	svc := o.Labels[discoveryv1.LabelServiceName]
	if svc == "" || (o.AddressType != discoveryv1.AddressTypeIPv4 && o.AddressType != discoveryv1.AddressTypeIPv6) {
		return leanSlice{}, false
	}
	sl := leanSlice{namespace: o.Namespace, service: svc}
	ports := slicePorts(o)
	for _, e := range o.Endpoints {
		if e.Conditions.Ready != nil && !*e.Conditions.Ready {
			continue
		}
		ep := Endpoint{Ports: ports}
		if e.Hostname != nil {
			ep.Hostname = strings.ToLower(*e.Hostname)
		}
		for _, s := range e.Addresses {
			if a, err := netip.ParseAddr(s); err == nil {
				ep.Addrs = append(ep.Addrs, a.Unmap())
			}
		}
		if len(ep.Addrs) > 0 {
			sl.endpoints = append(sl.endpoints, ep)
		}
	}
	return sl, true
}

// slicePorts are an EndpointSlice's named ports.
func slicePorts(o *discoveryv1.EndpointSlice) []Port {
	var ports []Port
	for _, p := range o.Ports {
		if p.Name == nil || *p.Name == "" || p.Port == nil {
			continue
		}
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		ports = append(ports, Port{Name: strings.ToLower(*p.Name), Protocol: protocol(proto), Port: uint16(*p.Port)})
	}
	return ports
}

func protocol(p corev1.Protocol) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(string(p))
}
