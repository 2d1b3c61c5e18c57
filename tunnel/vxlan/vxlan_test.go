package vxlan

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/tunnel/internal/dataplane"
)

func TestMACFor(t *testing.T) {
	a, b := MACFor("node-a"), MACFor("node-b")
	if a.String() != MACFor("node-a").String() {
		t.Error("MAC is not stable")
	}
	if a.String() == b.String() {
		t.Error("two nodes share a MAC")
	}
	for _, m := range []net.HardwareAddr{a, b} {
		if len(m) != 6 || m[0]&0x02 == 0 || m[0]&0x01 != 0 {
			t.Errorf("%v is not a locally administered unicast MAC", m)
		}
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		cfg  tunnel.Config
		want string
	}{
		{tunnel.Config{Port: 70000}, "field Port"},
		{tunnel.Config{VNI: 1 << 24}, "field VNI"},
		{tunnel.Config{Interface: "a-very-long-interface-name"}, "field Interface"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want error with %q", tc.cfg, err, tc.want)
		}
	}
	b, err := New(tunnel.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "vxlan" || b.Overhead() != 50 || overhead(netip.MustParseAddr("fd00::1")) != 70 {
		t.Errorf("Name %q, Overhead %d", b.Name(), b.Overhead())
	}
}

func TestSync(t *testing.T) {
	routes := &dataplane.FakeRoutes{}
	neigh := &dataplane.FakeNeighbors{}
	b := &Backend{
		name: "weft-vxlan", port: 4789, vni: 1, log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		routes: routes, neigh: neigh, linkIndex: 5,
		local: tunnel.Local{
			Name: "a", UnderlayIP: netip.MustParseAddr("192.168.0.1"),
			PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("10.244.1.1"),
		},
	}
	peers := []tunnel.Peer{
		{Name: "b", UnderlayIP: netip.MustParseAddr("192.168.0.2"), VTEPMAC: MACFor("b"), PodCIDR: netip.MustParsePrefix("10.244.2.0/24")},
		{Name: "c", UnderlayIP: netip.MustParseAddr("192.168.0.3"), PodCIDR: netip.MustParsePrefix("10.244.3.0/24")}, // no MAC
	}
	check := func(what string, n int) {
		t.Helper()
		if len(routes.Routes) != n || len(neigh.Neigh[5]) != n || len(neigh.FDB[5]) != n {
			t.Errorf("%s: %d routes, %d neighbours, %d FDB entries; want %d each",
				what, len(routes.Routes), len(neigh.Neigh[5]), len(neigh.FDB[5]), n)
		}
	}
	if err := b.syncLocked(peers); err != nil {
		t.Fatal(err)
	}
	check("first apply", 1)
	if r := routes.Routes[0]; r.Via.String() != "10.244.2.1" || r.LinkIndex != 5 {
		t.Errorf("route = %v", r)
	}
	stats, _ := b.Stats(t.Context())
	if len(stats) != 1 || stats[0].Name != "b" || stats[0].Endpoint != "192.168.0.2:4789" {
		t.Errorf("Stats = %+v", stats)
	}
	neigh.FDB[5] = nil
	neigh.Neigh[5] = nil
	routes.Routes = nil
	if err := b.syncLocked(peers); err != nil {
		t.Fatal(err)
	}
	check("after drift", 1)
	if err := b.syncLocked(nil); err != nil {
		t.Fatal(err)
	}
	check("after departure", 0)
}
