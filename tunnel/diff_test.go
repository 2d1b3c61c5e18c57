package tunnel

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func rt(dst, via string, link int) Route {
	r := Route{Dst: netip.MustParsePrefix(dst), Src: netip.MustParseAddr("10.244.1.1"), LinkIndex: link}
	if via != "" {
		r.Via = netip.MustParseAddr(via)
	}
	return r
}

func TestDiffRoutes(t *testing.T) {
	tests := []struct {
		name             string
		desired, actual  []Route
		wantAdd, wantDel []Route
	}{
		{name: "empty"},
		{name: "in sync", desired: []Route{rt("10.244.2.0/24", "", 4)}, actual: []Route{rt("10.244.2.0/24", "", 4)}},
		{name: "missing (deleted by hand)", desired: []Route{rt("10.244.2.0/24", "", 4), rt("10.244.3.0/24", "", 4)},
			actual: []Route{rt("10.244.3.0/24", "", 4)}, wantAdd: []Route{rt("10.244.2.0/24", "", 4)}},
		{name: "departed", actual: []Route{rt("10.244.2.0/24", "", 4)}, wantDel: []Route{rt("10.244.2.0/24", "", 4)}},
		{name: "changed next hop", desired: []Route{rt("10.244.2.0/24", "10.244.2.1", 4)},
			actual:  []Route{rt("10.244.2.0/24", "10.244.9.1", 4)},
			wantAdd: []Route{rt("10.244.2.0/24", "10.244.2.1", 4)}, wantDel: []Route{rt("10.244.2.0/24", "10.244.9.1", 4)}},
		{name: "duplicate in kernel", desired: []Route{rt("10.244.2.0/24", "", 4)},
			actual: []Route{rt("10.244.2.0/24", "", 4), rt("10.244.2.0/24", "", 4)}, wantDel: []Route{rt("10.244.2.0/24", "", 4)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add, del := DiffRoutes(tt.desired, tt.actual)
			if !reflect.DeepEqual(add, tt.wantAdd) || !reflect.DeepEqual(del, tt.wantDel) {
				t.Errorf("add %v del %v, want add %v del %v", add, del, tt.wantAdd, tt.wantDel)
			}
		})
	}
}

func TestDiffNeighborsAndFDB(t *testing.T) {
	gw := netip.MustParseAddr("10.244.2.1")
	n1 := Neighbor{IP: gw, MAC: macB}
	n2 := Neighbor{IP: gw, MAC: macC}
	add, del := DiffNeighbors([]Neighbor{n1}, []Neighbor{n2})
	if !reflect.DeepEqual(add, []Neighbor{n1}) || !reflect.DeepEqual(del, []Neighbor{n2}) {
		t.Errorf("MAC change: add %v del %v", add, del)
	}
	if add, del := DiffNeighbors([]Neighbor{n1}, []Neighbor{{IP: gw, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xb}}}); add != nil || del != nil {
		t.Errorf("equal neighbours: add %v del %v", add, del)
	}

	f1 := FDBEntry{MAC: macB, Dst: netip.MustParseAddr("192.168.0.2")}
	f2 := FDBEntry{MAC: macB, Dst: netip.MustParseAddr("192.168.0.9")}
	f3 := FDBEntry{MAC: macC, Dst: netip.MustParseAddr("192.168.0.3")}
	add2, del2 := DiffFDB([]FDBEntry{f1}, []FDBEntry{f2, f3})
	if !reflect.DeepEqual(add2, []FDBEntry{f1}) || !reflect.DeepEqual(del2, []FDBEntry{f2, f3}) {
		t.Errorf("FDB: add %v del %v", add2, del2)
	}
}

