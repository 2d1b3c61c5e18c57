package serviceproxy

// Clusterset IPs (docs/peering.md, "Cross-cluster service discovery").
// A Service exported by clusters of the clusterset gets one clusterset IP
// in every importing cluster (the active gateway allocates it; the agent
// hands the table to SetClustersetIPs). The proxy serves that address in
// the same table as ClusterIPs: PlanClusterset makes it a Service of its
// own, named "<name>.clusterset.local" in the Service's namespace (no real
// Service name has a dot), whose endpoints are
//
//   - this cluster's endpoints of the Service, when this cluster exports
//     it, at the ports its own EndpointSlices say; and
//   - each peer's ClusterIPs, from the derived EndpointSlices that import
//     the peer's export, at the peer's Service ports. The peers' service
//     networks are routed through the gateway, where the peer's own proxy
//     translates them again to its endpoints. Each is weighed by the
//     peer's ready endpoints, so that connections spread over every
//     cluster's endpoints alike.

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/clusterset"
)

// clustersetSuffix names a clusterset IP's Service in the table.
const clustersetSuffix = ".clusterset.local"

// ClustersetKey is the plan key of Service namespace/name's clusterset IP.
func ClustersetKey(namespace, name string) string {
	return namespace + "/" + name + clustersetSuffix
}

// splitClustersetKey returns "ns/name" of a clusterset plan key.
func splitClustersetKey(key string) (string, bool) {
	return strings.CutSuffix(key, clustersetSuffix)
}

// maxWeight bounds how many times one peer's ClusterIP is listed in a
// spread, whatever the peer claims.
const maxWeight = 1000

// ImportSlice is what the proxy reads of a derived EndpointSlice that
// imports a peer's ClusterSetIP export: the peer's ClusterIPs at its
// Service's ports.
type ImportSlice struct {
	Namespace, Name string
	Service         string // multicluster.kubernetes.io/service-name
	Cluster         string // multicluster.kubernetes.io/source-cluster
	Ports           []SlicePort
	Endpoints       []Endpoint
	// Weight is the peer's ready endpoints behind these ClusterIPs, at
	// least 1 and at most maxWeight.
	Weight int
}

// ImportSliceFromAPI makes the lean copy of a derived slice; ok is false
// for any other slice (not managed by the importer, headless, IPv6).
func ImportSliceFromAPI(o *discoveryv1.EndpointSlice) (ImportSlice, bool) {
	if o.Labels[discoveryv1.LabelManagedBy] != clusterset.ManagedBy || o.Labels[discoveryv1.LabelServiceName] != "" ||
		o.Annotations[clusterset.AnnotationType] != string(clusterset.ClusterSetIP) || o.AddressType != discoveryv1.AddressTypeIPv4 {
		return ImportSlice{}, false
	}
	svc, cluster := o.Labels[clusterset.LabelServiceName], o.Labels[clusterset.LabelSourceCluster]
	if svc == "" || cluster == "" {
		return ImportSlice{}, false
	}
	// The same reading as any slice, under the Service's name.
	c := *o
	c.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
	lean, ok := SliceFromAPI(&c)
	if !ok {
		return ImportSlice{}, false
	}
	for i := range lean.Endpoints {
		lean.Endpoints[i].Node = "" // never this node's
	}
	w, err := strconv.Atoi(o.Annotations[clusterset.AnnotationReadyEndpoints])
	if err != nil || w < 1 {
		w = 1
	}
	return ImportSlice{Namespace: o.Namespace, Name: o.Name, Service: svc, Cluster: cluster,
		Ports: lean.Ports, Endpoints: lean.Endpoints, Weight: min(w, maxWeight)}, true
}

// ClustersetService is what PlanClusterset reads of one clusterset
// Service.
type ClustersetService struct {
	Namespace, Name string
	IP              netip.Addr
	// Local is this cluster's Service when this cluster exports it (nil
	// otherwise), with its EndpointSlices.
	Local       *Service
	LocalSlices []Slice
	// Imports are the peers' derived slices of it.
	Imports []ImportSlice
}

// PlanClusterset plans one clusterset IP. Its ports are this cluster's
// Service ports, then those of the peers (by cluster id) that add a name
// and protocol not yet there; a port whose protocol and number another
// already has is left out. Session affinity and traffic policies are not
// carried over: the address is the clusterset's, not one cluster's. It is
// pure.
func PlanClusterset(ctx Context, cs ClustersetService) *ServicePlan {
	s := Service{Namespace: cs.Namespace, Name: cs.Name + clustersetSuffix, ClusterIPs: []netip.Addr{cs.IP}}
	type nameProto struct {
		name  string
		proto Protocol
	}
	have := map[nameProto]bool{}
	taken := map[ipKey]bool{}
	add := func(p ServicePort) {
		k, n := nameProto{p.Name, p.Protocol}, ipKey{proto: p.Protocol, port: p.Port}
		if have[k] || taken[n] {
			return
		}
		have[k], taken[n] = true, true
		s.Ports = append(s.Ports, ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port})
	}
	var sl []Slice
	if cs.Local != nil {
		for _, p := range cs.Local.Ports {
			add(p)
		}
		sl = append(sl, cs.LocalSlices...)
	}
	imports := slices.Clone(cs.Imports)
	slices.SortFunc(imports, func(a, b ImportSlice) int {
		return cmp.Or(cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Name, b.Name))
	})
	for _, im := range imports {
		for _, p := range im.Ports {
			add(ServicePort{Name: p.Name, Protocol: p.Protocol, Port: p.Port})
		}
		sl = append(sl, Slice{Namespace: im.Namespace, Name: im.Name, Service: s.Name, Ports: im.Ports, Endpoints: im.Endpoints})
		if im.Weight > 1 {
			if s.Weights == nil {
				s.Weights = map[netip.Addr]int{}
			}
			for _, e := range im.Endpoints {
				s.Weights[e.Addr] = im.Weight
			}
		}
	}
	return PlanService(ctx, s, sl)
}

