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
// The zero value opens a netlink socket per request; the Sync functions
// bind it to one socket for a whole sync (withSocket), which for a
// thousand routes saves a thousand socket setups.
type Netlink struct {
	h *netlink.Handle // nil: a socket per request
}

func (c Netlink) handle() *netlink.Handle {
	if c.h == nil {
		return &netlink.Handle{} // what netlink's package-level functions use
	}
	return c.h
}

// withSocket returns c bound to one netlink socket, opened in the calling
// thread's namespace, and the function that closes it; any other client
// (a fake) comes back as it is. If the socket cannot be opened, c is used
// as it is too: every request then reports the problem itself.
func withSocket[T any](c T) (T, func()) {
	n, ok := any(c).(Netlink)
	if !ok || n.h != nil {
		return c, func() {}
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return c, func() {}
	}
	bound, ok := any(Netlink{h: h}).(T)
	if !ok {
		h.Close()
		return c, func() {}
	}
	return bound, h.Close
}

var (
	_ Routes    = Netlink{}
	_ Neighbors = Netlink{}
)

// ListRoutes returns the main-table routes on linkIndex tagged
// tunnel.RouteProtocol, both address families.
func (c Netlink) ListRoutes(linkIndex int) ([]tunnel.Route, error) {
	filter := &netlink.Route{
		LinkIndex: linkIndex,
		Protocol:  tunnel.RouteProtocol,
		Table:     unix.RT_TABLE_MAIN,
	}
	// Iterated rather than listed: netlink.Route is large, and the slice
	// of a thousand of them that RouteListFiltered grows by doubling was
	// the biggest part of a resync's garbage at 1,000 peers.
	var out []tunnel.Route
	err := c.handle().RouteListFilteredIter(netlink.FAMILY_ALL, filter,
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE,
		func(r netlink.Route) bool {
			if dst, ok := PrefixFromIPNet(r.Dst); ok { // a default route is never ours
				out = append(out, tunnel.Route{
					Dst:       dst,
					Via:       AddrFromIP(r.Gw),
					Src:       AddrFromIP(r.Src),
					LinkIndex: r.LinkIndex,
				})
			}
			return true
		})
	if err != nil {
		return nil, err
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
func (c Netlink) ReplaceRoute(r tunnel.Route) error {
	return c.handle().RouteReplace(toNetlinkRoute(r))
}

// DeleteRoute deletes r; a missing route is ErrNotFound.
func (c Netlink) DeleteRoute(r tunnel.Route) error {
	return notFound(c.handle().RouteDel(toNetlinkRoute(r)))
}

func family(isV4 bool) int {
	if isV4 {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// ListNeighbors returns the permanent IPv4 and IPv6 neighbours on linkIndex.
func (c Netlink) ListNeighbors(linkIndex int) ([]tunnel.Neighbor, error) {
	var out []tunnel.Neighbor
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := c.handle().NeighList(linkIndex, fam)
		if err != nil {
			return nil, err
		}
		for _, ne := range ns {
			if ne.State&netlink.NUD_PERMANENT == 0 || ne.LinkIndex != linkIndex {
				continue
			}
			out = append(out, tunnel.Neighbor{IP: AddrFromIP(ne.IP), MAC: ne.HardwareAddr})
		}
	}
	return out, nil
}

// SetNeighbor installs a permanent neighbour (ip neigh replace … nud permanent).
func (c Netlink) SetNeighbor(linkIndex int, n tunnel.Neighbor) error {
	return c.handle().NeighSet(&netlink.Neigh{
		LinkIndex:    linkIndex,
		Family:       family(n.IP.Is4()),
		State:        netlink.NUD_PERMANENT,
		Type:         unix.RTN_UNICAST,
		IP:           IP(n.IP),
		HardwareAddr: n.MAC,
	})
}

// DeleteNeighbor deletes a neighbour; a missing one is ErrNotFound.
func (c Netlink) DeleteNeighbor(linkIndex int, n tunnel.Neighbor) error {
	return notFound(c.handle().NeighDel(&netlink.Neigh{
		LinkIndex: linkIndex,
		Family:    family(n.IP.Is4()),
		IP:        IP(n.IP),
	}))
}

// ListFDB returns the device's own (NTF_SELF) FDB entries that have a
// remote destination.
func (c Netlink) ListFDB(linkIndex int) ([]tunnel.FDBEntry, error) {
	ns, err := c.handle().NeighList(linkIndex, unix.AF_BRIDGE)
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
func (c Netlink) SetFDB(linkIndex int, f tunnel.FDBEntry) error {
	return c.handle().NeighSet(&netlink.Neigh{
		LinkIndex:    linkIndex,
		Family:       unix.AF_BRIDGE,
		State:        netlink.NUD_PERMANENT,
		Flags:        netlink.NTF_SELF,
		IP:           IP(f.Dst),
		HardwareAddr: f.MAC,
	})
}

// DeleteFDB deletes an FDB entry; a missing one is ErrNotFound.
func (c Netlink) DeleteFDB(linkIndex int, f tunnel.FDBEntry) error {
	return notFound(c.handle().NeighDel(&netlink.Neigh{
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