func TestDiffWGPeers(t *testing.T) {
	ep := netip.MustParseAddrPort("192.168.0.2:51820")
	roamed := netip.MustParseAddrPort("203.0.113.7:40000")
	moved := netip.MustParseAddrPort("192.168.0.22:51820")
	cidr := []netip.Prefix{netip.MustParsePrefix("10.244.2.0/24")}
	other := []netip.Prefix{netip.MustParsePrefix("10.244.7.0/24")}
	want := WGPeer{PublicKey: keyB, Endpoint: ep, AllowedIPs: cidr}
	last := map[wgtypes.Key]netip.AddrPort{keyB: ep}

	tests := []struct {
		name    string
		desired []WGPeer
		actual  []WGPeer
		lastSet map[wgtypes.Key]netip.AddrPort
		want    []wgtypes.PeerConfig
	}{
		{name: "in sync", desired: []WGPeer{want}, actual: []WGPeer{want}, lastSet: last},
		{name: "missing peer (removed by hand)", desired: []WGPeer{want}, lastSet: last,
			want: []wgtypes.PeerConfig{{PublicKey: keyB, Endpoint: net.UDPAddrFromAddrPort(ep), ReplaceAllowedIPs: true, AllowedIPs: []net.IPNet{prefixToIPNet(cidr[0])}}}},
		{name: "departed", actual: []WGPeer{want}, lastSet: last,
			want: []wgtypes.PeerConfig{{PublicKey: keyB, Remove: true}}},
		{name: "allowed IPs drifted", desired: []WGPeer{want}, lastSet: last,
			actual: []WGPeer{{PublicKey: keyB, Endpoint: ep, AllowedIPs: other}},
			want:   []wgtypes.PeerConfig{{PublicKey: keyB, ReplaceAllowedIPs: true, AllowedIPs: []net.IPNet{prefixToIPNet(cidr[0])}}}},
		{name: "roamed endpoint is kept", desired: []WGPeer{want}, lastSet: last,
			actual: []WGPeer{{PublicKey: keyB, Endpoint: roamed, AllowedIPs: cidr}}},
		{name: "published endpoint changed", desired: []WGPeer{{PublicKey: keyB, Endpoint: moved, AllowedIPs: cidr}}, lastSet: last,
			actual: []WGPeer{{PublicKey: keyB, Endpoint: roamed, AllowedIPs: cidr}},
			want:   []wgtypes.PeerConfig{{PublicKey: keyB, Endpoint: net.UDPAddrFromAddrPort(moved)}}},
		{name: "no endpoint", desired: []WGPeer{want}, lastSet: last,
			actual: []WGPeer{{PublicKey: keyB, AllowedIPs: cidr}},
			want:   []wgtypes.PeerConfig{{PublicKey: keyB, Endpoint: net.UDPAddrFromAddrPort(ep)}}},
		{name: "after restart endpoints are reset once", desired: []WGPeer{want},
			actual: []WGPeer{{PublicKey: keyB, Endpoint: roamed, AllowedIPs: cidr}},
			want:   []wgtypes.PeerConfig{{PublicKey: keyB, Endpoint: net.UDPAddrFromAddrPort(ep)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DiffWGPeers(tt.desired, tt.actual, tt.lastSet)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDiffWGPeersKeepalive(t *testing.T) {
	key := wgtypes.Key{1}
	ep := netip.MustParseAddrPort("192.0.2.1:51821")
	last := map[wgtypes.Key]netip.AddrPort{key: ep}
	on := WGPeer{PublicKey: key, Endpoint: ep, PersistentKeepalive: 25 * time.Second}
	off := WGPeer{PublicKey: key, Endpoint: ep}
	if got := DiffWGPeers([]WGPeer{on}, []WGPeer{on}, last); len(got) != 0 {
		t.Errorf("unchanged keepalive: %+v", got)
	}
	got := DiffWGPeers([]WGPeer{on}, []WGPeer{off}, last)
	if len(got) != 1 || got[0].PersistentKeepaliveInterval == nil || *got[0].PersistentKeepaliveInterval != 25*time.Second {
		t.Errorf("keepalive turned on: %+v", got)
	}
	got = DiffWGPeers([]WGPeer{off}, []WGPeer{on}, last)
	if len(got) != 1 || got[0].PersistentKeepaliveInterval == nil || *got[0].PersistentKeepaliveInterval != 0 {
		t.Errorf("keepalive turned off: %+v", got)
	}
	got = DiffWGPeers([]WGPeer{on}, nil, nil)
	if len(got) != 1 || got[0].PersistentKeepaliveInterval == nil || *got[0].PersistentKeepaliveInterval != 25*time.Second {
		t.Errorf("new peer with keepalive: %+v", got)
	}
}
