package lab

import (
	"fmt"
	"net/netip"
	"regexp"
	"time"
)

// Spec is what `weft lab up` is asked for. The zero value of a field means
// the default written beside it.
type Spec struct {
	// Name names the lab; every namespace it creates starts with Name+"-".
	// Lower-case letters and digits only, so that no lab's prefix is the
	// prefix of another's. Default "weft".
	Name string `json:"name"`
	// Nodes is how many nodes `up` creates. Default 3.
	Nodes int `json:"nodes"`
	// Backend is the tunnel backend, "wireguard" or "vxlan". Default wireguard.
	Backend string `json:"backend"`
	// MTU is the MTU of every underlay link. Default 1500.
	MTU int `json:"mtu"`
	// PodsPerNode is how many pods (p1..pK) `up` adds to every node. Default 0.
	PodsPerNode int `json:"podsPerNode"`
	// ClusterCIDR is the whole pod network. Default 10.244.0.0/16.
	ClusterCIDR string `json:"clusterCIDR"`
	// Kube runs a real Kubernetes control plane in the lab (etcd,
	// kube-apiserver, kube-controller-manager in namespace <name>-cp),
	// registers a Node per node and runs the agents in Kubernetes mode.
	Kube bool `json:"kube,omitempty"`
	// Kubelets runs a real node of Kubernetes beside every agent (Kube
	// only): containerd and a kubelet, which registers the Node; the
	// control plane runs kube-scheduler too. Pods are real Pods.
	Kubelets bool `json:"kubelets,omitempty"`
	// Agents is how the agents run: AgentsProcess, the lab starting one
	// per node (the fast path), or AgentsDaemonSet (Kubelets only), the
	// DaemonSet of deploy/kubernetes run by the kubelets from an image the
	// lab builds, as users install weft. Default AgentsProcess.
	Agents string `json:"agents,omitempty"`
	// KubeBinDir holds kube-apiserver and kube-controller-manager (Kube
	// only). Default: the lab's BinDir. Stored absolute.
	KubeBinDir string `json:"kubeBinDir,omitempty"`
	// Manifests is deploy/kubernetes, whose namespace, ServiceAccount and
	// RBAC `up --kube` applies. Default: found from the working directory
	// or the weft binary (ManifestDirFor). Stored absolute.
	Manifests string `json:"manifests,omitempty"`
	// ServiceCIDR is the Service ClusterIP range (--kube) and the service
	// network a peering bundle declares. Default 10.96.0.0/16.
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	// Gateways makes the first Gateways nodes (by index) gateway-eligible
	// for multi-cluster peering and turns peering on in every agent, with
	// the lab's peering file (empty until `weft lab peer`). Default 0: off.
	Gateways int `json:"gateways,omitempty"`
	// DNSUpstream is the resolver the agents' DNS proxies forward names
	// outside the cluster to (ip or ip:port; Kube only). Default: the
	// host's /etc/resolv.conf, which lab nodes usually cannot reach.
	DNSUpstream string `json:"dnsUpstream,omitempty"`
	// LeaseGrace is how long the agents hold a failed node's block before
	// it may be claimed again (a Go duration). Default LabLeaseGrace.
	LeaseGrace string `json:"leaseGrace,omitempty"`
	// NoAgents creates the nodes with their files but starts no agent;
	// `weft lab node start N1 N2 ...` then starts any number together, as
	// a DaemonSet rollout or a power cut's return would.
	NoAgents bool `json:"noAgents,omitempty"`
}

// Spec.Agents values.
const (
	AgentsProcess   = "process"
	AgentsDaemonSet = "daemonset"
)

// Defaults for Spec.
const (
	DefaultName        = "weft"
	DefaultNodes       = 3
	DefaultBackend     = "wireguard"
	DefaultMTU         = 1500
	DefaultClusterCIDR = "10.244.0.0/16"
	DefaultServiceCIDR = "10.96.0.0/16"
)

