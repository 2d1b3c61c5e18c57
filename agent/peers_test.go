package agent

import (
	"net"
	"net/netip"
	"testing"

	"github.com/weftnet/weft/gossip"
)

func TestPlanPeersSkipsIncompleteMembers(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	full := gossip.Meta{Name: "a", UnderlayIP: netip.MustParseAddr("192.168.1.1"), TunnelPort: 51820,
		PublicKey: "k", VTEPMAC: mac, PodCIDR: netip.MustParsePrefix("10.244.1.0/24")}
	noLease := full
	noLease.Name, noLease.PodCIDR = "b", netip.Prefix{}
	noKey := full
	noKey.Name, noKey.PublicKey = "c", ""
	noMAC := full
	noMAC.Name, noMAC.VTEPMAC = "d", nil
	noPort := full
	noPort.Name, noPort.TunnelPort = "e", 0
	members := []gossip.Meta{full, noLease, noKey, noMAC, noPort}

	tests := []struct {
		backend     string
		wantPeers   []string
		wantSkipped []string
	}{
		{"wireguard", []string{"a", "d"}, []string{"b", "c", "e"}},
		{"vxlan", []string{"a", "c"}, []string{"b", "d", "e"}},
	}
	for _, tc := range tests {
		peers, skipped := planPeers(tc.backend, members, nil)
		var gotP, gotS []string
		for _, p := range peers {
			gotP = append(gotP, p.Name)
		}
		for _, s := range skipped {
			gotS = append(gotS, s.Name)
			if s.Reason == "" {
				t.Errorf("%s: skipped %s without a reason", tc.backend, s.Name)
			}
		}
		if !equal(gotP, tc.wantPeers) || !equal(gotS, tc.wantSkipped) {
			t.Errorf("%s: peers %v skipped %v, want %v and %v", tc.backend, gotP, gotS, tc.wantPeers, tc.wantSkipped)
		}
	}
	peers, _ := planPeers("wireguard", members[:1], nil)
	if p := peers[0]; p.UnderlayIP != full.UnderlayIP || p.Port != 51820 || p.PodCIDR != full.PodCIDR || p.PublicKey != "k" {
		t.Errorf("peer fields not carried over: %+v", p)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPlanPeersDropsDeletedNodes(t *testing.T) {
	m := gossip.Meta{Name: "gone", UnderlayIP: netip.MustParseAddr("192.168.1.2"), TunnelPort: 51820,
		PublicKey: "k", PodCIDR: netip.MustParsePrefix("10.244.2.0/24")}
	peers, skipped := planPeers("wireguard", []gossip.Meta{m}, func(n string) bool { return n == "gone" })
	if len(peers) != 0 || len(skipped) != 1 || skipped[0].Reason == "" {
		t.Fatalf("a member whose Node was deleted must be skipped with a reason: peers %v skipped %v", peers, skipped)
	}
}
