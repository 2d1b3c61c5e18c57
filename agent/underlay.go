package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// underlay is the interface and address this node is reached at.
type underlay struct {
	Interface string
	Address   netip.Addr
	MTU       int
}

// linkLister is the part of netlink the underlay detection reads.
type linkLister interface {
	LinkByName(name string) (netlink.Link, error)
	LinkByIndex(index int) (netlink.Link, error)
	LinkList() ([]netlink.Link, error)
	AddrList(link netlink.Link, family int) ([]netlink.Addr, error)
	RouteList(link netlink.Link, family int) ([]netlink.Route, error)
}

type netlinkLister struct{}

func (netlinkLister) LinkByName(n string) (netlink.Link, error) { return netlink.LinkByName(n) }
func (netlinkLister) LinkByIndex(i int) (netlink.Link, error)   { return netlink.LinkByIndex(i) }
func (netlinkLister) LinkList() ([]netlink.Link, error)         { return netlink.LinkList() }
func (netlinkLister) AddrList(l netlink.Link, f int) ([]netlink.Addr, error) {
	return netlink.AddrList(l, f)
}
func (netlinkLister) RouteList(l netlink.Link, f int) ([]netlink.Route, error) {
	return netlink.RouteList(l, f)
}

// detectUnderlay resolves the configured underlay: an explicit address
// names its interface; an explicit interface gives its first IPv4 address;
// otherwise the default route's interface is used.
func detectUnderlay(nl linkLister, c UnderlayConfig) (underlay, error) {
	var u underlay
	var link netlink.Link
	var err error
	switch {
	case c.Address != "":
		a, perr := netip.ParseAddr(c.Address)
		if perr != nil {
			return u, fmt.Errorf("underlay.address: %q is not an IP address", c.Address)
		}
		link, err = linkWithAddr(nl, a)
		if err != nil {
			return u, fmt.Errorf("underlay.address: %w", err)
		}
		u.Address = a
	case c.Interface != "":
		link, err = nl.LinkByName(c.Interface)
		if err != nil {
			return u, fmt.Errorf("underlay.interface: %q: %w", c.Interface, err)
		}
	default:
		link, err = defaultRouteLink(nl)
		if err != nil {
			return u, fmt.Errorf("underlay: no interface or address configured and %w", err)
		}
	}
	if c.Interface != "" && link.Attrs().Name != c.Interface {
		return u, fmt.Errorf("underlay.address: %s is on %s, not on underlay.interface %s", u.Address, link.Attrs().Name, c.Interface)
	}
	u.Interface = link.Attrs().Name
	if !u.Address.IsValid() {
		addrs, err := nl.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return u, fmt.Errorf("failed to list addresses of %s: %w", u.Interface, err)
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip.IsGlobalUnicast() {
				u.Address = ip
				break
			}
		}
		if !u.Address.IsValid() {
			return u, fmt.Errorf("underlay: interface %s has no IPv4 address", u.Interface)
		}
	}
	u.MTU = link.Attrs().MTU
	if c.MTU != 0 {
		u.MTU = c.MTU
	}
	return u, nil
}

func linkWithAddr(nl linkLister, a netip.Addr) (netlink.Link, error) {
	links, err := nl.LinkList()
	if err != nil {
		return nil, fmt.Errorf("failed to list links: %w", err)
	}
	for _, l := range links {
		addrs, err := nl.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			continue
		}
		for _, x := range addrs {
			if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a {
				return l, nil
			}
		}
	}
	return nil, fmt.Errorf("no interface holds %s", a)
}

func defaultRouteLink(nl linkLister) (netlink.Link, error) {
	routes, err := nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("failed to list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || (r.Dst.IP.Equal(net.IPv4zero) && isZeroMask(r.Dst.Mask)) {
			if r.LinkIndex > 0 {
				return nl.LinkByIndex(r.LinkIndex)
			}
		}
	}
	return nil, errors.New("there is no IPv4 default route")
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}
