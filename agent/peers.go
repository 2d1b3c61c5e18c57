package agent

import (
	"github.com/weftnet/weft/gossip"
	"github.com/weftnet/weft/tunnel"
)

// SkippedPeer is a gossip member the tunnel cannot use yet, and why.
type SkippedPeer struct {
	Name   string
	Reason string
}

// planPeers turns gossip members into tunnel peers for the given backend.
// It is pure. A member that has not published what the backend needs (its
// WireGuard key, or VTEP MAC) is skipped with a reason: it is still coming up
// or runs another backend. So is a member whose Node object was deleted
// (deleted may be nil outside Kubernetes mode).
func planPeers(backend string, members []gossip.Meta, deleted func(string) bool) ([]tunnel.Peer, []SkippedPeer) {
	var peers []tunnel.Peer
	var skipped []SkippedPeer
	for _, m := range members {
		switch {
		case deleted != nil && deleted(m.Name):
			skipped = append(skipped, SkippedPeer{m.Name, "its Node object was deleted"})
			continue
		case !m.PodCIDR.IsValid():
			skipped = append(skipped, SkippedPeer{m.Name, "no lease yet"})
			continue
		case !m.UnderlayIP.IsValid():
			skipped = append(skipped, SkippedPeer{m.Name, "no underlay address"})
			continue
		case m.TunnelPort == 0:
			skipped = append(skipped, SkippedPeer{m.Name, "no tunnel port published"})
			continue
		case backend == "wireguard" && m.PublicKey == "":
			skipped = append(skipped, SkippedPeer{m.Name, "no WireGuard public key published"})
			continue
		case backend == "vxlan" && len(m.VTEPMAC) == 0:
			skipped = append(skipped, SkippedPeer{m.Name, "no VTEP MAC published"})
			continue
		}
		peers = append(peers, tunnel.Peer{
			Name:       m.Name,
			UnderlayIP: m.UnderlayIP,
			Port:       m.TunnelPort,
			PublicKey:  m.PublicKey,
			VTEPMAC:    m.VTEPMAC,
			PodCIDR:    m.PodCIDR,
			Boot:       m.Boot,
		})
	}
	return peers, skipped
}
