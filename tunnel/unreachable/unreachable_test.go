package unreachable

import (
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/weftnet/weft/internal/netnstest"
	"github.com/weftnet/weft/tunnel"
	"golang.org/x/sys/unix"
)

func TestSync(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	netnstest.Enter(t)
	// Someone else's unreachable route must survive.
	foreign := &netlink.Route{Dst: route(netip.MustParsePrefix("10.9.0.0/16")).Dst, Type: unix.RTN_UNREACHABLE, Table: unix.RT_TABLE_MAIN}
	if err := netlink.RouteAdd(foreign); err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParsePrefix("10.245.0.0/16"), netip.MustParsePrefix("10.97.0.0/16")
	check := func(want ...netip.Prefix) {
		t.Helper()
		got, err := List()
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, netip.Prefix.Compare)
		slices.SortFunc(want, netip.Prefix.Compare)
		if !slices.Equal(got, want) {
			t.Fatalf("unreachable routes %v, want %v", got, want)
		}
	}
	if err := Sync([]netip.Prefix{a, b}); err != nil {
		t.Fatal(err)
	}
	check(a, b)
	// The kernel refuses traffic to them.
	if _, err := netlink.RouteGet(netip.MustParseAddr("10.245.1.1").AsSlice()); err == nil {
		t.Error("route lookup into an unreachable network succeeded")
	}
	if err := Sync([]netip.Prefix{b}); err != nil {
		t.Fatal(err)
	}
	check(b)
	if err := Sync(nil); err != nil {
		t.Fatal(err)
	}
	check()
	rs, _ := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNREACHABLE}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE)
	if len(rs) != 1 || rs[0].Protocol == tunnel.RouteProtocol {
		t.Fatalf("the foreign unreachable route is gone or changed: %v", rs)
	}
}
