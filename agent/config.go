package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weftnet/weft/internal/memory"
	"github.com/weftnet/weft/internal/yamlfield"
	"github.com/weftnet/weft/nodestate"
	"github.com/weftnet/weft/serviceproxy"
)

// Config is the agent's configuration file (YAML). Every field is optional
// unless marked; the zero value means the default written beside it.
// Unknown fields are an error.
type Config struct {
	// NodeName is this node's name. Default: $NODE_NAME, else the host name.
	NodeName string `yaml:"nodeName"`
	// ClusterID names the cluster; nodes of another cluster are ignored.
	// Default "default".
	ClusterID string `yaml:"clusterID"`
	// ClusterCIDR is the whole pod network. Default 10.244.0.0/16.
	ClusterCIDR string `yaml:"clusterCIDR"`
	// BlockSize is the prefix length of each node's pod block. Default 24.
	BlockSize int `yaml:"blockSize"`

	Underlay   UnderlayConfig   `yaml:"underlay"`
	Gossip     GossipConfig     `yaml:"gossip"`
	Tunnel     TunnelConfig     `yaml:"tunnel"`
	Kubernetes KubernetesConfig `yaml:"kubernetes"`
	DNS        DNSConfig        `yaml:"dns"`
	Policy     PolicyConfig     `yaml:"policy"`
	Peering    PeeringConfig    `yaml:"peering"`
	// Services configures the Service proxy (serviceproxy.Config).
	Services serviceproxy.Config `yaml:"services"`

	// ResyncInterval is how often the data plane is re-read and repaired
	// even when nothing changed. Default 10s.
	ResyncInterval Duration `yaml:"resyncInterval"`
	// StateFile is where the node's subnet and MTU are written for weft-cni.
	// Default /run/weft/node.json.
	StateFile string `yaml:"stateFile"`
	// StatusSocket is the unix socket `weft status` talks to.
	// Default /run/weft/weft.sock.
	StatusSocket string `yaml:"statusSocket"`
	// MetricsAddress serves /healthz, /readyz and /metrics.
	// Default 127.0.0.1:9464; "off" disables it.
	MetricsAddress string `yaml:"metricsAddress"`
	// Masquerade: pod traffic leaving the cluster CIDR is masqueraded to
	// the node's address. Default true.
	Masquerade *bool `yaml:"masquerade"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `yaml:"logLevel"`
	// MemoryLimit is the Go runtime's soft memory limit while the agent
	// hosts the embedded wireguard-go device: "auto" (default) keeps it a
	// small headroom above the agent's live data, "off" leaves the
	// collector to GOGC alone, a size ("128Mi") fixes it. Applied by the
	// binary (internal/memory); see docs/configuration.md.
	MemoryLimit memory.Limit `yaml:"memoryLimit"`
}

// UnderlayConfig says how this node is reached by the others.
type UnderlayConfig struct {
	// Interface is the underlay interface. Default: the interface of the
	// default route.
	Interface string `yaml:"interface"`
	// Address is this node's underlay address. Default: the first IPv4
	// address of Interface.
	Address string `yaml:"address"`
	// MTU overrides the detected underlay MTU. Default 0 (detect).
	MTU int `yaml:"mtu"`
}

// GossipConfig configures membership and leases.
type GossipConfig struct {
	// Port is the memberlist TCP/UDP port. Default 7946.
	Port int `yaml:"port"`
	// Seeds are host:port (or host, port defaults to Port) of other nodes.
	// Empty: this node starts a new cluster.
	Seeds []string `yaml:"seeds"`
	// KeyFile holds the base64 gossip encryption key. Required.
	KeyFile string `yaml:"keyFile"`
	// LeaseFile persists this node's lease across restarts.
	// Default /var/lib/weft/lease.json.
	LeaseFile string `yaml:"leaseFile"`
	// LeaseGrace is how long a dead node's lease is held before reuse.
	// Default 5m.
	LeaseGrace Duration `yaml:"leaseGrace"`
	// RejoinInterval is how often the agent joins seeds that are not live
	// members again, which heals a partition. Default 0: memberlist's
	// push/pull interval (60s).
	RejoinInterval Duration `yaml:"rejoinInterval"`
}

// TunnelConfig selects and configures the tunnel backend.
type TunnelConfig struct {
	// Backend is "wireguard" or "vxlan". Default wireguard.
	Backend string `yaml:"backend"`
	// Interface is the tunnel device name. Default weft0 / weft-vxlan.
	Interface string `yaml:"interface"`
	// Port is the tunnel UDP port. Default 51820 / 4789.
	Port int `yaml:"port"`
	// KeyFile is the WireGuard private key (created 0600 if absent).
	// Default /var/lib/weft/wireguard.key.
	KeyFile string `yaml:"keyFile"`
	// VNI is the VXLAN network identifier. Default 1.
	VNI int `yaml:"vni"`
}

// KubernetesConfig turns on Kubernetes mode: the node's podCIDR becomes its
// lease, other Nodes' InternalIPs seed gossip, peers whose Node object is
// deleted are withdrawn, and the agent annotates its own Node and sets its
// NetworkUnavailable condition. The data plane never waits for the API
// server.
type KubernetesConfig struct {
	// Enabled turns Kubernetes mode on. Default false.
	Enabled bool `yaml:"enabled"`
	// Kubeconfig is a kubeconfig file; empty means the in-cluster
	// ServiceAccount.
	Kubeconfig string `yaml:"kubeconfig"`
	// SyncTimeout bounds how long start-up waits for the first list of
	// Nodes before going on without it. Default 30s.
	SyncTimeout Duration `yaml:"syncTimeout"`
}

// Duration is a time.Duration written as "10s" in YAML.
type Duration = yamlfield.Duration

// Defaults for Config.
const (
	DefaultClusterID      = "default"
	DefaultClusterCIDR    = "10.244.0.0/16"
	DefaultBlockSize      = 24
	DefaultGossipPort     = 7946
	DefaultLeaseFile      = "/var/lib/weft/lease.json"
	DefaultLeaseGrace     = 5 * time.Minute
	DefaultBackend        = "wireguard"
	DefaultWGKeyFile      = "/var/lib/weft/wireguard.key"
	DefaultResync         = 10 * time.Second
	DefaultStatusSocket   = "/run/weft/weft.sock"
	DefaultMetricsAddress = "127.0.0.1:9464"
)

// LoadConfig reads a YAML config file. It does not apply defaults or
// validate; call Complete.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("failed to open config: %w", err)
	}
	defer f.Close()
	c, err := ParseConfig(f)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes YAML, rejecting unknown fields.
func ParseConfig(r io.Reader) (Config, error) {
	var c Config
	b, err := io.ReadAll(r)
	if err != nil {
		return c, fmt.Errorf("failed to read config: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return c, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("invalid config: %s", nameFields(b, err.Error()))
	}
	// An unset interval means the default, so Complete cannot tell an
	// explicit 0s from it: refuse that here, where the document shows it.
	for _, f := range []struct {
		path string
		d    time.Duration
		def  time.Duration
	}{
		{"resyncInterval", c.ResyncInterval.Duration, DefaultResync},
		{"policy.resyncInterval", c.Policy.ResyncInterval.Duration, DefaultPolicyResync},
	} {
		if line := fieldLine(b, f.path); line > 0 && f.d == 0 {
			return c, fmt.Errorf("invalid config: %s (line %d): 0s is shorter than 1s (leave it out for the default %s)", f.path, line, f.def)
		}
	}
	return c, nil
}

// fieldLine is the line of the key at path (dotted, through mappings) in
// the YAML document doc, or 0 if doc does not set it.
func fieldLine(doc []byte, path string) int {
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil || len(root.Content) == 0 {
		return 0
	}
	n := root.Content[0]
	line := 0
	for _, key := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return 0
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next, line = n.Content[i+1], n.Content[i].Line
			}
		}
		if next == nil {
			return 0
		}
		n = next
	}
	return line
}

var lineRef = regexp.MustCompile(`line (\d+):`)

// nameFields rewrites YAML's "line N:" references as the path of the field
// on that line, so that an error names the field: "gossip.leaseGrace (line 4):".
func nameFields(doc []byte, msg string) string {
	var root yaml.Node
	if yaml.Unmarshal(doc, &root) != nil {
		return msg
	}
	paths := map[int]string{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				paths[k.Line] = p
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if _, ok := paths[c.Line]; !ok {
					paths[c.Line] = p
				}
				walk(c, p)
			}
		}
	}
	walk(&root, "")
	return lineRef.ReplaceAllStringFunc(msg, func(m string) string {
		line, _ := strconv.Atoi(lineRef.FindStringSubmatch(m)[1])
		if p, ok := paths[line]; ok {
			return fmt.Sprintf("%s (line %d):", p, line)
		}
		return m
	})
}

// Complete fills defaults and validates, naming the field of the first
// problem found.
func (c *Config) Complete() error {
	if c.NodeName == "" {
		c.NodeName = os.Getenv("NODE_NAME")
	}
	if c.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("nodeName: not set and the host name is unknown: %w", err)
		}
		c.NodeName = h
	}
	setDefault(&c.ClusterID, DefaultClusterID)
	setDefault(&c.ClusterCIDR, DefaultClusterCIDR)
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.Gossip.Port == 0 {
		c.Gossip.Port = DefaultGossipPort
	}
	setDefault(&c.Gossip.LeaseFile, DefaultLeaseFile)
	if c.Gossip.LeaseGrace.Duration == 0 {
		c.Gossip.LeaseGrace.Duration = DefaultLeaseGrace
	}
	setDefault(&c.Tunnel.Backend, DefaultBackend)
	if c.ResyncInterval.Duration == 0 {
		c.ResyncInterval.Duration = DefaultResync
	}
	if c.Kubernetes.SyncTimeout.Duration == 0 {
		c.Kubernetes.SyncTimeout.Duration = 30 * time.Second
	}
	setDefault(&c.StateFile, nodestate.DefaultPath)
	setDefault(&c.StatusSocket, DefaultStatusSocket)
	setDefault(&c.MetricsAddress, DefaultMetricsAddress)
	setDefault(&c.LogLevel, "info")
	if c.Masquerade == nil {
		t := true
		c.Masquerade = &t
	}
	if err := c.validate(); err != nil {
		return err
	}
	if err := c.DNS.complete(); err != nil {
		return err
	}
	if err := c.Peering.complete(c); err != nil {
		return err
	}
	if err := c.Services.Complete(); err != nil {
		return err
	}
	return c.Policy.complete()
}

func (c *Config) validate() error {
	if len(c.NodeName) > 63 || strings.ContainsAny(c.NodeName, " \t\n/") {
		return fmt.Errorf("nodeName: %q is not a valid node name", c.NodeName)
	}
	cidr, err := netip.ParsePrefix(c.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("clusterCIDR: %q is not a CIDR: %w", c.ClusterCIDR, err)
	}
	if !cidr.Addr().Is4() {
		return fmt.Errorf("clusterCIDR: %q: only IPv4 is supported", c.ClusterCIDR)
	}
	if cidr.Masked() != cidr {
		return fmt.Errorf("clusterCIDR: %q has host bits set (did you mean %s?)", c.ClusterCIDR, cidr.Masked())
	}
	if c.BlockSize <= cidr.Bits() || c.BlockSize > 30 {
		return fmt.Errorf("blockSize: %d must be longer than the clusterCIDR prefix /%d and at most 30", c.BlockSize, cidr.Bits())
	}
	if c.Underlay.Address != "" {
		a, err := netip.ParseAddr(c.Underlay.Address)
		if err != nil {
			return fmt.Errorf("underlay.address: %q is not an IP address", c.Underlay.Address)
		}
		if cidr.Contains(a) {
			return fmt.Errorf("underlay.address: %s lies inside clusterCIDR %s", a, cidr)
		}
	}
	if c.Underlay.MTU != 0 && (c.Underlay.MTU < 1280 || c.Underlay.MTU > 65535) {
		return fmt.Errorf("underlay.mtu: %d is out of range 1280-65535", c.Underlay.MTU)
	}
	if err := validPort("gossip.port", c.Gossip.Port); err != nil {
		return err
	}
	for i, s := range c.Gossip.Seeds {
		if _, err := c.seedAddr(s); err != nil {
			return fmt.Errorf("gossip.seeds[%d]: %w", i, err)
		}
	}
	if c.Gossip.KeyFile == "" {
		return errors.New("gossip.keyFile: required (generate one with `weft keygen --gossip FILE`)")
	}
	if c.Gossip.LeaseGrace.Duration < 0 {
		return fmt.Errorf("gossip.leaseGrace: %s is negative", c.Gossip.LeaseGrace)
	}
	if c.Gossip.RejoinInterval.Duration < 0 {
		return fmt.Errorf("gossip.rejoinInterval: %s is negative", c.Gossip.RejoinInterval)
	}
	switch c.Tunnel.Backend {
	case "wireguard":
		setDefault(&c.Tunnel.Interface, "weft0")
		if c.Tunnel.Port == 0 {
			c.Tunnel.Port = 51820
		}
		setDefault(&c.Tunnel.KeyFile, DefaultWGKeyFile)
	case "vxlan":
		setDefault(&c.Tunnel.Interface, "weft-vxlan")
		if c.Tunnel.Port == 0 {
			c.Tunnel.Port = 4789
		}
		if c.Tunnel.VNI == 0 {
			c.Tunnel.VNI = 1
		}
		if c.Tunnel.VNI < 0 || c.Tunnel.VNI > 1<<24-1 {
			return fmt.Errorf("tunnel.vni: %d is out of range 1-16777215", c.Tunnel.VNI)
		}
	default:
		return fmt.Errorf("tunnel.backend: %q is not one of wireguard, vxlan", c.Tunnel.Backend)
	}
	if len(c.Tunnel.Interface) > 15 {
		return fmt.Errorf("tunnel.interface: %q is longer than 15 characters", c.Tunnel.Interface)
	}
	if err := validPort("tunnel.port", c.Tunnel.Port); err != nil {
		return err
	}
	if c.ResyncInterval.Duration < time.Second {
		return fmt.Errorf("resyncInterval: %s is shorter than 1s", c.ResyncInterval)
	}
	if c.MetricsAddress != "off" {
		if _, err := netip.ParseAddrPort(c.MetricsAddress); err != nil {
			return fmt.Errorf("metricsAddress: %q is not ip:port or \"off\"", c.MetricsAddress)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("logLevel: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	return nil
}

// seedAddr normalises a seed to host:port, adding the gossip port if absent.
func (c *Config) seedAddr(s string) (string, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, uint16(c.Gossip.Port)).String(), nil
	}
	return "", fmt.Errorf("%q is not ip or ip:port", s)
}

// ClusterPrefix returns the parsed cluster CIDR; valid after Complete.
func (c *Config) ClusterPrefix() netip.Prefix {
	p, _ := netip.ParsePrefix(c.ClusterCIDR)
	return p
}

func validPort(field string, p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%s: %d is out of range 1-65535", field, p)
	}
	return nil
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}
