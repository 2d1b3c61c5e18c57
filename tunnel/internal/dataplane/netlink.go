package dataplane

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/weftnet/weft/tunnel"
	"golang.org/x/sys/unix"
)

// Netlink is the real Routes and Neighbors, acting on the network
// namespace of the calling thread (the agent runs in the node's namespace).
type Netlink struct{}

var (
	_ Routes    = Netlink{}
	_ Neighbors = Netlink{}
)

// ListRoutes returns the main-table routes on linkIndex tagged
// tunnel.RouteProtocol, both address families.
func (Netlink) ListRoutes(linkIndex int) ([]tunnel.Route, error) {
	filter := &netlink.Route{
		LinkIndex: linkIndex,
		Protocol:  tunnel.RouteProtocol,
		Table:     unix.RT_TABLE_MAIN,
	}
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, filter,
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	var out []tunnel.Route
	for _, r := range rs {
		dst, ok := PrefixFromIPNet(r.Dst)
		if !ok {
			continue // a default route is never ours
		}
		out = append(out, tunnel.Route{
			Dst:       dst,
			Via:       AddrFromIP(r.Gw),
			Src:       AddrFromIP(r.Src),
			LinkIndex: r.LinkIndex,
		})
	}
	return out, nil
}

func toNetlinkRoute(r tunnel.Route) *netlink.Route {
	nr := &netlink.Route{
		LinkIndex: r.LinkIndex,
		Dst:       IPNet(r.Dst),
		Src:       IP(r.Src),
		Protocol:  tunnel.RouteProtocol,
		Table:     unix.RT_TABLE_MAIN,
		Scope:     netlink.SCOPE_LINK,
	}
	if r.Via.IsValid() {
		nr.Gw = IP(r.Via)
		nr.Scope = netlink.SCOPE_UNIVERSE
		nr.Flags = int(netlink.FLAG_ONLINK)
	}
	return nr
}

// ReplaceRoute installs r (ip route replace … proto 0x57).
func (Netlink) ReplaceRoute(r tunnel.Route) error {
	return netlink.RouteReplace(toNetlinkRoute(r))
}

// DeleteRoute deletes r; a missing route is ErrNotFound.
func (Netlink) DeleteRoute(r tunnel.Route) error {
	return notFound(netlink.RouteDel(toNetlinkRoute(r)))
}

func family(isV4 bool) int {
	if isV4 {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// ListNeighbors returns the permanent IPv4 and IPv6 neighbours on linkIndex.
func (Netlink) ListNeighbors(linkIndex int) ([]tunnel.Neighbor, error) {
	var out []tunnel.Neighbor
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := netlink.NeighList(linkIndex, fam)
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			if n.State&netlink.NUD_PERMANENT == 0 || n.LinkIndex != linkIndex {
				continue
			}
			out = append(out, tunnel.Neighbor{IP: AddrFromIP(n.IP), MAC: n.HardwareAddr})
		}
	}
	return out, nil
}

// SetNeighbor installs a permanent neighbour (ip neigh replace … nud permanent).
func (Netlink) SetNeighbor(linkIndex int, n tunnel.Neighbor) error {
	return netlink.NeighSet(&netlink.Neigh{
		LinkIndex:    linkIndex,
		Family:       family(n.IP.Is4()),
		State:        netlink.NUD_PERMANENT,
		Type:         unix.RTN_UNICAST,
		IP:           IP(n.IP),
		HardwareAddr: n.MAC,
	})
}

// DeleteNeighbor deletes a neighbour; a missing one is ErrNotFound.
func (Netlink) DeleteNeighbor(linkIndex int, n tunnel.Neighbor) error {
	return notFound(netlink.NeighDel(&netlink.Neigh{
		LinkIndex: linkIndex,
		Family:    family(n.IP.Is4()),
		IP:        IP(n.IP),
	}))
}

// ListFDB returns the device's own (NTF_SELF) FDB entries that have a
// remote destination.
func (Netlink) ListFDB(linkIndex int) ([]tunnel.FDBEntry, error) {
	ns, err := netlink.NeighList(linkIndex, unix.AF_BRIDGE)
	if err != nil {
		return nil, err
	}
	var out []tunnel.FDBEntry
	for _, n := range ns {
		if n.LinkIndex != linkIndex || n.Flags&netlink.NTF_SELF == 0 || n.IP == nil {
			continue
		}
		out = append(out, tunnel.FDBEntry{MAC: n.HardwareAddr, Dst: AddrFromIP(n.IP)})
	}
	return out, nil
}

// SetFDB installs an FDB entry (bridge fdb replace MAC dev … dst IP self permanent).
func (Netlink) SetFDB(linkIndex int, f tunnel.FDBEntry) error {
	return netlink.NeighSet(&netlink.Neigh{
		LinkIndex:    linkIndex,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT,
		Flags:        netlink.NTF_SELF,
		IP:           IP(f.Dst),
		HardwareAddr: f.MAC,
	})
}

// DeleteFDB deletes an FDB entry; a missing one is ErrNotFound.
func (Netlink) DeleteFDB(linkIndex int, f tunnel.FDBEntry) error {
	return notFound(netlink.NeighDel(&netlink.Neigh{
		LinkIndex:    linkIndex,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		IP:           IP(f.Dst),
		HardwareAddr: f.MAC,
	}))
}

func notFound(err error) error {
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
