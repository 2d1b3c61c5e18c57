package dnsproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EnsureListenLink makes the node-local address the proxy listens on: a
// dummy interface name, up, holding addr/32 (or /128). Kernels built
// without the dummy driver get an ifb device instead, which behaves the
// same for a local address. It is idempotent and repairs a link that is
// down or lost its address.
func EnsureListenLink(name string, addr netip.Addr) error {
	link, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		err := netlink.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: name}})
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = netlink.LinkAdd(&netlink.Ifb{LinkAttrs: netlink.LinkAttrs{Name: name}})
		}
		if err != nil {
			return fmt.Errorf("failed to create dummy interface %s: %w", name, err)
		}
		if link, err = netlink.LinkByName(name); err != nil {
			return fmt.Errorf("failed to find interface %s: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("failed to find interface %s: %w", name, err)
	case !ownLinkType(link):
		return fmt.Errorf("interface %s exists and is a %s, not a dummy interface weft made", name, link.Type())
	}
	bits := 32
	if addr.Is6() {
		bits = 128
	}
	want := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(bits, bits)}}
	if err := netlink.AddrReplace(link, want); err != nil {
		return fmt.Errorf("failed to add %s to %s: %w", addr, name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("failed to set %s up: %w", name, err)
	}
	return nil
}

// RemoveListenLink deletes the interface; a missing one is not an error.
func RemoveListenLink(name string) error {
	link, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to find interface %s: %w", name, err)
	}
	if !ownLinkType(link) {
		return fmt.Errorf("interface %s is a %s, not weft's dummy interface; left alone", name, link.Type())
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("failed to delete interface %s: %w", name, err)
	}
	return nil
}

func ownLinkType(l netlink.Link) bool { return l.Type() == "dummy" || l.Type() == "ifb" }
