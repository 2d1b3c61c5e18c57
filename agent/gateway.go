package agent

// The peering data plane. Every reconcile, the loop elects the cluster's
// active gateway from gossip (peering.ElectGateway), publishes whether this
// node holds the role, chooses which gateway of each remote cluster to send
// to (from the peering device's counters), plans (peering.PlanPeering) and
// applies: the peering WireGuard device on gateway-eligible nodes, the
// remote CIDRs on the overlay peer that is the active gateway, masquerade
// exemptions and unreachable routes. docs/peering.md describes the rules.

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/weftnet/weft/gossip"
	"github.com/weftnet/weft/nodestate"
	"github.com/weftnet/weft/peering"
	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/tunnel/unreachable"
	"github.com/weftnet/weft/tunnel/wireguard"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// DefaultPeeringInterface is the peering WireGuard device of a gateway.
const DefaultPeeringInterface = "weftpeer0"

// RemoteClusterStatus is one peered cluster as this node sees it.
type RemoteClusterStatus struct {
	Name string `json:"name"`
	// Gateway is the remote gateway this cluster sends to (active gateway
	// only), Endpoint its address.
	Gateway       string    `json:"gateway,omitempty"`
	Endpoint      string    `json:"endpoint,omitempty"`
	LastHandshake time.Time `json:"lastHandshake,omitzero"`
	RxBytes       int64     `json:"rxBytes,omitempty"`
	TxBytes       int64     `json:"txBytes,omitempty"`
	// Unreachable says why the cluster's networks are refused now.
	Unreachable string `json:"unreachable,omitempty"`
}

// remoteChoice is the gateway chosen for one remote cluster and since when.
type remoteChoice struct {
	node  string
	since time.Time
}

// gatewayView is the election's outcome for this reconcile.
type gatewayView struct {
	active  string     // the cluster's active gateway, "" for none
	overlay netip.Addr // its address in its pod block
}

// electGateway computes the active gateway from this node and the live
// members.
func electGateway(self gossip.Meta, members []gossip.Meta) gatewayView {
	cands := make([]peering.Member, 0, len(members)+1)
	cands = append(cands, peering.Member{Name: self.Name, Eligible: self.GatewayEligible, Alive: true, Active: self.GatewayActive})
	for _, m := range members {
		cands = append(cands, peering.Member{Name: m.Name, Eligible: m.GatewayEligible, Alive: true, Active: m.GatewayActive})
	}
	v := gatewayView{active: peering.ElectGateway(cands)}
	switch {
	case v.active == "":
	case v.active == self.Name && self.PodCIDR.IsValid():
		v.overlay = nodestate.GatewayFor(self.PodCIDR)
	default:
		for _, m := range members {
			if m.Name == v.active && m.PodCIDR.IsValid() {
				v.overlay = nodestate.GatewayFor(m.PodCIDR)
			}
		}
	}
	return v
}

// planGateway elects, publishes this node's role and plans peering for
// this reconcile; it returns the plan and the active gateway. The plan is
// zero when peering is off.
func (a *Agent) planGateway(members []gossip.Meta) (peering.Plan, string) {
	ps := a.peering
	if ps == nil {
		return peering.Plan{}, ""
	}
	self := a.gossip.Self()
	if elig := a.gatewayEligible(); elig != self.GatewayEligible {
		a.log.Info("peering gateway eligibility changed", "eligible", elig)
		if elig && ps.device == nil {
			if err := a.openPeeringDevice(); err != nil {
				a.log.Error("failed to open the peering device; not eligible", "err", err)
				elig = false
			}
		}
		if elig != self.GatewayEligible {
			if err := a.gossip.UpdateMeta(func(m *gossip.Meta) { m.GatewayEligible = elig }); err != nil {
				a.log.Warn("failed to publish gateway eligibility", "err", err)
			}
			self = a.gossip.Self()
		}
	}
	v := electGateway(self, members)
	if want := v.active == self.Name; want != self.GatewayActive {
		a.log.Info("peering gateway role changed", "active", want, "activeGateway", v.active)
		if err := a.gossip.UpdateMeta(func(m *gossip.Meta) { m.GatewayActive = want }); err != nil {
			a.log.Warn("failed to publish the gateway role", "err", err)
		}
	}
	now := time.Now()
	remote := map[string]string{}
	if v.active == self.Name && ps.device != nil {
		remote = ps.chooseRemotes(now)
	}
	view := peering.View{
		Node:                 self.Name,
		Overlay:              a.backend.Name(),
		PodGateway:           nodestate.GatewayFor(self.PodCIDR),
		ActiveGateway:        v.active,
		ActiveGatewayOverlay: v.overlay,
		RemoteGateways:       remote,
	}
	plan := peering.PlanPeering(view, ps.peers)
	ps.activeGateway, ps.plan = v.active, plan
	return plan, v.active
}

