package dnsproxy

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// SetRecords is what the clusterset zone reads. Names passed in are lower
// case. Implementations must be safe for concurrent use.
type SetRecords interface {
	// Exports returns every cluster's export of Service namespace/name,
	// this cluster's among them, ordered by cluster id; none when no
	// cluster exports it.
	Exports(namespace, name string) []ClusterExport
	// Namespace reports whether a namespace exists in this cluster.
	Namespace(name string) bool
	// ReverseSet returns the owners of an address of another cluster's
	// export: ClusterIPs (Hostname empty) and headless endpoints, and of
	// a clusterset IP.
	ReverseSet(a netip.Addr) []SetReverseTarget
	// ClustersetIP returns Service namespace/name's clusterset IP in this
	// cluster; false when it has none (yet).
	ClustersetIP(namespace, name string) (netip.Addr, bool)
}

// ClusterExport is one cluster's part of a clusterset Service.
type ClusterExport struct {
	// Cluster is the exporting cluster's id.
	Cluster  string
	Headless bool
	// ClusterIPs are the cluster's addresses of the Service (not
	// headless); Ready says whether it has a ready endpoint behind them.
	ClusterIPs []netip.Addr
	Ready      bool
	// Endpoints are the ready endpoints of a headless Service.
	Endpoints []Endpoint
	// Ports are the Service's named ports: for a headless Service, the
	// numbers its endpoints listen on.
	Ports []Port
}

// SetReverseTarget is the owner of an address in clusterset.local: a
// Service (Hostname empty) or one endpoint of a headless Service in
// Cluster.
type SetReverseTarget struct {
	Namespace, Service, Cluster, Hostname string
}

// Labels and annotation of the derived EndpointSlices that import another
// cluster's exports (package clusterset writes them; the values are
// repeated here so that DNS does not depend on the importer).
const (
	importManagedBy     = "peering.weft.dev"
	importLabelService  = "multicluster.kubernetes.io/service-name"
	importLabelCluster  = "multicluster.kubernetes.io/source-cluster"
	importAnnotType     = "peering.weft.dev/service-type"
	exportAnnotation    = "weft.dev/export"
	importTypeHeadless  = "Headless"
	importTypeClusterIP = "ClusterSetIP"
)

// ClustersetRecords implements SetRecords from informer events: this
// cluster's exported Services (read from KubeRecords, which already holds
// them) and the derived EndpointSlices of the other clusters' exports.
type ClustersetRecords struct {
	local   *KubeRecords
	cluster string // this cluster's id

	// gen counts changes, bumped under mu before the change (as
	// KubeRecords' is).
	gen atomic.Uint64

	mu        sync.RWMutex                     // guards every field below
	annotated map[string]struct{}              // "ns/name": Services with weft.dev/export "true"
	byCR      map[string]struct{}              // "ns/name": ServiceExports
	imports   map[string]importedSlice         // "ns/slice"
	bySvc     map[string]map[string]struct{}   // "ns/service" → slice keys
	byAddr    map[netip.Addr]map[string]string // address → slice key → hostname
	ips       map[string]netip.Addr            // "ns/name" → clusterset IP (clustersetips.go)
	ipOwner   map[netip.Addr]string            // clusterset IP → "ns/name"
}

// importedSlice is one derived EndpointSlice, lean.
type importedSlice struct {
	namespace, service, cluster string
	headless                    bool
	addrs                       []netip.Addr // ClusterSetIP: the cluster's ClusterIPs
	ready                       bool         // ClusterSetIP: one of them is ready
	endpoints                   []Endpoint   // Headless: ready endpoints
	ports                       []Port
}

var _ SetRecords = (*ClustersetRecords)(nil)

// NewClustersetRecords makes an empty set for cluster (this cluster's id)
// over local, the cluster zone's records.
func NewClustersetRecords(cluster string, local *KubeRecords) *ClustersetRecords {
	return &ClustersetRecords{
		local:     local,
		cluster:   strings.ToLower(cluster),
		annotated: map[string]struct{}{},
		byCR:      map[string]struct{}{},
		imports:   map[string]importedSlice{},
		bySvc:     map[string]map[string]struct{}{},
		byAddr:    map[netip.Addr]map[string]string{},
	}
}

