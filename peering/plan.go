package peering

// Planning is pure: from this node's view and the validated peers it
// computes the data-plane entries peering needs on this node. The agent
// applies them with the tunnel package's setters and diffs.

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/weftnet/weft/tunnel"
)

// Overlay backends, as in the agent's tunnel.backend.
const (
	OverlayWireGuard = "wireguard"
	OverlayVXLAN     = "vxlan"
)

// View is what one node knows when it plans.
type View struct {
	// Node is this node's name.
	Node string
	// Overlay is the cluster's tunnel backend, OverlayWireGuard or
	// OverlayVXLAN: how other nodes reach the active gateway.
	Overlay string
	// PodGateway is this node's own address in its pod block
	// (tunnel.Local.Gateway), the source address of the routes.
	PodGateway netip.Addr
	// ActiveGateway is the elected gateway (ElectGateway), "" for none.
	ActiveGateway string
	// ActiveGatewayOverlay is the active gateway's address in its pod
	// block, valid once it holds a lease: without it the overlay has no
	// way to the gateway yet.
	ActiveGatewayOverlay netip.Addr
	// RemoteGateways maps a remote cluster's name to the gateway node
	// chosen for it (ChooseRemoteGateway). Absent or unknown: the first
	// in its bundle.
	RemoteGateways map[string]string
}

// Plan is the desired peering state of one node.
type Plan struct {
	// Gateway is true on the active gateway.
	Gateway bool
	// WGPeers are the peering WireGuard device's peers, on the active
	// gateway only: every gateway of every remote cluster, so that
	// whichever is active there can complete a handshake. Only the chosen
	// gateway of each cluster carries AllowedIPs, exactly the cluster's
	// declared pod and service CIDRs (WireGuard allows a prefix on one
	// peer only, and drops packets from sources outside a peer's
	// AllowedIPs). Other nodes have none: a gateway that is not active
	// must never complete a handshake, or the remote side would choose it.
	WGPeers []WGPeer
	// DeviceRoutes send the remote CIDRs into the peering device (active
	// gateway only).
	DeviceRoutes []tunnel.Route
	// ViaGateway (other nodes only) are the remote CIDRs the overlay
	// sends to the active gateway: extra networks of its overlay peer
	// (tunnel.Peer.Extra), routed to it over VXLAN or WireGuard and, over
	// WireGuard, in its AllowedIPs so that the replies are accepted.
	ViaGateway []netip.Prefix
	// NoMasquerade are every remote CIDR: traffic to them keeps its pod
	// source address, which is what the remote side accepts.
	NoMasquerade []netip.Prefix
	// Unreachable are remote CIDRs with no way there, with the reason.
	// Install them as unreachable routes so that the traffic is refused
	// rather than masqueraded out of the default route.
	Unreachable []Unreachable
}

// WGPeer is one peer of the peering WireGuard device. Its AllowedIPs
// always hold the gateway's tunnel address (TunnelAddr), and on the chosen
// gateway the cluster's declared CIDRs; PersistentKeepalive is set on the
// chosen gateway only.
type WGPeer struct {
	// Cluster is the remote cluster; WGPeer.Name is the gateway node.
	Cluster string
	tunnel.WGPeer
}

// Chosen reports whether this is the gateway its cluster sends to: the one
// whose AllowedIPs carry the cluster's networks besides its tunnel address.
func (p WGPeer) Chosen() bool { return len(p.AllowedIPs) > 1 }

// Unreachable is a remote CIDR that cannot be routed now.
type Unreachable struct {
	Dst     netip.Prefix
	Cluster string
	Reason  string
}

// PlanPeering computes this node's plan. peers are as Validate returned
// them; the plan is sorted by cluster name, CIDRs in declared order (pod,
// then service).
func PlanPeering(v View, peers []Peer) Plan {
	peers = slices.Clone(peers)
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	p := Plan{Gateway: v.ActiveGateway != "" && v.ActiveGateway == v.Node}
	src := func(dst netip.Prefix) netip.Addr {
		if v.PodGateway.IsValid() && v.PodGateway.Is4() == dst.Addr().Is4() {
			return v.PodGateway
		}
		return netip.Addr{}
	}
	for _, peer := range peers {
		cidrs := peer.CIDRs()
		p.NoMasquerade = append(p.NoMasquerade, cidrs...)
		unreachable := func(reason string) {
			for _, c := range cidrs {
				p.Unreachable = append(p.Unreachable, Unreachable{Dst: c, Cluster: peer.Name, Reason: reason})
			}
		}
		switch {
		case len(peer.Gateways) == 0:
			unreachable("its bundle lists no gateway")
		case v.ActiveGateway == "":
			unreachable("this cluster has no live eligible gateway")
		case p.Gateway:
			chosen := chosenGateway(peer, v.RemoteGateways[peer.Name])
			for _, g := range peer.Gateways {
				taddr := netip.PrefixFrom(TunnelAddr(g.PublicKey), 128)
				wp := WGPeer{Cluster: peer.Name, WGPeer: tunnel.WGPeer{Name: g.Node, PublicKey: g.PublicKey, Endpoint: g.Endpoint,
					AllowedIPs: []netip.Prefix{taddr}}}
				if g.Node == chosen {
					wp.AllowedIPs = append(slices.Clone(cidrs), taddr)
					wp.PersistentKeepalive = peer.PersistentKeepalive
				}
				p.WGPeers = append(p.WGPeers, wp)
				p.DeviceRoutes = append(p.DeviceRoutes, tunnel.Route{Dst: taddr})
			}
			for _, c := range cidrs {
				p.DeviceRoutes = append(p.DeviceRoutes, tunnel.Route{Dst: c, Src: src(c)})
			}
		case !v.ActiveGatewayOverlay.IsValid():
			unreachable("the active gateway " + v.ActiveGateway + " has no pod block yet")
		default:
			for _, c := range cidrs {
				if v.Overlay == OverlayVXLAN && v.ActiveGatewayOverlay.Is4() != c.Addr().Is4() {
					p.Unreachable = append(p.Unreachable, Unreachable{Dst: c, Cluster: peer.Name,
						Reason: "the overlay does not carry this address family"})
					continue
				}
				p.ViaGateway = append(p.ViaGateway, c)
			}
		}
	}
	return p
}

// chosenGateway returns want if the peer lists it, else its first gateway.
func chosenGateway(peer Peer, want string) string {
	for _, g := range peer.Gateways {
		if g.Node == want {
			return want
		}
	}
	return peer.Gateways[0].Node
}
