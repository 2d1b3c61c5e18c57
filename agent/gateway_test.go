package agent

import (
	"net/netip"
	"testing"

	"github.com/weftnet/weft/gossip"
	"github.com/weftnet/weft/peering"
	"github.com/weftnet/weft/tunnel"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestElectGateway(t *testing.T) {
	pfx := netip.MustParsePrefix
	self := gossip.Meta{Name: "n3", GatewayEligible: true, PodCIDR: pfx("10.244.3.0/24")}
	members := []gossip.Meta{
		{Name: "n1", PodCIDR: pfx("10.244.1.0/24")},
		{Name: "n2", GatewayEligible: true, PodCIDR: pfx("10.244.2.0/24")},
	}
	v := electGateway(self, members)
	if v.active != "n2" || v.overlay != netip.MustParseAddr("10.244.2.1") {
		t.Errorf("lowest eligible: %+v", v)
	}
	self.GatewayActive = true // n3 took over while n2 was away: it keeps the role
	if v := electGateway(self, members); v.active != "n3" || v.overlay != netip.MustParseAddr("10.244.3.1") {
		t.Errorf("sticky active: %+v", v)
	}
	if v := electGateway(gossip.Meta{Name: "n9"}, members[:1]); v.active != "" {
		t.Errorf("nobody eligible: %+v", v)
	}
}

func TestWithGatewayExtra(t *testing.T) {
	remote := []netip.Prefix{netip.MustParsePrefix("10.245.0.0/16")}
	peers := []tunnel.Peer{{Name: "n1"}, {Name: "gw"}}
	got := withGatewayExtra(peers, "gw", remote)
	if got[0].Extra != nil || len(got[1].Extra) != 1 || got[1].Extra[0] != remote[0] {
		t.Errorf("extra on the wrong peers: %+v", got)
	}
	if got := withGatewayExtra([]tunnel.Peer{{Name: "gw"}}, "gw", nil); got[0].Extra != nil {
		t.Errorf("extra without remote networks: %+v", got)
	}
}

func TestClustersetRemotes(t *testing.T) {
	k1, k2 := wgtypes.Key{1}, wgtypes.Key{2}
	west := peering.Peer{Name: "west", ID: "west-1", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.245.0.0/16")}}
	north := peering.Peer{Name: "north", ID: "north-1"}
	plan := peering.Plan{Gateway: true, WGPeers: []peering.WGPeer{
		{Cluster: "west", WGPeer: tunnel.WGPeer{PublicKey: k1, AllowedIPs: []netip.Prefix{netip.PrefixFrom(peering.TunnelAddr(k1), 128)}}},
		{Cluster: "west", WGPeer: tunnel.WGPeer{PublicKey: k2, AllowedIPs: []netip.Prefix{west.PodCIDRs[0], netip.PrefixFrom(peering.TunnelAddr(k2), 128)}}},
	}}
	got := clustersetRemotes([]peering.Peer{west, north}, plan)
	if len(got) != 2 || got[0].ID != "west-1" || got[0].Addr != netip.AddrPortFrom(peering.TunnelAddr(k2), peering.DefaultExportPort) ||
		len(got[0].Networks) != 1 || got[1].Addr.IsValid() {
		t.Errorf("remotes %+v", got)
	}
}