// Generation is the number of changes so far, of this set and of the
// local records it reads: answers of both zones stay valid while it is
// unchanged.
func (c *ClustersetRecords) Generation() uint64 { return c.gen.Load() + c.local.Generation() }

// Namespace implements SetRecords.
func (c *ClustersetRecords) Namespace(name string) bool { return c.local.Namespace(name) }

// Exports implements SetRecords.
func (c *ClustersetRecords) Exports(namespace, name string) []ClusterExport {
	key := namespace + "/" + name
	c.mu.RLock()
	_, ann := c.annotated[key]
	_, cr := c.byCR[key]
	byCluster := map[string]*ClusterExport{}
	var out []ClusterExport
	keys := make([]string, 0, len(c.bySvc[key]))
	for k := range c.bySvc[key] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		sl := c.imports[k]
		if sl.cluster == c.cluster {
			continue // this cluster's own part comes from its Service
		}
		ce := byCluster[sl.cluster]
		if ce == nil {
			ce = &ClusterExport{Cluster: sl.cluster, Headless: sl.headless, Ports: sl.ports}
			byCluster[sl.cluster] = ce
		}
		ce.ClusterIPs = append(ce.ClusterIPs, sl.addrs...)
		ce.Ready = ce.Ready || sl.ready
		ce.Endpoints = append(ce.Endpoints, sl.endpoints...)
	}
	c.mu.RUnlock()
	for _, ce := range byCluster {
		out = append(out, *ce)
	}
	if ann || cr {
		if own, ok := c.own(namespace, name); ok {
			out = append(out, own)
		}
	}
	slices.SortFunc(out, func(a, b ClusterExport) int { return strings.Compare(a.Cluster, b.Cluster) })
	return out
}

// own is this cluster's export of a Service, from the cluster zone's
// records.
func (c *ClustersetRecords) own(namespace, name string) (ClusterExport, bool) {
	s, ok := c.local.Service(namespace, name)
	if !ok || s.ExternalName != "" {
		return ClusterExport{}, false
	}
	eps := c.local.Endpoints(namespace, name)
	ce := ClusterExport{Cluster: c.cluster, Headless: s.Headless, ClusterIPs: s.ClusterIPs, Ready: len(eps) > 0, Ports: s.Ports}
	if s.Headless {
		ce.Endpoints = eps
		// The numbers the endpoints listen on, by port name.
		ce.Ports = slices.Clone(s.Ports)
		for i, p := range ce.Ports {
			for _, ep := range eps {
				if j := slices.IndexFunc(ep.Ports, func(q Port) bool { return q.Name == p.Name && q.Protocol == p.Protocol }); j >= 0 {
					ce.Ports[i].Port = ep.Ports[j].Port
					break
				}
			}
		}
	}
	return ce, true
}

// ReverseSet implements SetRecords.
func (c *ClustersetRecords) ReverseSet(a netip.Addr) []SetReverseTarget {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []SetReverseTarget
	for key, host := range c.byAddr[a] {
		sl := c.imports[key]
		t := SetReverseTarget{Namespace: sl.namespace, Service: sl.service, Cluster: sl.cluster}
		if sl.headless {
			t.Hostname = host
			if t.Hostname == "" {
				t.Hostname = dashed(a)
			}
		}
		out = append(out, t)
	}
	if key, ok := c.ipOwner[a]; ok {
		ns, name, _ := strings.Cut(key, "/")
		out = append(out, SetReverseTarget{Namespace: ns, Service: name})
	}
	slices.SortFunc(out, func(x, y SetReverseTarget) int {
		return strings.Compare(x.Namespace+"/"+x.Service+"/"+x.Cluster+"/"+x.Hostname, y.Namespace+"/"+y.Service+"/"+y.Cluster+"/"+y.Hostname)
	})
	return out
}

// ServiceHandler feeds Services, for their export annotation (the rest of
// a Service is read from the cluster zone's records).
func (c *ClustersetRecords) ServiceHandler() cache.ResourceEventHandler {
	return handler(func(o *corev1.Service) {
		c.setMark(c.annotated, o.Namespace+"/"+o.Name, o.Annotations[exportAnnotation] == "true")
	}, func(o *corev1.Service) { c.setMark(c.annotated, o.Namespace+"/"+o.Name, false) })
}

