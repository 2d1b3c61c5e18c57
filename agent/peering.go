package agent

// Multi-cluster peering: the agent reads and validates the peering file
// (keeping the last valid one in force), creates this node's peering key
// when it is gateway-eligible, and reports both in its status, from which
// `weft peering export` builds the bundle. gateway.go runs the data plane
// (docs/peering.md).

import (
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/weftnet/weft/peering"
	"github.com/weftnet/weft/tunnel/wireguard"
)

// PeeringConfig is the peering: section. Peering is on when File is set.
type PeeringConfig struct {
	// File is the peering file (a path, e.g. the mounted key of the peering
	// ConfigMap). Empty: peering off.
	File string `yaml:"file"`
	// ClusterName is this cluster's name in its bundle, a DNS label.
	// Default: clusterID.
	ClusterName string `yaml:"clusterName"`
	// ServiceCIDRs are this cluster's service networks: exported in the
	// bundle, and no peer's networks may overlap them. Default none.
	ServiceCIDRs []string `yaml:"serviceCIDRs"`
	// Gateway marks this node gateway-eligible. Default false.
	Gateway bool `yaml:"gateway"`
	// Port is the peering WireGuard port of a gateway. Default 51821.
	Port int `yaml:"port"`
	// KeyFile is a gateway's peering WireGuard private key, created 0600
	// when absent. Default /var/lib/weft/peering.key.
	KeyFile string `yaml:"keyFile"`
	// Interface is a gateway's peering WireGuard device. Default weftpeer0.
	Interface string `yaml:"interface"`
	// ClustersetIPRange is where the active gateway takes the clusterset
	// IPs of imported Services from (an IPv4 prefix, /8 to /30). It must
	// not overlap clusterCIDR, serviceCIDRs or a peer's networks; the
	// addresses are this cluster's, so every cluster may use the same
	// range. Default 10.255.0.0/16 (not used where it overlaps this
	// cluster's networks).
	ClustersetIPRange string `yaml:"clustersetIPRange"`
}

// Defaults for PeeringConfig.
const (
	DefaultPeeringPort    = 51821
	DefaultPeeringKeyFile = "/var/lib/weft/peering.key"
)

// PeeringStatus is this cluster's peering identity and the file's state.
type PeeringStatus struct {
	ClusterName  string   `json:"clusterName"`
	ClusterID    string   `json:"clusterID"`
	PodCIDRs     []string `json:"podCIDRs"`
	ServiceCIDRs []string `json:"serviceCIDRs,omitempty"`
	Zone         string   `json:"zone"`
	// Gateway: this node is gateway-eligible; then PublicKey and Port are
	// its peering identity.
	Gateway   bool   `json:"gateway"`
	PublicKey string `json:"publicKey,omitempty"`
	Port      int    `json:"port,omitempty"`
	File      string `json:"file"`
	// Peers are the remote clusters of the file in force.
	Peers []string `json:"peers"`
	// ActiveGateway is this cluster's active gateway as this node elects
	// it, "" when no eligible node is alive.
	ActiveGateway string `json:"activeGateway"`
	// Remotes are the peered clusters' state.
	Remotes []RemoteClusterStatus `json:"remotes,omitempty"`
	// Clusterset is the export exchange, on the active gateway in
	// Kubernetes mode.
	Clusterset *ClustersetStatus `json:"clusterset,omitempty"`
	// LastError is why the file was last refused (the previous one stays
	// in force); empty when the last read was accepted.
	LastError string    `json:"lastError,omitempty"`
	LastLoad  time.Time `json:"lastLoad,omitzero"`
}

func (p *PeeringConfig) complete(c *Config) error {
	if p.File == "" {
		return nil
	}
	setDefault(&p.ClusterName, c.ClusterID)
	if p.Port == 0 {
		p.Port = DefaultPeeringPort
	}
	setDefault(&p.KeyFile, DefaultPeeringKeyFile)
	setDefault(&p.Interface, DefaultPeeringInterface)
	if p.Interface == c.Tunnel.Interface {
		return fmt.Errorf("peering.interface: %q is also tunnel.interface; the peering device needs its own", p.Interface)
	}
	l, err := p.local(c)
	if err != nil {
		return err
	}
	if err := p.completeClustersetIPRange(l); err != nil {
		return err
	}
	if err := validPort("peering.port", p.Port); err != nil {
		return err
	}
	if p.Gateway && c.Tunnel.Backend == "wireguard" && p.Port == c.Tunnel.Port {
		return fmt.Errorf("peering.port: %d is also tunnel.port; the peering device needs its own", p.Port)
	}
	return nil
}

