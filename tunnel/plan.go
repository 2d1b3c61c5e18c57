package tunnel

// Planning is pure: from Local and the peer table it computes the routes,
// neighbour/FDB entries and WireGuard peers a backend should install. No I/O
// happens here; backends apply the plan with thin, idempotent setters.

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/weftnet/weft/nodestate"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// RouteProtocol tags every route weft installs (rtm_protocol, shown as
// "proto 87" by ip-route). Backends only ever delete routes that carry it.
const RouteProtocol = 0x57

// Route is one route to a peer's pod block through the tunnel device.
type Route struct {
	Dst netip.Prefix
	// Via is the on-link next hop (VXLAN: the peer's gateway). Zero means
	// the block is reached directly on the device (WireGuard, scope link).
	Via netip.Addr
	// Src is the preferred source address (the local gateway).
	Src netip.Addr
	// LinkIndex is the device. Plans leave it 0; appliers fill it in before
	// diffing against the kernel.
	LinkIndex int
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String() + " onlink"
	}
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	return s
}

// Neighbor is a permanent neighbour (ARP/NDP) entry on the VXLAN device:
// the peer's gateway has the peer's VTEP MAC.
type Neighbor struct {
	IP  netip.Addr
	MAC net.HardwareAddr
}

// FDBEntry is a forwarding database entry on the VXLAN device: frames for
// MAC are encapsulated to the underlay address Dst.
type FDBEntry struct {
	MAC net.HardwareAddr
	Dst netip.Addr
}

// WGPeer is one WireGuard peer as it should be configured.
type WGPeer struct {
	Name       string // for logs only; WireGuard knows peers by key
	PublicKey  wgtypes.Key
	Endpoint   netip.AddrPort
	AllowedIPs []netip.Prefix
	// PersistentKeepalive is the keepalive interval; 0 is off.
	PersistentKeepalive time.Duration
	// Boot is Peer.Boot, carried for the backend; not device state.
	Boot uint32
}

// SkippedPeer is a peer the planner refused to route, with the reason.
type SkippedPeer struct {
	Name   string
	Reason string
}

func (s SkippedPeer) String() string { return s.Name + ": " + s.Reason }

// Plan is the desired data-plane state for one backend.
type Plan struct {
	Routes    []Route
	Neighbors []Neighbor // VXLAN only
	FDB       []FDBEntry // VXLAN only
	WGPeers   []WGPeer   // WireGuard only
	Skipped   []SkippedPeer
}

// PlanWireGuard computes the WireGuard peers (AllowedIPs = the peer's pod
// block, endpoint = UnderlayIP:Port, or defaultPort when the peer published
// none) and one route per peer block on the device, with the local gateway
// as source. Unusable peers are left out and listed in Plan.Skipped.
func PlanWireGuard(local Local, peers []Peer, defaultPort int) Plan {
	var p Plan
	usable, skipped := usablePeers(local, peers, func(peer Peer) string {
		if peer.PublicKey == "" {
			return "no WireGuard public key"
		}
		if _, err := wgtypes.ParseKey(peer.PublicKey); err != nil {
			return fmt.Sprintf("invalid WireGuard public key: %v", err)
		}
		return ""
	}, func(peer Peer) string { return peer.PublicKey }, "public key")
	p.Skipped = skipped
	// Sized up front: at 1,000 peers a resync plans every interval, and
	// slices grown by doubling were most of its garbage.
	nRoutes := 0
	for _, peer := range usable {
		nRoutes += 1 + len(peer.Extra)
	}
	p.WGPeers = make([]WGPeer, 0, len(usable))
	p.Routes = make([]Route, 0, nRoutes)
	allowedIPs := make([]netip.Prefix, 0, nRoutes) // every peer's AllowedIPs, one backing array
	for _, peer := range usable {
		key, _ := wgtypes.ParseKey(peer.PublicKey) // validated above
		port := peer.Port
		if port == 0 {
			port = defaultPort
		}
		start := len(allowedIPs)
		allowedIPs = append(allowedIPs, peer.PodCIDR.Masked())
		allowedIPs = append(allowedIPs, peer.Extra...)
		allowed := allowedIPs[start:len(allowedIPs):len(allowedIPs)]
		p.WGPeers = append(p.WGPeers, WGPeer{
			Name:       peer.Name,
			PublicKey:  key,
			Endpoint:   netip.AddrPortFrom(peer.UnderlayIP.Unmap(), uint16(port)),
			AllowedIPs: allowed,
			Boot:       peer.Boot,
		})
		for _, dst := range allowed {
			p.Routes = append(p.Routes, Route{Dst: dst, Src: srcFor(local, dst)})
		}
	}
	return p
}

// PlanVXLAN computes, per peer, flannel-style: a permanent neighbour
// (peer gateway → peer VTEP MAC), an FDB entry (peer VTEP MAC → peer
// underlay address) and a route to the peer's block via its gateway,
// on-link, with the local gateway as source. The peer gateway is the first
// usable address of its block (nodestate.GatewayFor).
func PlanVXLAN(local Local, peers []Peer) Plan {
	var p Plan
	usable, skipped := usablePeers(local, peers, func(peer Peer) string {
		mac := peer.VTEPMAC
		switch {
		case len(mac) == 0:
			return "no VTEP MAC"
		case len(mac) != 6:
			return fmt.Sprintf("VTEP MAC %v is not a 48-bit MAC", mac)
		case mac[0]&1 == 1:
			return fmt.Sprintf("VTEP MAC %v is a multicast address", mac)
		case bytes.Equal(mac, make([]byte, 6)):
			return "VTEP MAC is all zeros"
		}
		return ""
	}, func(peer Peer) string { return peer.VTEPMAC.String() }, "VTEP MAC")
	p.Skipped = skipped
	for _, peer := range usable {
		cidr := peer.PodCIDR.Masked()
		gw := nodestate.GatewayFor(cidr)
		mac := slices.Clone(peer.VTEPMAC)
		p.Neighbors = append(p.Neighbors, Neighbor{IP: gw, MAC: mac})
		p.FDB = append(p.FDB, FDBEntry{MAC: mac, Dst: peer.UnderlayIP.Unmap()})
		p.Routes = append(p.Routes, Route{Dst: cidr, Via: gw, Src: local.Gateway})
		for _, dst := range peer.Extra {
			if dst.Addr().Is4() == gw.Is4() {
				p.Routes = append(p.Routes, Route{Dst: dst, Via: gw, Src: srcFor(local, dst)})
			}
		}
	}
	return p
}