// clustersetState is what the controller holds for clusterset IPs,
// guarded by Controller.mu.
type clustersetState struct {
	ips       map[string]netip.Addr             // "ns/name" → its clusterset IP
	annotated map[string]bool                   // "ns/name" exported by annotation
	crs       map[string]bool                   // "ns/name" of ServiceExports
	imports   map[string]map[string]ImportSlice // "ns/name" → slice name → slice
	owner     map[string]string                 // "ns/slice name" → "ns/name"
}

func newClustersetState() clustersetState {
	return clustersetState{
		ips:       map[string]netip.Addr{},
		annotated: map[string]bool{},
		crs:       map[string]bool{},
		imports:   map[string]map[string]ImportSlice{},
		owner:     map[string]string{},
	}
}

// splitKey splits "ns/name".
func splitKey(key string) (string, string) {
	ns, name, _ := strings.Cut(key, "/")
	return ns, name
}

// SetClustersetIPs replaces the table of clusterset IPs ("ns/name" →
// address). The proxy serves an address while its Service is exported
// here or imported from a peer.
func (c *Controller) SetClustersetIPs(ips map[string]netip.Addr) {
	c.mu.Lock()
	changed := false
	for k, a := range c.cs.ips {
		if ips[k] != a {
			c.markLocked(ClustersetKey(splitKey(k)))
			changed = true
		}
	}
	for k, a := range ips {
		if c.cs.ips[k] != a {
			c.markLocked(ClustersetKey(splitKey(k)))
			changed = true
		}
	}
	c.cs.ips = make(map[string]netip.Addr, len(ips))
	for k, a := range ips {
		c.cs.ips[k] = a
	}
	c.mu.Unlock()
	if changed {
		c.kickLoop()
	}
}

// ServiceExportHandler feeds ServiceExports (their metadata): a Service
// with one is exported, and its endpoints join its clusterset IP.
func (c *Controller) ServiceExportHandler() cache.ResourceEventHandler {
	set := func(obj any, on bool) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		o, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		c.mu.Lock()
		changed := c.setExportedLocked(c.cs.crs, o.GetNamespace()+"/"+o.GetName(), on)
		c.mu.Unlock()
		if changed {
			c.kickLoop()
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { set(obj, true) },
		UpdateFunc: func(_, obj any) { set(obj, true) },
		DeleteFunc: func(obj any) { set(obj, false) },
	}
}

// setExportedLocked records whether Service key is exported (in set) and
// reports a change, marking its clusterset IP dirty.
func (c *Controller) setExportedLocked(set map[string]bool, key string, on bool) bool {
	if set[key] == on {
		return false
	}
	if on {
		set[key] = true
	} else {
		delete(set, key)
	}
	c.markLocked(ClustersetKey(splitKey(key)))
	return true
}

// setImportLocked stores es if it is a derived slice of a ClusterSetIP
// import, forgetting what it was before.
func (c *Controller) setImportLocked(es *discoveryv1.EndpointSlice) {
	c.dropImportLocked(es.Namespace, es.Name)
	im, ok := ImportSliceFromAPI(es)
	if !ok {
		return
	}
	key := im.Namespace + "/" + im.Service
	if c.cs.imports[key] == nil {
		c.cs.imports[key] = map[string]ImportSlice{}
	}
	c.cs.imports[key][im.Name] = im
	c.cs.owner[im.Namespace+"/"+im.Name] = key
	c.markLocked(ClustersetKey(im.Namespace, im.Service))
}

func (c *Controller) dropImportLocked(ns, name string) {
	key, ok := c.cs.owner[ns+"/"+name]
	if !ok {
		return
	}
	delete(c.cs.owner, ns+"/"+name)
	delete(c.cs.imports[key], name)
	if len(c.cs.imports[key]) == 0 {
		delete(c.cs.imports, key)
	}
	c.markLocked(ClustersetKey(splitKey(key)))
}

// clustersetLocked is what plan key reads when it is a clusterset IP's
// (isCS); ok is false when there is nothing to serve: no address, or no
// cluster exporting the Service.
func (c *Controller) clustersetLocked(key string) (cs ClustersetService, isCS, ok bool) {
	nn, isCS := splitClustersetKey(key)
	if !isCS {
		return cs, false, false
	}
	ip, has := c.cs.ips[nn]
	if !has {
		return cs, true, false
	}
	cs.Namespace, cs.Name = splitKey(nn)
	cs.IP = ip
	if c.cs.annotated[nn] || c.cs.crs[nn] {
		if svc, ok := c.services[nn]; ok {
			cs.Local = &svc
			cs.LocalSlices = c.slicesLocked(nn)
		}
	}
	for _, name := range sortedKeys(c.cs.imports[nn]) {
		cs.Imports = append(cs.Imports, c.cs.imports[nn][name])
	}
	return cs, true, cs.Local != nil || len(cs.Imports) > 0
}

// slicesLocked are Service key's slices, by name.
func (c *Controller) slicesLocked(key string) []Slice {
	var sl []Slice
	for _, name := range sortedKeys(c.slices[key]) {
		sl = append(sl, c.slices[key][name])
	}
	return sl
}
