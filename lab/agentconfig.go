package lab

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"gopkg.in/yaml.v3"
)

// Agent settings that suit a lab: repair drift quickly, and hand a dead
// node's lease on after a short while rather than the production 5m.
const (
	LabResync     = 2 * time.Second
	LabLeaseGrace = 30 * time.Second
	// LabRejoin heals a partition within seconds: a lab's partitions are
	// made on purpose, to watch the heal.
	LabRejoin = 5 * time.Second
	// LabMetricsAddress works in every node: each netns has its own loopback.
	LabMetricsAddress = "127.0.0.1:9464"
	// LabKubeSyncTimeout bounds an agent's wait for the first list of
	// Nodes: short, so that a node added while the API server is down joins
	// by gossip within seconds.
	LabKubeSyncTimeout = 10 * time.Second
)

// AgentConfigFile is the subset of the agent's YAML config (agent.Config)
// the lab sets. It mirrors the agent's field names rather than importing
// the agent package so that the lab builds on its own; agentconfig_test.go
// proves every file it writes parses and completes with agent.ParseConfig.
type AgentConfigFile struct {
	NodeName       string         `yaml:"nodeName,omitempty"`
	ClusterID      string         `yaml:"clusterID"`
	ClusterCIDR    string         `yaml:"clusterCIDR"`
	Underlay       agentUnderlay  `yaml:"underlay,omitempty"`
	Gossip         agentGossip    `yaml:"gossip"`
	Tunnel         agentTunnel    `yaml:"tunnel"`
	ResyncInterval string         `yaml:"resyncInterval"`
	StateFile      string         `yaml:"stateFile"`
	StatusSocket   string         `yaml:"statusSocket"`
	MetricsAddress string         `yaml:"metricsAddress"`
	LogLevel       string         `yaml:"logLevel,omitempty"`
	Kubernetes     *agentKube     `yaml:"kubernetes,omitempty"`
	DNS            *agentDNS      `yaml:"dns,omitempty"`
	Peering        *agentPeering  `yaml:"peering,omitempty"`
	Services       *agentServices `yaml:"services,omitempty"`
}

type agentServices struct {
	ResyncInterval string  `yaml:"resyncInterval"`
	LoadBalancer   agentLB `yaml:"loadBalancer"`
}

type agentLB struct {
	Pools []string `yaml:"pools"`
}

type agentPeering struct {
	File         string   `yaml:"file"`
	ClusterName  string   `yaml:"clusterName"`
	ServiceCIDRs []string `yaml:"serviceCIDRs"`
	Gateway      bool     `yaml:"gateway"`
	KeyFile      string   `yaml:"keyFile"`
}

type agentDNS struct {
	Upstreams []string `yaml:"upstreams,omitempty"`
}

type agentKube struct {
	Enabled     bool   `yaml:"enabled"`
	Kubeconfig  string `yaml:"kubeconfig,omitempty"`
	SyncTimeout string `yaml:"syncTimeout"`
}

type agentUnderlay struct {
	Interface string `yaml:"interface,omitempty"`
	Address   string `yaml:"address,omitempty"`
}

type agentGossip struct {
	Seeds      []string `yaml:"seeds,omitempty"`
	KeyFile    string   `yaml:"keyFile"`
	LeaseFile  string   `yaml:"leaseFile"`
	LeaseGrace string   `yaml:"leaseGrace"`
	Rejoin     string   `yaml:"rejoinInterval"`
}

type agentTunnel struct {
	Backend string `yaml:"backend"`
	KeyFile string `yaml:"keyFile,omitempty"`
}

// AgentConfig is the agent configuration of node n. Every path is the
// node's own: all nodes share one filesystem. In a --kube lab the agent runs
// in Kubernetes mode with the lab's agent kubeconfig; its seeds then come
// from the other Nodes' InternalIPs, so the caller passes none unless the
// API server is unavailable.
func AgentConfig(l Layout, s Spec, n NodePlan, seeds []netip.Addr) AgentConfigFile {
	c := AgentConfigFile{
		NodeName:    n.Name,
		ClusterID:   ClusterID(l.Name),
		ClusterCIDR: s.ClusterCIDR,
		Underlay: agentUnderlay{
			Interface: nodeIf,
			Address:   n.UnderlayIP.String(),
		},
		Gossip: agentGossip{
			KeyFile:    l.GossipKeyFile(),
			LeaseFile:  n.Paths.LeaseFile,
			LeaseGrace: LabLeaseGrace.String(),
			Rejoin:     LabRejoin.String(),
		},
		Tunnel:         agentTunnel{Backend: s.Backend},
		ResyncInterval: LabResync.String(),
		StateFile:      n.Paths.StateFile,
		StatusSocket:   n.Paths.StatusSocket,
		MetricsAddress: LabMetricsAddress,
	}
	if s.LeaseGrace != "" {
		c.Gossip.LeaseGrace = s.LeaseGrace
	}
	if s.Backend == "wireguard" {
		c.Tunnel.KeyFile = n.Paths.TunnelKey
	}
	if s.Kube {
		c.Kubernetes = &agentKube{Enabled: true, Kubeconfig: l.AgentKubeconfig(), SyncTimeout: LabKubeSyncTimeout.String()}
		if s.DNSUpstream != "" {
			c.DNS = &agentDNS{Upstreams: []string{s.DNSUpstream}}
		}
		c.Services = &agentServices{ResyncInterval: LabResync.String(), LoadBalancer: agentLB{Pools: []string{LBPoolRange}}}
	}
	if s.Gateways > 0 {
		c.Peering = &agentPeering{
			File:         l.PeeringFile(),
			ClusterName:  l.Name,
			ServiceCIDRs: []string{s.ServiceCIDR},
			Gateway:      n.Index <= s.Gateways,
			KeyFile:      n.Paths.PeeringKey,
		}
	}
	for _, a := range seeds {
		c.Gossip.Seeds = append(c.Gossip.Seeds, a.String())
	}
	return c
}

// Render writes c as the agent's YAML.
func (c AgentConfigFile) Render() ([]byte, error) {
	return c.render("# written by weft lab; every path is this node's own\n")
}

func (c AgentConfigFile) render(header string) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("failed to encode agent config for %s: %w", c.NodeName, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("failed to encode agent config for %s: %w", c.NodeName, err)
	}
	return b.Bytes(), nil
}
