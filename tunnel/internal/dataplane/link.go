package dataplane

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// UnderlayLink returns the interface that holds addr in the current network
// namespace.
func UnderlayLink(addr netip.Addr) (netlink.Link, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("failed to list addresses: %w", err)
	}
	for _, a := range addrs {
		if AddrFromIP(a.IP) == addr.Unmap() {
			l, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				return nil, fmt.Errorf("failed to get interface %d holding %v: %w", a.LinkIndex, addr, err)
			}
			return l, nil
		}
	}
	return nil, fmt.Errorf("no interface holds underlay address %v", addr)
}

// IsNotFound reports whether err says a link does not exist.
func IsNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// ConfigureLink gives link exactly one global address, gw as a host
// address (/32 or /128), sets its MTU and brings it up. Link-local
// addresses are left alone.
func ConfigureLink(link netlink.Link, gw netip.Addr, mtu int) error {
	name := link.Attrs().Name
	want := netip.PrefixFrom(gw, gw.BitLen())
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("failed to list addresses of %s: %w", name, err)
	}
	have := false
	for _, a := range addrs {
		p, ok := PrefixFromIPNet(a.IPNet)
		if !ok || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if p == want {
			have = true
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil && !IsNotFound(err) && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("failed to remove stale address %v from %s: %w", p, name, err)
		}
	}
	if !have {
		if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: IPNet(want)}); err != nil {
			return fmt.Errorf("failed to add address %v to %s: %w", want, name, err)
		}
	}
	if link.Attrs().MTU != mtu {
		if err := netlink.LinkSetMTU(link, mtu); err != nil {
			return fmt.Errorf("failed to set MTU %d on %s: %w", mtu, name, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil { // idempotent
		return fmt.Errorf("failed to bring up %s: %w", name, err)
	}
	return nil
}