// chooseRemotes reads the peering device's counters and chooses the
// gateway to send to in every remote cluster (peering.ChooseRemoteGateway).
func (ps *peeringState) chooseRemotes(now time.Time) map[string]string {
	var counters []peering.GatewayCounters
	if wps, err := ps.device.Peers(); err == nil {
		for _, p := range wps {
			counters = append(counters, peering.GatewayCounters{PublicKey: p.PublicKey, LastHandshake: p.LastHandshakeTime, RxBytes: p.ReceiveBytes})
		}
	}
	ages := ps.liveness.Observe(now, counters)
	out := make(map[string]string, len(ps.peers))
	next := make(map[string]remoteChoice, len(ps.peers))
	for _, peer := range ps.peers {
		cur := ps.remote[peer.Name]
		choice := peering.ChooseRemoteGateway(peer.Gateways, peering.RemoteState{
			Current:   cur.node,
			Since:     now.Sub(cur.since),
			LastHeard: peering.HeardByNode(peer, ages),
		})
		if choice != cur.node {
			cur = remoteChoice{node: choice, since: now}
		}
		next[peer.Name] = cur
		out[peer.Name] = choice
	}
	ps.remote = next
	return out
}

// withGatewayExtra adds the remote CIDRs to the overlay peer that is the
// active gateway.
func withGatewayExtra(peers []tunnel.Peer, active string, extra []netip.Prefix) []tunnel.Peer {
	if len(extra) == 0 {
		return peers
	}
	for i := range peers {
		if peers[i].Name == active {
			peers[i].Extra = slices.Clone(extra)
		}
	}
	return peers
}

// applyGateway applies the parts of plan outside the overlay backend: the
// peering device (emptied on a node that is not the active gateway) and
// the unreachable routes.
func (a *Agent) applyGateway(plan peering.Plan) error {
	ps := a.peering
	if ps == nil {
		return nil
	}
	var errs []error
	if ps.device != nil {
		var peers []tunnel.WGPeer
		for _, p := range plan.WGPeers {
			peers = append(peers, p.WGPeer)
		}
		if err := ps.device.Apply(peers, plan.DeviceRoutes); err != nil {
			errs = append(errs, err)
		}
	}
	dsts := make([]netip.Prefix, 0, len(plan.Unreachable))
	for _, u := range plan.Unreachable {
		dsts = append(dsts, u.Dst)
	}
	if err := unreachable.Sync(dsts); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// gatewayEligible: peering.gateway in the config, or (Kubernetes mode) the
// node's Node labelled kube.LabelPeeringGateway=true.
func (a *Agent) gatewayEligible() bool {
	if a.peering == nil {
		return false
	}
	if a.cfg.Peering.Gateway {
		return true
	}
	if a.kube == nil {
		return false
	}
	n, ok := a.kube.Node(a.cfg.NodeName)
	return ok && n.PeeringGateway
}

// openPeeringDevice creates a gateway-eligible node's peering device and
// reports its identity in the status.
func (a *Agent) openPeeringDevice() error {
	ps := a.peering
	if ps == nil || ps.device != nil || !a.gatewayEligible() {
		return nil
	}
	key, err := wireguard.LoadOrCreateKey(a.cfg.Peering.KeyFile)
	if err != nil {
		return err
	}
	dev, err := wireguard.OpenDevice(wireguard.DeviceConfig{
		Name:    a.cfg.Peering.Interface,
		Port:    a.cfg.Peering.Port,
		KeyFile: a.cfg.Peering.KeyFile,
		Address: peering.TunnelAddr(key.PublicKey()),
		// WireGuard's overhead whatever the overlay: over VXLAN, the
		// overlay's MTU is larger and the gateway answers oversized
		// packets with "fragmentation needed".
		MTU:    a.under.MTU - wireguard.Overhead(a.under.Address),
		Logger: a.base.With("component", "peering", "node", a.cfg.NodeName),
	})
	if err != nil {
		return err
	}
	ps.device = dev
	ps.status.Gateway, ps.status.PublicKey, ps.status.Port = true, key.PublicKey().String(), a.cfg.Peering.Port
	return nil
}

// closePeering removes, when leaving, the peering device and the
// unreachable routes; a plain stop keeps them, as the overlay is kept.
func (a *Agent) closePeering(leave bool) {
	ps := a.peering
	if ps == nil {
		return
	}
	if ps.device != nil {
		if err := ps.device.Close(leave); err != nil {
			a.log.Warn("peering device close", "err", err)
		}
	}
	if leave {
		if err := unreachable.Sync(nil); err != nil {
			a.log.Warn("unreachable routes removal", "err", err)
		}
	}
}

// remoteStatus reports every remote cluster, with the chosen gateway's
// counters read from the device.
func (ps *peeringState) remoteStatus() []RemoteClusterStatus {
	byKey := map[wgtypes.Key]wgtypes.Peer{}
	if ps.device != nil && ps.plan.Gateway {
		if wps, err := ps.device.Peers(); err == nil {
			for _, p := range wps {
				byKey[p.PublicKey] = p
			}
		}
	}
	out := make([]RemoteClusterStatus, 0, len(ps.peers))
	for _, peer := range ps.peers {
		st := RemoteClusterStatus{Name: peer.Name}
		for _, u := range ps.plan.Unreachable {
			if u.Cluster == peer.Name {
				st.Unreachable = u.Reason
			}
		}
		for _, wp := range ps.plan.WGPeers {
			if wp.Cluster != peer.Name || !wp.Chosen() {
				continue
			}
			st.Gateway, st.Endpoint = wp.Name, wp.Endpoint.String()
			if p, ok := byKey[wp.PublicKey]; ok {
				if p.LastHandshakeTime.After(time.Unix(0, 0)) {
					st.LastHandshake = p.LastHandshakeTime
				}
				st.RxBytes, st.TxBytes = p.ReceiveBytes, p.TransmitBytes
			}
		}
		out = append(out, st)
	}
	return out
}