// local is this cluster as peering validation needs it.
func (p *PeeringConfig) local(c *Config) (peering.Local, error) {
	l := peering.Local{Name: p.ClusterName, ID: c.ClusterID}
	if !peering.IsDNSLabel(p.ClusterName) {
		return l, fmt.Errorf("peering.clusterName: %q is not a DNS label (lowercase letters, digits and '-', at most 63)", p.ClusterName)
	}
	if !peering.IsDNSLabel(c.ClusterID) {
		return l, fmt.Errorf("clusterID: %q must be a DNS label when peering is on (it names the cluster in clusterset DNS)", c.ClusterID)
	}
	pod, err := netip.ParsePrefix(c.ClusterCIDR)
	if err != nil {
		return l, fmt.Errorf("clusterCIDR: %q is not a CIDR", c.ClusterCIDR)
	}
	l.PodCIDRs = []netip.Prefix{pod.Masked()}
	for i, s := range p.ServiceCIDRs {
		svc, err := netip.ParsePrefix(s)
		if err != nil {
			return l, fmt.Errorf("peering.serviceCIDRs[%d]: %q is not a CIDR", i, s)
		}
		if svc.Masked() != svc {
			return l, fmt.Errorf("peering.serviceCIDRs[%d]: %s has host bits set (did you mean %s?)", i, svc, svc.Masked())
		}
		if svc.Overlaps(pod) {
			return l, fmt.Errorf("peering.serviceCIDRs[%d]: %s overlaps clusterCIDR %s", i, svc, pod)
		}
		l.ServiceCIDRs = append(l.ServiceCIDRs, svc)
	}
	return l, nil
}

// peeringState is the agent's peering part; the loop owns it.
type peeringState struct {
	loader *peering.Loader
	status PeeringStatus
	peers  []peering.Peer // in force

	device        *wireguard.Device // gateway-eligible nodes only
	liveness      peering.Liveness
	remote        map[string]remoteChoice // remote cluster → chosen gateway
	activeGateway string
	plan          peering.Plan      // last applied
	clusterset    *ClustersetStatus // at the last reconcile, active gateway only

	// The export exchange (clustersetloop.go), run beside the loop.
	serving atomic.Bool
	pulling atomic.Bool
	pullErr atomic.Pointer[string] // the last pull's error, "" for none
}

// startPeering creates a gateway's peering key and loads the peering file
// for the first time. It returns nil when peering is off. A bad or missing
// file is reported in status, never fatal.
func startPeering(c *Config, log *slog.Logger) (*peeringState, error) {
	p := c.Peering
	if p.File == "" {
		return nil, nil
	}
	local, err := p.local(c)
	if err != nil {
		return nil, err // Complete checked it
	}
	zone := c.DNS.Zone
	if zone == "" {
		zone = peering.DefaultZone
	}
	st := &peeringState{
		loader: peering.NewLoader(p.File, local, log),
		status: PeeringStatus{ClusterName: p.ClusterName, ClusterID: c.ClusterID, PodCIDRs: prefixStrings(local.PodCIDRs),
			ServiceCIDRs: prefixStrings(local.ServiceCIDRs), Zone: zone, Gateway: p.Gateway, File: p.File},
	}
	if p.Gateway {
		key, err := wireguard.LoadOrCreateKey(p.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("peering.keyFile: %w", err)
		}
		st.status.PublicKey, st.status.Port = key.PublicKey().String(), p.Port
	}
	st.reload(time.Now())
	return st, nil
}

// startPeering sets up a.peering (nil when peering is off) and publishes
// its status.
func (a *Agent) startPeering() error {
	ps, err := startPeering(&a.cfg, a.base.With("node", a.cfg.NodeName))
	if err != nil || ps == nil {
		return err
	}
	a.peering = ps
	snap := ps.snapshot()
	a.setStatus(func(s *Status) { s.Peering = snap })
	return nil
}

// reloadPeering re-reads the peering file on the resync tick.
func (a *Agent) reloadPeering() {
	if a.peering == nil {
		return
	}
	a.peering.reload(time.Now())
	snap := a.peering.snapshot()
	a.setStatus(func(s *Status) { s.Peering = snap })
}

// reload re-reads the peering file; a refused file keeps the previous
// peers in force and its error is reported.
func (s *peeringState) reload(now time.Time) {
	peers, _, err := s.loader.Load()
	s.peers = peers
	s.status.Peers = make([]string, len(peers))
	for i, p := range peers {
		s.status.Peers[i] = p.Name
	}
	s.status.LastError = ""
	if err != nil {
		s.status.LastError = err.Error()
	}
	s.status.LastLoad = now
}

// snapshot is a copy of the status that shares nothing with s.
func (s *peeringState) snapshot() *PeeringStatus {
	st := s.status
	st.PodCIDRs = append([]string(nil), st.PodCIDRs...)
	st.ServiceCIDRs = append([]string(nil), st.ServiceCIDRs...)
	st.Peers = append([]string(nil), st.Peers...)
	st.ActiveGateway = s.activeGateway
	st.Remotes = s.remoteStatus()
	if s.clusterset != nil {
		cs := *s.clusterset
		cs.Imported = maps.Clone(cs.Imported)
		st.Clusterset = &cs
	}
	return &st
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
