package clusterset

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// ExportAnnotation marks a Service exported to the peered clusters when
// its value is "true".
const ExportAnnotation = "weft.dev/export"

// Exported reports whether a Service is exported by its annotation or by a
// ServiceExport (byCR reports one of that namespace and name).
// ExternalName Services are never exported: the MCS API has no import
// type for them.
func Exported(s *corev1.Service, byCR func(namespace, name string) bool) bool {
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		return false
	}
	return s.Annotations[ExportAnnotation] == "true" || (byCR != nil && byCR(s.Namespace, s.Name))
}

// Exports is the Document of cluster: every exported Service with its
// ready endpoints from its EndpointSlices. byCR reports ServiceExports
// (nil when the CRD is not installed). Derived slices (of imports) are not
// a Service's: they lack the kubernetes.io/service-name label.
func Exports(cluster string, services []*corev1.Service, eps []*discoveryv1.EndpointSlice, byCR func(namespace, name string) bool) Document {
	bySvc := map[string][]*discoveryv1.EndpointSlice{}
	for _, sl := range eps {
		if name := sl.Labels[discoveryv1.LabelServiceName]; name != "" {
			key := sl.Namespace + "/" + name
			bySvc[key] = append(bySvc[key], sl)
		}
	}
	doc := Document{Cluster: cluster, Services: []Service{}}
	for _, s := range services {
		if !Exported(s, byCR) {
			continue
		}
		e := exportOf(s, bySvc[s.Namespace+"/"+s.Name])
		if len(e.Endpoints) > MaxEndpoints {
			e.Endpoints = e.Endpoints[:MaxEndpoints]
		}
		// Left out until it is valid: a ClusterIP Service without its
		// address yet, a port without a number.
		if e.validate() != nil {
			continue
		}
		doc.Services = append(doc.Services, e)
	}
	slices.SortFunc(doc.Services, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	if len(doc.Services) > MaxServices {
		doc.Services = doc.Services[:MaxServices]
	}
	return doc
}

// exportOf is one Service's export, its ready endpoints sorted by address.
func exportOf(s *corev1.Service, eps []*discoveryv1.EndpointSlice) Service {
	out := Service{Namespace: s.Namespace, Name: s.Name, Type: ClusterSetIP}
	ips := s.Spec.ClusterIPs
	if len(ips) == 0 && s.Spec.ClusterIP != "" {
		ips = []string{s.Spec.ClusterIP}
	}
	for _, ip := range ips {
		if ip == corev1.ClusterIPNone {
			out.Type = Headless
			continue
		}
		if a, err := netip.ParseAddr(ip); err == nil && unicast(a) == nil {
			out.ClusterIPs = append(out.ClusterIPs, a.String())
		}
	}
	if out.Type == Headless {
		out.ClusterIPs = nil
	}
	// Headless: the numbers the endpoints listen on, by port name.
	listen := map[string]int32{}
	slices.SortFunc(eps, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	for _, sl := range eps {
		for _, p := range sl.Ports {
			if p.Port == nil {
				continue
			}
			name := ""
			if p.Name != nil {
				name = *p.Name
			}
			if _, ok := listen[name]; !ok {
				listen[name] = *p.Port
			}
		}
	}
	for _, p := range s.Spec.Ports {
		port := Port{Name: p.Name, Protocol: string(cmp.Or(p.Protocol, corev1.ProtocolTCP)), Port: p.Port}
		if n, ok := listen[p.Name]; ok && out.Type == Headless {
			port.Port = n
		}
		out.Ports = append(out.Ports, port)
	}
	seen := map[netip.Addr]bool{}
	for _, sl := range eps {
		if sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		for _, e := range sl.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			host := ""
			if e.Hostname != nil && dnsLabel(*e.Hostname) == nil {
				host = *e.Hostname
			}
			for _, ip := range e.Addresses {
				a, err := netip.ParseAddr(ip)
				if err != nil || unicast(a) != nil || seen[a] {
					continue
				}
				seen[a] = true
				out.Endpoints = append(out.Endpoints, Endpoint{IP: a.String(), Hostname: host})
			}
		}
	}
	slices.SortFunc(out.Endpoints, func(a, b Endpoint) int {
		return netip.MustParseAddr(a.IP).Compare(netip.MustParseAddr(b.IP))
	})
	return out
}