// srcFor is the preferred source of a route to dst: the local gateway when
// it is of dst's address family.
func srcFor(local Local, dst netip.Prefix) netip.Addr {
	if local.Gateway.IsValid() && local.Gateway.Is4() == dst.Addr().Is4() {
		return local.Gateway
	}
	return netip.Addr{}
}

// usablePeers applies the checks common to both backends and the backend's
// own check, and rejects peers whose identity (idOf, e.g. the public key)
// or pod block collides with another peer's. Peers in a collision are all
// rejected: routing a block to the wrong node is worse than not routing it
// until gossip resolves the conflict. The result is sorted by name.
func usablePeers(local Local, peers []Peer, check func(Peer) string, idOf func(Peer) string, idName string) ([]Peer, []SkippedPeer) {
	var skipped []SkippedPeer
	skip := func(p Peer, format string, args ...any) {
		skipped = append(skipped, SkippedPeer{Name: p.Name, Reason: fmt.Sprintf(format, args...)})
	}

	cands := make([]Peer, 0, len(peers))
	for _, p := range peers {
		switch {
		case p.Name == "":
			skip(p, "no name")
		case p.Name == local.Name:
			skip(p, "has this node's name")
		case !p.UnderlayIP.IsValid():
			skip(p, "no underlay address")
		case p.Port < 0 || p.Port > 65535:
			skip(p, "port %d out of range", p.Port)
		case !p.PodCIDR.IsValid():
			skip(p, "invalid pod CIDR")
		case local.PodCIDR.IsValid() && p.PodCIDR.Addr().Is4() != local.PodCIDR.Addr().Is4():
			skip(p, "pod CIDR %v is not the same address family as ours (%v)", p.PodCIDR, local.PodCIDR)
		case local.PodCIDR.IsValid() && p.PodCIDR.Overlaps(local.PodCIDR):
			skip(p, "pod CIDR %v overlaps ours (%v)", p.PodCIDR, local.PodCIDR)
		default:
			if reason := check(p); reason != "" {
				skip(p, "%s", reason)
				continue
			}
			cands = append(cands, p)
		}
	}

	// Collisions: name, identity, overlapping block. Each peer's reason
	// names the first colliding peer in input order, as a pairwise scan
	// would, but partners are found through maps and one sorted sweep, so
	// a resync of thousands of peers stays cheap.
	partners := collisionPartners(cands, idOf)
	bad := make([]string, len(cands))
	for i, js := range partners {
		a, b := cands[i], cands[js[0]]
		switch {
		case a.Name == b.Name:
			bad[i] = "name is published twice"
		case idOf(a) == idOf(b):
			bad[i] = fmt.Sprintf("%s is also published by %s", idName, b.Name)
		default:
			bad[i] = fmt.Sprintf("pod CIDR %v overlaps %s's %v", a.PodCIDR, b.Name, b.PodCIDR)
		}
	}
	out := cands[:0] // compacted in place: out never passes i
	for i, p := range cands {
		if bad[i] != "" {
			skip(p, "%s", bad[i])
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(skipped, func(a, b SkippedPeer) int { return strings.Compare(a.Name, b.Name) })
	return out, skipped
}

// collisionPartners returns, for each peer that collides with others (same
// name, same identity, or overlapping pod blocks), the indexes of those
// others in ascending order. O(n log n) plus the number of collisions.
func collisionPartners(cands []Peer, idOf func(Peer) string) map[int][]int {
	out := map[int][]int{}
	link := func(i, j int) {
		out[i] = append(out[i], j)
		out[j] = append(out[j], i)
	}
	byName := make(map[string][]int, len(cands))
	byID := make(map[string][]int, len(cands))
	for i, p := range cands {
		for _, j := range byName[p.Name] {
			link(i, j)
		}
		byName[p.Name] = append(byName[p.Name], i)
		id := idOf(p)
		for _, j := range byID[id] {
			link(i, j)
		}
		byID[id] = append(byID[id], i)
	}
	// Two prefixes overlap exactly when one contains the other. Sorted by
	// address, then shortest first, every block that contains the current
	// one is on the stack of blocks still open at its address.
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	masked := func(i int) netip.Prefix { return cands[i].PodCIDR.Masked() }
	slices.SortFunc(order, func(a, b int) int {
		pa, pb := masked(a), masked(b)
		if c := pa.Addr().Compare(pb.Addr()); c != 0 {
			return c
		}
		return pa.Bits() - pb.Bits()
	})
	var open []int
	for _, i := range order {
		p := masked(i)
		for len(open) > 0 && !masked(open[len(open)-1]).Contains(p.Addr()) {
			open = open[:len(open)-1]
		}
		for _, j := range open {
			link(i, j)
		}
		open = append(open, i)
	}
	for i, js := range out {
		slices.Sort(js)
		out[i] = slices.Compact(js)
	}
	return out
}
