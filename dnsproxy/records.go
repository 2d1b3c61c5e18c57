package dnsproxy

import "net/netip"

// Records is what the cluster zone reads. Names passed in are lower case.
// Implementations must be safe for concurrent use.
type Records interface {
	// Service returns the Service namespace/name.
	Service(namespace, name string) (Service, bool)
	// Endpoints returns the ready endpoints of Service namespace/name.
	Endpoints(namespace, name string) []Endpoint
	// Namespace reports whether a namespace exists.
	Namespace(name string) bool
	// PodIP reports whether a pod in namespace has address a.
	PodIP(namespace string, a netip.Addr) bool
	// Reverse returns what answers a PTR query for a: Services whose
	// ClusterIP it is, and headless Services' endpoints that have it.
	Reverse(a netip.Addr) []ReverseTarget
}

// Service is the lean part of a Service that DNS reads.
type Service struct {
	Namespace, Name string
	// ClusterIPs are the Service's addresses; empty for a headless
	// Service (clusterIP None) and for ExternalName.
	ClusterIPs []netip.Addr
	// Headless is true for clusterIP: None.
	Headless bool
	// ExternalName is set for type ExternalName (lower case, no final dot).
	ExternalName string
	// Ports are the Service's ports; only named ones get SRV records.
	Ports []Port
}

// Port is a named port: Protocol is lower case ("tcp", "udp", "sctp").
type Port struct {
	Name     string
	Protocol string
	Port     uint16
}

// Endpoint is one ready endpoint of a Service.
type Endpoint struct {
	Addrs []netip.Addr
	// Hostname is the endpoint's hostname field, lower case; empty when it
	// has none (DNS then uses the dashed address, e.g. 10-244-1-5).
	Hostname string
	// Ports are the EndpointSlice's ports (the numbers the endpoint
	// listens on), named as the Service's ports are.
	Ports []Port
}

// ReverseTarget is the owner of an address: a Service (Hostname empty) or
// one endpoint (Hostname set) of a headless Service.
type ReverseTarget struct {
	Namespace, Service, Hostname string
}
