package serviceproxy

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Protocol is an IP protocol number (TCP, UDP or SCTP).
type Protocol uint8

// The protocols a Service port may have.
const (
	TCP  Protocol = unix.IPPROTO_TCP
	UDP  Protocol = unix.IPPROTO_UDP
	SCTP Protocol = unix.IPPROTO_SCTP
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return "proto" + strconv.Itoa(int(p))
}

// protocolOf maps a Kubernetes protocol; "" is TCP, as the API defaults it.
func protocolOf(p corev1.Protocol) (Protocol, bool) {
	switch p {
	case corev1.ProtocolTCP, "":
		return TCP, true
	case corev1.ProtocolUDP:
		return UDP, true
	case corev1.ProtocolSCTP:
		return SCTP, true
	}
	return 0, false
}

// Service is what the proxy reads of a Service: a lean copy, so that every
// node holding every Service costs little.
type Service struct {
	Namespace, Name string
	// ClusterIPs are the Service's cluster addresses; none for headless
	// and ExternalName Services, which the proxy does not serve.
	ClusterIPs []netip.Addr
	// ExternalIPs and LoadBalancerIPs (status.loadBalancer.ingress with
	// ipMode VIP or unset) are served like the cluster address, with the
	// external traffic policy.
	ExternalIPs     []netip.Addr
	LoadBalancerIPs []netip.Addr
	Ports           []ServicePort
	// Affinity is the ClientIP session affinity timeout; 0 means none.
	Affinity time.Duration
	// InternalLocal is internalTrafficPolicy: Local.
	InternalLocal bool
	// ExternalLocal is externalTrafficPolicy: Local (on NodePort and
	// LoadBalancer Services).
	ExternalLocal bool
	// PreferClose is trafficDistribution: PreferClose (or PreferSameNode):
	// cluster traffic goes to endpoints on this node when there are any.
	PreferClose bool
	// HealthCheckNodePort answers, with ExternalLocal, whether this node
	// has local endpoints. 0: none.
	HealthCheckNodePort uint16
	// Problems are parts of the Service the proxy cannot serve, for status.
	Problems []string
	// Weights, of a clusterset IP, list an endpoint this many times in
	// the spread (a peer's ClusterIP standing for its endpoints); unset
	// is once.
	Weights map[netip.Addr]int
}

// Key is "namespace/name".
func (s Service) Key() string { return s.Namespace + "/" + s.Name }

// ServicePort is one port of a Service.
type ServicePort struct {
	Name     string
	Protocol Protocol
	Port     uint16
	NodePort uint16 // 0: none
}

// Slice is what the proxy reads of an EndpointSlice.
type Slice struct {
	Namespace, Name string
	Service         string // kubernetes.io/service-name
	Ports           []SlicePort
	Endpoints       []Endpoint
}

// SlicePort is a port of an EndpointSlice; Name matches the Service port.
type SlicePort struct {
	Name     string
	Protocol Protocol
	Port     uint16
}

// Endpoint is one address of an EndpointSlice with its conditions.
type Endpoint struct {
	Addr                        netip.Addr
	Node                        string
	Ready, Serving, Terminating bool
}

