package clusterset

import (
	"fmt"
	"net/netip"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Type is how an exported Service is reached, as the MCS API names it.
type Type string

const (
	// ClusterSetIP is a Service with ClusterIPs: clients connect to them.
	ClusterSetIP Type = "ClusterSetIP"
	// Headless is a Service with clusterIP None: clients connect to its
	// endpoints.
	Headless Type = "Headless"
)

// Document is what a cluster's active gateway serves on /v1/exports: every
// Service the cluster exports.
type Document struct {
	// Cluster is the exporting cluster's id (its clusterID).
	Cluster  string    `json:"cluster"`
	Services []Service `json:"services"`
}

// Service is one exported Service.
type Service struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Type      Type   `json:"type"`
	// Ports are the Service's ports: for ClusterSetIP the Service's port
	// numbers, for Headless the numbers its endpoints listen on.
	Ports []Port `json:"ports,omitempty"`
	// ClusterIPs are the Service's addresses (ClusterSetIP only).
	// Addresses are strings on the wire so that Validate, not the JSON
	// decoder, refuses a bad one, naming its field.
	ClusterIPs []string `json:"clusterIPs,omitempty"`
	// Endpoints are the Service's ready endpoints.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
}

// Port is one port of a Service. Protocol is TCP, UDP or SCTP.
type Port struct {
	Name     string `json:"name,omitempty"`
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
}

// Endpoint is one ready endpoint address.
type Endpoint struct {
	IP string `json:"ip"`
	// Hostname is the endpoint's hostname field; empty when it has none.
	Hostname string `json:"hostname,omitempty"`
}

// Limits on one Document, so a remote cluster cannot make a gateway hold
// or write without bound.
const (
	MaxServices          = 5000
	MaxEndpoints         = 10000 // per Service
	MaxPorts             = 100   // per Service
	MaxDocumentBytes     = 16 << 20
	maxClusterIPs        = 2
	maxEndpointsPerSlice = 1000 // the API's limit on one EndpointSlice
)

// Validate checks the whole document and returns the first problem, naming
// its field (services[2].endpoints[0].ip: …).
func (d *Document) Validate() error {
	if err := dnsLabel(d.Cluster); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if len(d.Services) > MaxServices {
		return fmt.Errorf("services: %d services, more than %d", len(d.Services), MaxServices)
	}
	seen := map[string]int{}
	for i, s := range d.Services {
		if err := s.validate(); err != nil {
			return fmt.Errorf("services[%d].%w", i, err)
		}
		key := s.Namespace + "/" + s.Name
		if j, dup := seen[key]; dup {
			return fmt.Errorf("services[%d]: %s is listed twice (also services[%d])", i, key, j)
		}
		seen[key] = i
	}
	return nil
}

func (s *Service) validate() error {
	if err := dnsLabel(s.Namespace); err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	if err := dnsLabel(s.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	switch s.Type {
	case ClusterSetIP:
		if len(s.ClusterIPs) == 0 {
			return fmt.Errorf("clusterIPs: a ClusterSetIP service needs one")
		}
	case Headless:
		if len(s.ClusterIPs) > 0 {
			return fmt.Errorf("clusterIPs: a Headless service has none")
		}
	default:
		return fmt.Errorf("type: %q is not ClusterSetIP or Headless", s.Type)
	}
	if len(s.ClusterIPs) > maxClusterIPs {
		return fmt.Errorf("clusterIPs: %d addresses, more than %d", len(s.ClusterIPs), maxClusterIPs)
	}
	for i, a := range s.ClusterIPs {
		if _, err := parseUnicast(a); err != nil {
			return fmt.Errorf("clusterIPs[%d]: %w", i, err)
		}
	}
	if len(s.Ports) > MaxPorts {
		return fmt.Errorf("ports: %d ports, more than %d", len(s.Ports), MaxPorts)
	}
	for i, p := range s.Ports {
		if err := p.validate(); err != nil {
			return fmt.Errorf("ports[%d].%w", i, err)
		}
	}
	if len(s.Endpoints) > MaxEndpoints {
		return fmt.Errorf("endpoints: %d endpoints, more than %d", len(s.Endpoints), MaxEndpoints)
	}
	for i, e := range s.Endpoints {
		if _, err := parseUnicast(e.IP); err != nil {
			return fmt.Errorf("endpoints[%d].ip: %w", i, err)
		}
		if e.Hostname != "" {
			if err := dnsLabel(e.Hostname); err != nil {
				return fmt.Errorf("endpoints[%d].hostname: %w", i, err)
			}
		}
	}
	return nil
}

func (p *Port) validate() error {
	if p.Name != "" {
		if err := dnsLabel(p.Name); err != nil {
			return fmt.Errorf("name: %w", err)
		}
	}
	switch p.Protocol {
	case "TCP", "UDP", "SCTP":
	default:
		return fmt.Errorf("protocol: %q is not TCP, UDP or SCTP", p.Protocol)
	}
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("port: %d is not in 1-65535", p.Port)
	}
	return nil
}

func dnsLabel(s string) error {
	if s == "" {
		return fmt.Errorf("missing")
	}
	if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
		return fmt.Errorf("%q is not a DNS label: %s", s, errs[0])
	}
	return nil
}

// parseUnicast parses an address in its canonical form (no zone, no
// IPv4-mapped form), refusing what cannot be a Service's or a pod's.
func parseUnicast(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, fmt.Errorf("missing")
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a, unicast(a)
}

func unicast(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("missing")
	case a.Zone() != "":
		return fmt.Errorf("%s has a zone", a)
	case a.Is4In6():
		return fmt.Errorf("%s is an IPv4-mapped address", a)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return fmt.Errorf("%s is not a routable unicast address", a)
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%s is not a routable unicast address", a)
	}
	return nil
}
