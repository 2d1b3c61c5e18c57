// Package unreachable keeps weft's unreachable routes: networks that must
// be refused rather than sent out of the default route (a peered cluster
// with no way to it right now). They sit in the main table, tagged
// tunnel.RouteProtocol, on no device; Sync re-reads them and repairs drift.
package unreachable

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/tunnel/internal/dataplane"
	"golang.org/x/sys/unix"
)

// List returns weft's unreachable routes in the calling thread's namespace.
func List() ([]netip.Prefix, error) {
	filter := &netlink.Route{Protocol: tunnel.RouteProtocol, Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNREACHABLE}
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, filter,
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE)
	if err != nil {
		return nil, fmt.Errorf("failed to list unreachable routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range rs {
		if p, ok := dataplane.PrefixFromIPNet(r.Dst); ok && r.Type == unix.RTN_UNREACHABLE {
			out = append(out, p)
		}
	}
	return out, nil
}

// Sync makes weft's unreachable routes exactly dsts. A route of another
// kind to one of dsts (weft's own, through a tunnel) is replaced.
func Sync(dsts []netip.Prefix) error {
	have, err := List()
	if err != nil {
		return err
	}
	want := make([]netip.Prefix, len(dsts))
	for i, d := range dsts {
		want[i] = d.Masked()
	}
	var errs []error
	for _, p := range have {
		if !slices.Contains(want, p) {
			if err := netlink.RouteDel(route(p)); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("failed to delete unreachable route %v: %w", p, err))
			}
		}
	}
	for _, p := range want {
		if !slices.Contains(have, p) {
			if err := netlink.RouteReplace(route(p)); err != nil {
				errs = append(errs, fmt.Errorf("failed to install unreachable route %v: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

func route(p netip.Prefix) *netlink.Route {
	return &netlink.Route{
		Dst:      dataplane.IPNet(p),
		Type:     unix.RTN_UNREACHABLE,
		Protocol: tunnel.RouteProtocol,
		Table:    unix.RT_TABLE_MAIN,
	}
}
