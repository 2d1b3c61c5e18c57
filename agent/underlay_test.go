package agent

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

type fakeLinks struct {
	links  []netlink.Link
	addrs  map[string][]netlink.Addr
	routes []netlink.Route
}

var _ linkLister = (*fakeLinks)(nil)

func (f *fakeLinks) LinkByName(n string) (netlink.Link, error) {
	for _, l := range f.links {
		if l.Attrs().Name == n {
			return l, nil
		}
	}
	return nil, errors.New("Link not found")
}
func (f *fakeLinks) LinkByIndex(i int) (netlink.Link, error) {
	for _, l := range f.links {
		if l.Attrs().Index == i {
			return l, nil
		}
	}
	return nil, errors.New("Link not found")
}
func (f *fakeLinks) LinkList() ([]netlink.Link, error) { return f.links, nil }
func (f *fakeLinks) AddrList(l netlink.Link, _ int) ([]netlink.Addr, error) {
	return f.addrs[l.Attrs().Name], nil
}
func (f *fakeLinks) RouteList(netlink.Link, int) ([]netlink.Route, error) { return f.routes, nil }

func addr(s string) netlink.Addr {
	a, err := netlink.ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return *a
}

func newFakeLinks() *fakeLinks {
	eth0 := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Index: 2, MTU: 1400}}
	eth1 := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth1", Index: 3, MTU: 9000}}
	return &fakeLinks{
		links: []netlink.Link{eth0, eth1},
		addrs: map[string][]netlink.Addr{
			"eth0": {addr("192.168.77.11/24")},
			"eth1": {addr("172.20.0.5/16")},
		},
		routes: []netlink.Route{
			{Dst: &net.IPNet{IP: net.IPv4(172, 20, 0, 0), Mask: net.CIDRMask(16, 32)}, LinkIndex: 3},
			{Dst: nil, LinkIndex: 2}, // default
		},
	}
}

func TestDetectUnderlay(t *testing.T) {
	tests := []struct {
		name    string
		cfg     UnderlayConfig
		want    underlay
		wantErr string
	}{
		{"default route", UnderlayConfig{}, underlay{"eth0", mustAddr("192.168.77.11"), 1400}, ""},
		{"interface", UnderlayConfig{Interface: "eth1"}, underlay{"eth1", mustAddr("172.20.0.5"), 9000}, ""},
		{"address", UnderlayConfig{Address: "172.20.0.5"}, underlay{"eth1", mustAddr("172.20.0.5"), 9000}, ""},
		{"mtu override", UnderlayConfig{Interface: "eth1", MTU: 1450}, underlay{"eth1", mustAddr("172.20.0.5"), 1450}, ""},
		{"address not here", UnderlayConfig{Address: "10.1.1.1"}, underlay{}, "underlay.address"},
		{"no such interface", UnderlayConfig{Interface: "eth9"}, underlay{}, "underlay.interface"},
		{"address on another interface", UnderlayConfig{Interface: "eth0", Address: "172.20.0.5"}, underlay{}, "underlay.address"},
	}
	for _, tc := range tests {
		got, err := detectUnderlay(newFakeLinks(), tc.cfg)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: err %v, want one naming %s", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestDetectUnderlayWithoutDefaultRoute(t *testing.T) {
	f := newFakeLinks()
	f.routes = f.routes[:1]
	if _, err := detectUnderlay(f, UnderlayConfig{}); err == nil || !strings.Contains(err.Error(), "default route") {
		t.Errorf("want an error about the missing default route, got %v", err)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
