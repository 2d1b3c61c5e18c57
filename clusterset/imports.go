package clusterset

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels and annotations of the derived EndpointSlices that carry another
// cluster's exports into this one. They have no kubernetes.io/service-name
// label, so kube-proxy and the cluster.local zone never read them.
const (
	// LabelServiceName names the exported Service (MCS API label).
	LabelServiceName = "multicluster.kubernetes.io/service-name"
	// LabelSourceCluster is the exporting cluster's id (MCS API label).
	LabelSourceCluster = "multicluster.kubernetes.io/source-cluster"
	// ManagedBy is the endpointslice.kubernetes.io/managed-by value of
	// every derived slice: the one writer is this cluster's active gateway.
	ManagedBy = "peering.weft.dev"
	// AnnotationType is the exported Service's Type (ClusterSetIP or
	// Headless).
	AnnotationType = "peering.weft.dev/service-type"
	// AnnotationReadyEndpoints is, on a ClusterSetIP import, how many
	// ready endpoints the remote Service has: the Service proxy weighs the
	// remote ClusterIP by it, so that a clusterset IP spreads over every
	// cluster's endpoints alike rather than over clusters.
	AnnotationReadyEndpoints = "peering.weft.dev/ready-endpoints"
)

// Remote is one peered cluster as the gateway fetches it.
type Remote struct {
	// Cluster is the peer's name; ID its cluster id, the label of its
	// imports and of its names in clusterset.local.
	Cluster, ID string
	// Addr is its chosen gateway's tunnel address and export port; zero
	// when there is none yet (its imports are kept as they are).
	Addr netip.AddrPort
	// Networks are its declared pod and service CIDRs: an address outside
	// them is dropped from its imports, so a peer cannot point this
	// cluster's names at its own or a third cluster's addresses. Empty
	// means no check.
	Networks []netip.Prefix
}

// Skipped is an export, or part of one, that PlanImports left out.
type Skipped struct {
	Service string // namespace/name
	Reason  string
}

// PlanImports is the derived EndpointSlices that import doc, the exports of
// cluster id, into this cluster, and what it left out. namespace reports
// whether a namespace exists here: by namespace sameness an export lands
// only in the namespace of the same name, and is skipped where there is
// none. doc must have passed Validate.
//
// Each exported Service gets one slice per address family (more for a
// headless Service of over 1,000 endpoints), named after the Service and
// the cluster with a hash, so names are stable and never collide:
//
//   - ClusterSetIP: the endpoints are the remote ClusterIPs, ready when the
//     remote Service has a ready endpoint; the ports are the Service's.
//   - Headless: the endpoints are the remote ready endpoints with their
//     hostnames; the ports are the numbers they listen on.
//
// A Service with no address at all still gets one empty IPv4 slice, so
// the import is known.
func PlanImports(id string, doc Document, namespace func(string) bool, networks []netip.Prefix) ([]*discoveryv1.EndpointSlice, []Skipped) {
	var out []*discoveryv1.EndpointSlice
	var skipped []Skipped
	inNetworks := func(a netip.Addr) bool {
		return len(networks) == 0 || slices.ContainsFunc(networks, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	for _, s := range doc.Services {
		key := s.Namespace + "/" + s.Name
		if !namespace(s.Namespace) {
			skipped = append(skipped, Skipped{key, "namespace " + s.Namespace + " does not exist in this cluster"})
			continue
		}
		type ep struct {
			addr netip.Addr
			host string
		}
		var eps []ep
		ready := len(s.Endpoints) > 0
		addrs := s.ClusterIPs
		if s.Type == Headless {
			addrs = nil
			for _, e := range s.Endpoints {
				addrs = append(addrs, e.IP)
			}
		}
		dropped := 0
		for i, str := range addrs {
			a, _ := parseUnicast(str) // validated
			if !inNetworks(a) {
				dropped++
				continue
			}
			host := ""
			if s.Type == Headless {
				host = s.Endpoints[i].Hostname
			}
			eps = append(eps, ep{a, host})
		}
		if dropped > 0 {
			skipped = append(skipped, Skipped{key, fmt.Sprintf("%d address(es) outside the cluster's declared networks", dropped)})
		}
		byFamily := map[discoveryv1.AddressType][]discoveryv1.Endpoint{}
		for _, e := range eps {
			fam := discoveryv1.AddressTypeIPv4
			if e.addr.Is6() {
				fam = discoveryv1.AddressTypeIPv6
			}
			de := discoveryv1.Endpoint{
				Addresses:  []string{e.addr.String()},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready)},
			}
			if e.host != "" {
				de.Hostname = ptr(e.host)
			}
			byFamily[fam] = append(byFamily[fam], de)
		}
		if len(byFamily) == 0 {
			byFamily[discoveryv1.AddressTypeIPv4] = nil
		}
		for _, fam := range []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6} {
			all, ok := byFamily[fam]
			if !ok {
				continue
			}
			for chunk := 0; chunk == 0 || chunk*maxEndpointsPerSlice < len(all); chunk++ {
				part := all[chunk*maxEndpointsPerSlice : min(len(all), (chunk+1)*maxEndpointsPerSlice)]
				out = append(out, importSlice(id, s, fam, chunk, part))
			}
		}
	}
	return out, skipped
}

func importSlice(id string, s Service, fam discoveryv1.AddressType, chunk int, eps []discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%s/%s/%d", id, s.Namespace, s.Name, fam, chunk))
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace,
			Name:      s.Name + "-" + id + "-" + hex.EncodeToString(sum[:5]),
			Labels: map[string]string{
				LabelServiceName:           s.Name,
				LabelSourceCluster:         id,
				discoveryv1.LabelManagedBy: ManagedBy,
			},
			Annotations: map[string]string{AnnotationType: string(s.Type)},
		},
		AddressType: fam,
		Endpoints:   eps,
	}
	if s.Type == ClusterSetIP {
		sl.Annotations[AnnotationReadyEndpoints] = strconv.Itoa(len(s.Endpoints))
	}
	for _, p := range s.Ports {
		sl.Ports = append(sl.Ports, discoveryv1.EndpointPort{
			Name:     ptr(p.Name),
			Protocol: ptr(corev1.Protocol(p.Protocol)),
			Port:     ptr(p.Port),
		})
	}
	return sl
}

func ptr[T any](v T) *T { return &v }
