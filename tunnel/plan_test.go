package tunnel

import (
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

var (
	keyB = mustKey("node-b")
	keyC = mustKey("node-c")
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
	macC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xc}
)

func mustKey(seed string) wgtypes.Key {
	var k wgtypes.Key
	copy(k[:], seed)
	return k
}

var local = Local{
	Name:       "node-a",
	UnderlayIP: netip.MustParseAddr("192.168.0.1"),
	PodCIDR:    netip.MustParsePrefix("10.244.1.0/24"),
	Gateway:    netip.MustParseAddr("10.244.1.1"),
}

func peer(name, underlay, cidr string, key wgtypes.Key, mac net.HardwareAddr) Peer {
	p := Peer{Name: name, Port: 51820, PublicKey: key.String(), VTEPMAC: mac}
	if underlay != "" {
		p.UnderlayIP = netip.MustParseAddr(underlay)
	}
	if cidr != "" {
		p.PodCIDR = netip.MustParsePrefix(cidr)
	}
	return p
}

func TestPlanWireGuard(t *testing.T) {
	b := peer("node-b", "192.168.0.2", "10.244.2.0/24", keyB, nil)
	c := peer("node-c", "192.168.0.3", "10.244.3.0/24", keyC, nil)
	c.Port = 0 // takes the default port

	tests := []struct {
		name    string
		peers   []Peer
		want    []string // peer names planned, in order
		skipped []string // "name: reason substring"
	}{
		{name: "none"},
		{name: "two, sorted", peers: []Peer{c, b}, want: []string{"node-b", "node-c"}},
		{name: "missing key", peers: []Peer{func() Peer { p := b; p.PublicKey = ""; return p }()},
			skipped: []string{"node-b: no WireGuard public key"}},
		{name: "bad key", peers: []Peer{func() Peer { p := b; p.PublicKey = "nope"; return p }()},
			skipped: []string{"node-b: invalid WireGuard public key"}},
		{name: "invalid CIDR", peers: []Peer{peer("node-b", "192.168.0.2", "", keyB, nil)},
			skipped: []string{"node-b: invalid pod CIDR"}},
		{name: "no underlay", peers: []Peer{peer("node-b", "", "10.244.2.0/24", keyB, nil)},
			skipped: []string{"node-b: no underlay address"}},
		{name: "overlaps ours", peers: []Peer{peer("node-b", "192.168.0.2", "10.244.0.0/16", keyB, nil), c},
			want: []string{"node-c"}, skipped: []string{"node-b: pod CIDR 10.244.0.0/16 overlaps ours"}},
		{name: "overlapping peers both skipped",
			peers:   []Peer{b, peer("node-c", "192.168.0.3", "10.244.2.128/25", keyC, nil)},
			skipped: []string{"node-b: pod CIDR 10.244.2.0/24 overlaps node-c's", "node-c: pod CIDR 10.244.2.128/25 overlaps node-b's"}},
		{name: "same key twice", peers: []Peer{b, peer("node-c", "192.168.0.3", "10.244.3.0/24", keyB, nil)},
			skipped: []string{"node-b: public key is also published by node-c", "node-c: public key is also published by node-b"}},
		{name: "ourselves", peers: []Peer{peer("node-a", "192.168.0.1", "10.244.9.0/24", keyB, nil)},
			skipped: []string{"node-a: has this node's name"}},
		{name: "other family", peers: []Peer{peer("node-b", "192.168.0.2", "fd00::/64", keyB, nil)},
			skipped: []string{"node-b: pod CIDR fd00::/64 is not the same address family"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PlanWireGuard(local, tt.peers, 51999)
			var got []string
			for i, wp := range p.WGPeers {
				got = append(got, wp.Name)
				if len(wp.AllowedIPs) != 1 || p.Routes[i].Dst != wp.AllowedIPs[0] || p.Routes[i].Src != local.Gateway || p.Routes[i].Via.IsValid() {
					t.Errorf("peer %s: allowed IPs %v, route %v", wp.Name, wp.AllowedIPs, p.Routes[i])
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("planned %v, want %v", got, tt.want)
			}
			checkSkipped(t, p.Skipped, tt.skipped)
		})
	}

	p := PlanWireGuard(local, []Peer{b, c}, 51999)
	want := []WGPeer{
		{Name: "node-b", PublicKey: keyB, Endpoint: netip.MustParseAddrPort("192.168.0.2:51820"), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.244.2.0/24")}},
		{Name: "node-c", PublicKey: keyC, Endpoint: netip.MustParseAddrPort("192.168.0.3:51999"), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.244.3.0/24")}},
	}
	if !reflect.DeepEqual(p.WGPeers, want) {
		t.Errorf("WGPeers = %+v\nwant %+v", p.WGPeers, want)
	}
}

func TestPlanVXLAN(t *testing.T) {
	b := peer("node-b", "192.168.0.2", "10.244.2.0/24", keyB, macB)
	c := peer("node-c", "192.168.0.3", "10.244.3.0/24", keyC, macC)
	p := PlanVXLAN(local, []Peer{c, b})
	wantRoutes := []Route{
		{Dst: netip.MustParsePrefix("10.244.2.0/24"), Via: netip.MustParseAddr("10.244.2.1"), Src: local.Gateway},
		{Dst: netip.MustParsePrefix("10.244.3.0/24"), Via: netip.MustParseAddr("10.244.3.1"), Src: local.Gateway},
	}
	wantNeigh := []Neighbor{{IP: netip.MustParseAddr("10.244.2.1"), MAC: macB}, {IP: netip.MustParseAddr("10.244.3.1"), MAC: macC}}
	wantFDB := []FDBEntry{{MAC: macB, Dst: netip.MustParseAddr("192.168.0.2")}, {MAC: macC, Dst: netip.MustParseAddr("192.168.0.3")}}
	if !reflect.DeepEqual(p.Routes, wantRoutes) || !reflect.DeepEqual(p.Neighbors, wantNeigh) || !reflect.DeepEqual(p.FDB, wantFDB) {
		t.Errorf("plan = %+v", p)
	}
	if len(p.WGPeers) != 0 || len(p.Skipped) != 0 {
		t.Errorf("unexpected WG peers or skips: %+v", p)
	}

	tests := []struct {
		name    string
		mac     net.HardwareAddr
		skipped string
	}{
		{"missing MAC", nil, "node-b: no VTEP MAC"},
		{"short MAC", net.HardwareAddr{2, 0, 0}, "not a 48-bit MAC"},
		{"multicast MAC", net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, "multicast"},
		{"zero MAC", make(net.HardwareAddr, 6), "all zeros"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := b
			bad.VTEPMAC = tt.mac
			p := PlanVXLAN(local, []Peer{bad, c})
			if len(p.Routes) != 1 || p.Routes[0].Dst.String() != "10.244.3.0/24" {
				t.Errorf("routes = %v, want only node-c's", p.Routes)
			}
			checkSkipped(t, p.Skipped, []string{tt.skipped})
		})
	}
	dup := peer("node-c", "192.168.0.3", "10.244.3.0/24", keyC, macB)
	checkSkipped(t, PlanVXLAN(local, []Peer{b, dup}).Skipped,
		[]string{"node-b: VTEP MAC is also published by node-c", "node-c: VTEP MAC is also published by node-b"})
}

func checkSkipped(t *testing.T, got []SkippedPeer, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("skipped %v, want %v", got, want)
		return
	}
	for i := range want {
		if !strings.Contains(got[i].String(), want[i]) {
			t.Errorf("skipped[%d] = %q, want it to contain %q", i, got[i], want[i])
		}
	}
}

func TestPlanExtraNetworks(t *testing.T) {
	local := Local{Name: "a", UnderlayIP: netip.MustParseAddr("192.168.0.1"), PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("10.244.1.1")}
	key, _ := wgtypes.GenerateKey()
	remote := []netip.Prefix{netip.MustParsePrefix("10.245.0.0/16"), netip.MustParsePrefix("10.97.0.0/16")}
	peer := Peer{Name: "gw", UnderlayIP: netip.MustParseAddr("192.168.0.2"), Port: 51820, PublicKey: key.PublicKey().String(),
		VTEPMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, PodCIDR: netip.MustParsePrefix("10.244.2.0/24"), Extra: remote}

	wg := PlanWireGuard(local, []Peer{peer}, 51820)
	wantAllowed := append([]netip.Prefix{peer.PodCIDR}, remote...)
	if len(wg.WGPeers) != 1 || !slices.Equal(wg.WGPeers[0].AllowedIPs, wantAllowed) {
		t.Fatalf("wireguard peers %+v, want allowed IPs %v", wg.WGPeers, wantAllowed)
	}
	if len(wg.Routes) != 3 || wg.Routes[1].Dst != remote[0] || wg.Routes[2].Dst != remote[1] || wg.Routes[2].Src != local.Gateway {
		t.Fatalf("wireguard routes %v", wg.Routes)
	}

	vx := PlanVXLAN(local, []Peer{peer})
	gw := netip.MustParseAddr("10.244.2.1")
	if len(vx.Routes) != 3 || vx.Routes[1] != (Route{Dst: remote[0], Via: gw, Src: local.Gateway}) || vx.Routes[2].Via != gw {
		t.Fatalf("vxlan routes %v", vx.Routes)
	}
}