// ServiceExportHandler feeds ServiceExports (multicluster.x-k8s.io), of
// which only the namespace and name are read: the dynamic informer's
// unstructured objects do.
func (c *ClustersetRecords) ServiceExportHandler() cache.ResourceEventHandler {
	return handler(func(o metav1.Object) {
		c.setMark(c.byCR, o.GetNamespace()+"/"+o.GetName(), true)
	}, func(o metav1.Object) { c.setMark(c.byCR, o.GetNamespace()+"/"+o.GetName(), false) })
}

func (c *ClustersetRecords) setMark(set map[string]struct{}, key string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, had := set[key]; had == on {
		return
	}
	c.gen.Add(1)
	if on {
		set[key] = struct{}{}
	} else {
		delete(set, key)
	}
}

// EndpointSliceHandler feeds EndpointSlices; only the derived slices of
// imports are kept.
func (c *ClustersetRecords) EndpointSliceHandler() cache.ResourceEventHandler {
	return handler(func(o *discoveryv1.EndpointSlice) { c.setSlice(o) }, func(o *discoveryv1.EndpointSlice) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.imports[o.Namespace+"/"+o.Name]; ok {
			c.gen.Add(1)
			c.unindexLocked(o.Namespace + "/" + o.Name)
		}
	})
}

func (c *ClustersetRecords) setSlice(o *discoveryv1.EndpointSlice) {
	key := o.Namespace + "/" + o.Name
	sl, ok := importedSliceOf(o)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, had := c.imports[key]; !had && !ok {
		return // not an import: no change here
	}
	c.gen.Add(1)
	c.unindexLocked(key)
	if !ok {
		return
	}
	c.imports[key] = sl
	indexAdd(c.bySvc, sl.namespace+"/"+sl.service, key, struct{}{})
	for _, a := range sl.addrs {
		indexAdd(c.byAddr, a, key, "")
	}
	for _, ep := range sl.endpoints {
		for _, a := range ep.Addrs {
			indexAdd(c.byAddr, a, key, ep.Hostname)
		}
	}
}

func (c *ClustersetRecords) unindexLocked(key string) {
	old, ok := c.imports[key]
	if !ok {
		return
	}
	for _, a := range old.addrs {
		indexRemove(c.byAddr, a, key)
	}
	for _, ep := range old.endpoints {
		for _, a := range ep.Addrs {
			indexRemove(c.byAddr, a, key)
		}
	}
	indexRemove(c.bySvc, old.namespace+"/"+old.service, key)
	delete(c.imports, key)
}

// importedSliceOf reads a derived slice; false when the slice is not one
// (another manager, a missing label or type).
func importedSliceOf(o *discoveryv1.EndpointSlice) (importedSlice, bool) {
	if o.Labels[discoveryv1.LabelManagedBy] != importManagedBy {
		return importedSlice{}, false
	}
	sl := importedSlice{
		namespace: o.Namespace,
		service:   strings.ToLower(o.Labels[importLabelService]),
		cluster:   strings.ToLower(o.Labels[importLabelCluster]),
	}
	switch o.Annotations[importAnnotType] {
	case importTypeHeadless:
		sl.headless = true
	case importTypeClusterIP:
	default:
		return importedSlice{}, false
	}
	if sl.service == "" || sl.cluster == "" {
		return importedSlice{}, false
	}
	lean, ok := leanSliceOf(withServiceLabel(o))
	if !ok {
		return importedSlice{}, false
	}
	sl.endpoints = lean.endpoints
	sl.ports = slicePorts(o)
	for i := range sl.endpoints {
		sl.endpoints[i].Ports = nil // the export's ports say it
	}
	if !sl.headless {
		// The ClusterIPs, ready or not: readiness only orders answers.
		for _, e := range o.Endpoints {
			for _, s := range e.Addresses {
				if a, err := netip.ParseAddr(s); err == nil {
					sl.addrs = append(sl.addrs, a.Unmap())
				}
			}
			sl.ready = sl.ready || e.Conditions.Ready == nil || *e.Conditions.Ready
		}
		sl.endpoints = nil
	}
	return sl, true
}

// withServiceLabel is o with the service-name label leanSliceOf wants, so
// that both zones read endpoints alike.
func withServiceLabel(o *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	c := *o
	c.Labels = map[string]string{discoveryv1.LabelServiceName: o.Labels[importLabelService]}
	return &c
}