// ServiceFromAPI makes the lean copy of o. ok is false for Services the
// proxy does not serve at all (ExternalName, headless).
func ServiceFromAPI(o *corev1.Service) (Service, bool) {
	s := Service{Namespace: o.Namespace, Name: o.Name}
	if o.Spec.Type == corev1.ServiceTypeExternalName {
		return s, false
	}
	for _, ip := range clusterIPsOf(o) {
		if ip == corev1.ClusterIPNone {
			return s, false
		}
		if a, err := netip.ParseAddr(ip); err == nil {
			s.ClusterIPs = append(s.ClusterIPs, a.Unmap())
		} else {
			s.Problems = append(s.Problems, "clusterIP "+strconv.Quote(ip)+" is not an address")
		}
	}
	if len(s.ClusterIPs) == 0 {
		return s, false
	}
	for _, ip := range o.Spec.ExternalIPs {
		if a, err := netip.ParseAddr(ip); err == nil {
			s.ExternalIPs = append(s.ExternalIPs, a.Unmap())
		} else {
			s.Problems = append(s.Problems, "externalIPs: "+strconv.Quote(ip)+" is not an address")
		}
	}
	if o.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, in := range o.Status.LoadBalancer.Ingress {
			if in.IP == "" || (in.IPMode != nil && *in.IPMode != corev1.LoadBalancerIPModeVIP) {
				continue // a hostname, or a proxy that delivers to the node itself
			}
			if a, err := netip.ParseAddr(in.IP); err == nil {
				s.LoadBalancerIPs = append(s.LoadBalancerIPs, a.Unmap())
			}
		}
	}
	nodePorts := o.Spec.Type == corev1.ServiceTypeNodePort || o.Spec.Type == corev1.ServiceTypeLoadBalancer
	for _, p := range o.Spec.Ports {
		proto, ok := protocolOf(p.Protocol)
		if !ok {
			s.Problems = append(s.Problems, "port "+strconv.Itoa(int(p.Port))+": protocol "+string(p.Protocol)+" is not TCP, UDP or SCTP")
			continue
		}
		if p.Port < 1 || p.Port > 65535 {
			s.Problems = append(s.Problems, "port "+strconv.Itoa(int(p.Port))+" is not 1-65535")
			continue
		}
		sp := ServicePort{Name: p.Name, Protocol: proto, Port: uint16(p.Port)}
		if nodePorts && p.NodePort > 0 && p.NodePort <= 65535 {
			sp.NodePort = uint16(p.NodePort)
		}
		s.Ports = append(s.Ports, sp)
	}
	if o.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		s.Affinity = time.Duration(corev1.DefaultClientIPServiceAffinitySeconds) * time.Second
		if c := o.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil && *c.ClientIP.TimeoutSeconds > 0 {
			s.Affinity = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
		}
	}
	if p := o.Spec.InternalTrafficPolicy; p != nil && *p == corev1.ServiceInternalTrafficPolicyLocal {
		s.InternalLocal = true
	}
	if nodePorts || len(s.ExternalIPs) > 0 {
		s.ExternalLocal = o.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	}
	if s.ExternalLocal && o.Spec.HealthCheckNodePort > 0 && o.Spec.HealthCheckNodePort <= 65535 {
		s.HealthCheckNodePort = uint16(o.Spec.HealthCheckNodePort)
	}
	if d := o.Spec.TrafficDistribution; d != nil {
		switch *d {
		case corev1.ServiceTrafficDistributionPreferClose, "PreferSameNode", "PreferSameZone":
			s.PreferClose = true
		}
	}
	return s, true
}

func clusterIPsOf(o *corev1.Service) []string {
	if len(o.Spec.ClusterIPs) > 0 {
		return o.Spec.ClusterIPs
	}
	if o.Spec.ClusterIP != "" {
		return []string{o.Spec.ClusterIP}
	}
	return nil
}

// SliceFromAPI makes the lean copy of o. ok is false for a slice that
// belongs to no Service (kube-proxy ignores those too: the imports of
// peered clusters have no service-name label) or of another family.
func SliceFromAPI(o *discoveryv1.EndpointSlice) (Slice, bool) {
	svc := o.Labels[discoveryv1.LabelServiceName]
	if svc == "" || o.AddressType != discoveryv1.AddressTypeIPv4 {
		return Slice{}, false
	}
	s := Slice{Namespace: o.Namespace, Name: o.Name, Service: svc}
	for _, p := range o.Ports {
		if p.Port == nil || *p.Port < 1 || *p.Port > 65535 {
			continue
		}
		var proto Protocol = TCP
		if p.Protocol != nil {
			var ok bool
			if proto, ok = protocolOf(*p.Protocol); !ok {
				continue
			}
		}
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		s.Ports = append(s.Ports, SlicePort{Name: name, Protocol: proto, Port: uint16(*p.Port)})
	}
	for _, e := range o.Endpoints {
		c := e.Conditions
		ep := Endpoint{
			// A nil condition is true (ready, serving) or false
			// (terminating), per the EndpointSlice API.
			Ready:       c.Ready == nil || *c.Ready,
			Terminating: c.Terminating != nil && *c.Terminating,
		}
		ep.Serving = ep.Ready
		if c.Serving != nil {
			ep.Serving = *c.Serving
		}
		if e.NodeName != nil {
			ep.Node = *e.NodeName
		}
		for _, a := range e.Addresses {
			addr, err := netip.ParseAddr(a)
			if err != nil || !addr.Is4() {
				continue
			}
			ep.Addr = addr
			s.Endpoints = append(s.Endpoints, ep)
		}
	}
	return s, true
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// portID names a Service port in chain names: "ns/name/tcp/80".
func portID(s Service, p ServicePort) string {
	var b strings.Builder
	b.WriteString(s.Namespace)
	b.WriteByte('/')
	b.WriteString(s.Name)
	b.WriteByte('/')
	b.WriteString(p.Protocol.String())
	b.WriteByte('/')
	b.WriteString(strconv.Itoa(int(p.Port)))
	return b.String()
}
