package peering

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/weftnet/weft/tunnel"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func planPeers(t *testing.T) []Peer {
	t.Helper()
	f, err := ParseFile([]byte(validFile))
	if err != nil {
		t.Fatal(err)
	}
	peers, err := f.Validate(east)
	if err != nil {
		t.Fatal(err)
	}
	return peers
}

func TestPlanPeering(t *testing.T) {
	peers := planPeers(t) // north (10.246/16, fd00:246::/48; keepalive off), west (10.245/16, 10.97/16; 2 gateways)
	pfx := netip.MustParsePrefix
	ap := netip.MustParseAddrPort
	self := netip.MustParseAddr("10.244.3.1")
	gwOverlay := netip.MustParseAddr("10.244.1.1")
	north := []netip.Prefix{pfx("10.246.0.0/16"), pfx("fd00:246::/48")}
	west := []netip.Prefix{pfx("10.245.0.0/16"), pfx("10.97.0.0/16")}
	all := append(append([]netip.Prefix{}, north...), west...)
	tun := func(k wgtypes.Key) netip.Prefix { return netip.PrefixFrom(TunnelAddr(k), 128) }
	peerN1 := WGPeer{Cluster: "north", WGPeer: tunnel.WGPeer{Name: "north-gw-1", PublicKey: keyN1, Endpoint: ap("[2001:db8::1]:51821"), AllowedIPs: append(slices.Clone(north), tun(keyN1))}}
	peerW1 := WGPeer{Cluster: "west", WGPeer: tunnel.WGPeer{Name: "west-gw-1", PublicKey: keyW1, Endpoint: ap("192.0.2.10:51821"), AllowedIPs: []netip.Prefix{tun(keyW1)}}}
	peerW2 := WGPeer{Cluster: "west", WGPeer: tunnel.WGPeer{Name: "west-gw-2", PublicKey: keyW2, Endpoint: ap("192.0.2.11:51821"), AllowedIPs: []netip.Prefix{tun(keyW2)}}}
	chosen := func(p WGPeer) WGPeer {
		p.AllowedIPs, p.PersistentKeepalive = append(slices.Clone(west), p.AllowedIPs[0]), 25*time.Second
		return p
	}
	deviceRoutes := []tunnel.Route{
		{Dst: tun(keyN1)}, {Dst: pfx("10.246.0.0/16"), Src: self}, {Dst: pfx("fd00:246::/48")},
		{Dst: tun(keyW1)}, {Dst: tun(keyW2)}, {Dst: pfx("10.245.0.0/16"), Src: self}, {Dst: pfx("10.97.0.0/16"), Src: self},
	}
	unreachable := func(reason string, cidrs ...netip.Prefix) []Unreachable {
		var out []Unreachable
		for _, c := range cidrs {
			cl := "west"
			if c == north[0] || c == north[1] {
				cl = "north"
			}
			out = append(out, Unreachable{Dst: c, Cluster: cl, Reason: reason})
		}
		return out
	}

	tests := []struct {
		name string
		view View
		want Plan
	}{
		{name: "active gateway, first choice: first gateway of each bundle carries the CIDRs",
			view: View{Node: "gw-a", Overlay: OverlayWireGuard, PodGateway: self, ActiveGateway: "gw-a"},
			want: Plan{Gateway: true, WGPeers: []WGPeer{peerN1, chosen(peerW1), peerW2}, DeviceRoutes: deviceRoutes, NoMasquerade: all}},
		{name: "active gateway follows the chosen remote gateway",
			view: View{Node: "gw-a", Overlay: OverlayVXLAN, PodGateway: self, ActiveGateway: "gw-a", RemoteGateways: map[string]string{"west": "west-gw-2"}},
			want: Plan{Gateway: true, WGPeers: []WGPeer{peerN1, peerW1, chosen(peerW2)}, DeviceRoutes: deviceRoutes, NoMasquerade: all}},
		{name: "a chosen gateway the bundle no longer lists falls back to the first",
			view: View{Node: "gw-a", Overlay: OverlayWireGuard, PodGateway: self, ActiveGateway: "gw-a", RemoteGateways: map[string]string{"west": "west-gw-9"}},
			want: Plan{Gateway: true, WGPeers: []WGPeer{peerN1, chosen(peerW1), peerW2}, DeviceRoutes: deviceRoutes, NoMasquerade: all}},
		{name: "other node, WireGuard overlay: every CIDR through the gateway's overlay peer",
			view: View{Node: "worker", Overlay: OverlayWireGuard, PodGateway: self, ActiveGateway: "gw-a", ActiveGatewayOverlay: gwOverlay},
			want: Plan{ViaGateway: all, NoMasquerade: all}},
		{name: "other node, VXLAN overlay: IPv6 is not carried",
			view: View{Node: "worker", Overlay: OverlayVXLAN, PodGateway: self, ActiveGateway: "gw-a", ActiveGatewayOverlay: gwOverlay},
			want: Plan{
				ViaGateway:   []netip.Prefix{pfx("10.246.0.0/16"), pfx("10.245.0.0/16"), pfx("10.97.0.0/16")},
				NoMasquerade: all,
				Unreachable:  unreachable("the overlay does not carry this address family", north[1]),
			}},
		{name: "other node, gateway without a pod block yet",
			view: View{Node: "worker", Overlay: OverlayVXLAN, PodGateway: self, ActiveGateway: "gw-a"},
			want: Plan{NoMasquerade: all, Unreachable: append(unreachable("the active gateway gw-a has no pod block yet", north...), unreachable("the active gateway gw-a has no pod block yet", west...)...)}},
		{name: "no active gateway: everything unreachable, nothing leaks",
			view: View{Node: "gw-a", Overlay: OverlayWireGuard, PodGateway: self},
			want: Plan{NoMasquerade: all, Unreachable: unreachable("this cluster has no live eligible gateway", all...)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PlanPeering(tt.view, peers)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("plan:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if got := PlanPeering(View{Node: "n", ActiveGateway: "n"}, nil); !reflect.DeepEqual(got, Plan{Gateway: true}) {
		t.Errorf("no peers: %+v", got)
	}
}

// TestPlanAllowedIPsAreTheDeclaredCIDRs is the property that makes a remote
// gateway sending from an undeclared range be refused by WireGuard: on the
// gateway, the AllowedIPs of each cluster's peers are exactly its declared
// CIDRs, held by one peer, and the diff against a device whose peer was
// widened by hand narrows it back.
func TestPlanAllowedIPsAreTheDeclaredCIDRs(t *testing.T) {
	peers := planPeers(t)
	for _, remote := range []map[string]string{nil, {"west": "west-gw-2"}} {
		plan := PlanPeering(View{Node: "gw", Overlay: OverlayWireGuard, ActiveGateway: "gw", RemoteGateways: remote}, peers)
		for _, peer := range peers {
			var allowed []netip.Prefix
			holders := 0
			for _, wp := range plan.WGPeers {
				if wp.Cluster != peer.Name {
					continue
				}
				if wp.AllowedIPs[len(wp.AllowedIPs)-1] != netip.PrefixFrom(TunnelAddr(wp.PublicKey), 128) {
					t.Errorf("%s: AllowedIPs %v do not end with its tunnel address", wp.Name, wp.AllowedIPs)
				}
				if len(wp.AllowedIPs) > 1 {
					allowed = append(allowed, wp.AllowedIPs[:len(wp.AllowedIPs)-1]...)
					holders++
				}
			}
			if holders != 1 || !reflect.DeepEqual(allowed, peer.CIDRs()) {
				t.Errorf("%s: %d peers hold %v, want one holding %v", peer.Name, holders, allowed, peer.CIDRs())
			}
		}
	}

	plan := PlanPeering(View{Node: "gw", Overlay: OverlayWireGuard, ActiveGateway: "gw"}, peers)
	var desired, actual []tunnel.WGPeer
	for _, wp := range plan.WGPeers {
		desired = append(desired, wp.WGPeer)
		a := wp.WGPeer
		if a.Name == "west-gw-1" {
			a.AllowedIPs = append(append([]netip.Prefix{}, a.AllowedIPs...), netip.MustParsePrefix("0.0.0.0/0"))
		}
		actual = append(actual, a)
	}
	changes := tunnel.DiffWGPeers(desired, actual, nil)
	if len(changes) != 1 || changes[0].PublicKey != keyW1 || !changes[0].ReplaceAllowedIPs || len(changes[0].AllowedIPs) != 3 {
		t.Errorf("diff against a widened peer = %+v, want west-gw-1's AllowedIPs replaced by its 2 declared CIDRs and its tunnel address", changes)
	}
}