var (
	labNameRE  = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
	nodeNameRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,14}$`)
	podNameRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
)

// reservedNodeNames are namespace suffixes the lab uses for itself.
var reservedNodeNames = map[string]bool{"underlay": true, "inet": true, CPNodeName: true}

// CPNodeName is the namespace suffix of the control plane (--kube).
const CPNodeName = "cp"

// Complete fills defaults and validates, naming the field of the first
// problem found.
func (s *Spec) Complete() error {
	if s.Name == "" {
		s.Name = DefaultName
	}
	if s.Nodes == 0 {
		s.Nodes = DefaultNodes
	}
	if s.Backend == "" {
		s.Backend = DefaultBackend
	}
	if s.MTU == 0 {
		s.MTU = DefaultMTU
	}
	if s.ClusterCIDR == "" {
		s.ClusterCIDR = DefaultClusterCIDR
	}
	if s.ServiceCIDR == "" {
		s.ServiceCIDR = DefaultServiceCIDR
	}
	if s.Agents == "" {
		s.Agents = AgentsProcess
	}
	if err := ValidateLabName(s.Name); err != nil {
		return err
	}
	if s.Nodes < 1 || s.Nodes > MaxNodes {
		return fmt.Errorf("nodes: %d is out of range 1-%d", s.Nodes, MaxNodes)
	}
	switch s.Backend {
	case "wireguard", "vxlan":
	default:
		return fmt.Errorf("backend: %q is not one of wireguard, vxlan", s.Backend)
	}
	if s.MTU < 1280 || s.MTU > 9000 {
		return fmt.Errorf("mtu: %d is out of range 1280-9000", s.MTU)
	}
	if s.PodsPerNode < 0 || s.PodsPerNode > 250 {
		return fmt.Errorf("pods-per-node: %d is out of range 0-250", s.PodsPerNode)
	}
	p, err := netip.ParsePrefix(s.ClusterCIDR)
	if err != nil || !p.Addr().Is4() || p.Masked() != p {
		return fmt.Errorf("cluster-cidr: %q is not an IPv4 network address in CIDR form", s.ClusterCIDR)
	}
	if p.Overlaps(UnderlaySubnet) || p.Contains(WorldAddr) || p.Overlaps(WANSubnet) {
		return fmt.Errorf("cluster-cidr: %s overlaps the lab underlay %s, %s or the peering WAN %s", p, UnderlaySubnet, WorldAddr, WANSubnet)
	}
	svc, err := netip.ParsePrefix(s.ServiceCIDR)
	if err != nil || !svc.Addr().Is4() || svc.Masked() != svc || svc.Bits() < 12 || svc.Bits() > 28 {
		return fmt.Errorf("service-cidr: %q is not an IPv4 network address in CIDR form between /12 and /28", s.ServiceCIDR)
	}
	if svc.Overlaps(p) || svc.Overlaps(UnderlaySubnet) || svc.Overlaps(WANSubnet) {
		return fmt.Errorf("service-cidr: %s overlaps the cluster CIDR %s, the underlay %s or the peering WAN %s", svc, p, UnderlaySubnet, WANSubnet)
	}
	if s.Gateways < 0 || s.Gateways > s.Nodes || s.Gateways > MaxGateways {
		return fmt.Errorf("gateways: %d is out of range 0-%d (at most the number of nodes)", s.Gateways, min(s.Nodes, MaxGateways))
	}
	if u := s.DNSUpstream; u != "" {
		if _, err := netip.ParseAddrPort(u); err != nil {
			if _, err := netip.ParseAddr(u); err != nil {
				return fmt.Errorf("dns-upstream: %q is not ip or ip:port", u)
			}
		}
	}
	if s.LeaseGrace != "" {
		if d, err := time.ParseDuration(s.LeaseGrace); err != nil || d < time.Second {
			return fmt.Errorf("lease-grace: %q is not a duration of at least 1s", s.LeaseGrace)
		}
	}
	if s.NoAgents && s.PodsPerNode > 0 {
		return fmt.Errorf("pods-per-node: needs agents, and no-agents is set")
	}
	if s.NoAgents && s.DaemonSet() {
		return fmt.Errorf("no-agents: the DaemonSet starts the agents (agents: %s)", AgentsDaemonSet)
	}
	if s.Kubelets && !s.Kube {
		return fmt.Errorf("kubelets: needs --kube")
	}
	switch s.Agents {
	case AgentsProcess:
	case AgentsDaemonSet:
		if !s.Kubelets {
			return fmt.Errorf("agents: %s needs --kubelets (the kubelets run the DaemonSet)", s.Agents)
		}
		if s.Gateways > 0 {
			return fmt.Errorf("agents: %s with gateways: peering in a DaemonSet lab is not supported; use --agents %s", s.Agents, AgentsProcess)
		}
	default:
		return fmt.Errorf("agents: %q is not one of %s, %s", s.Agents, AgentsProcess, AgentsDaemonSet)
	}
	if s.DNSUpstream != "" && !s.Kube {
		return fmt.Errorf("dns-upstream: the DNS proxy runs in --kube labs only")
	}
	return nil
}

// DaemonSet reports whether the agents run as the DaemonSet's pods.
func (s Spec) DaemonSet() bool { return s.Agents == AgentsDaemonSet }

// ValidateLabName checks a lab name.
func ValidateLabName(name string) error {
	if !labNameRE.MatchString(name) {
		return fmt.Errorf("name: %q must be 1-16 lower-case letters and digits, starting with a letter", name)
	}
	return nil
}

// ValidateNodeName checks a node name. Node names carry no '-' so that a
// namespace name splits unambiguously into lab, node and pod.
func ValidateNodeName(name string) error {
	if !nodeNameRE.MatchString(name) || reservedNodeNames[name] {
		return fmt.Errorf("node name %q must be 1-15 lower-case letters and digits, starting with a letter, and not underlay, inet or cp", name)
	}
	return nil
}

// ValidatePodName checks a pod name.
func ValidatePodName(name string) error {
	if !podNameRE.MatchString(name) {
		return fmt.Errorf("pod name %q must be 1-32 lower-case letters, digits and '-', starting and ending with a letter or digit", name)
	}
	return nil
}
