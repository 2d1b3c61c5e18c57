package agent

// The export exchange follows the gateway role: the active gateway serves
// this cluster's exports on its tunnel address and pulls every peer's from
// the gateway it chose there, in the background so that a slow peer never
// holds up the data plane loop.

import (
	"context"
	"net/netip"
	"time"

	"github.com/weftnet/weft/clusterset"
	"github.com/weftnet/weft/peering"
)

// clustersetPullTimeout bounds one pull of every peer's exports.
const clustersetPullTimeout = 15 * time.Second

// runClusterset starts or stops serving with the gateway role and, on the
// active gateway, starts a pull unless one is still running.
func (a *Agent) runClusterset(ctx context.Context, plan peering.Plan) {
	c, ps := a.clusterset, a.peering
	if c == nil || ps == nil || ps.device == nil {
		return
	}
	if !plan.Gateway {
		if ps.serving.Load() {
			c.Stop()
		}
		return
	}
	if ps.serving.CompareAndSwap(false, true) {
		addr := netip.AddrPortFrom(peering.TunnelAddr(ps.device.PublicKey()), peering.DefaultExportPort)
		go func() {
			defer ps.serving.Store(false) // the next reconcile serves again
			if err := c.Serve(ctx, addr); err != nil {
				a.log.Warn("clusterset exports not served; retrying at the next reconcile", "err", err)
			}
		}()
	}
	if !ps.pulling.CompareAndSwap(false, true) {
		return
	}
	remotes := clustersetRemotes(ps.peers, plan)
	go func() {
		defer ps.pulling.Store(false)
		pctx, cancel := context.WithTimeout(ctx, clustersetPullTimeout)
		defer cancel()
		err := c.Pull(pctx, remotes)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if prev := ps.pullErr.Swap(&msg); prev == nil || *prev != msg {
			if err != nil {
				a.log.Warn("clusterset imports: pull failed; existing imports kept", "err", err)
			} else {
				a.log.Info("clusterset imports in sync", "peers", len(remotes))
			}
		}
	}()
}

// clustersetRemotes are the peers with the export address of the gateway
// the plan sends to in each (the one whose AllowedIPs carry the cluster's
// networks); a peer with none gets a zero address and keeps its imports.
func clustersetRemotes(peers []peering.Peer, plan peering.Plan) []clusterset.Remote {
	out := make([]clusterset.Remote, 0, len(peers))
	for _, p := range peers {
		r := clusterset.Remote{Cluster: p.Name, ID: p.ID, Networks: p.CIDRs()}
		for _, wp := range plan.WGPeers {
			if wp.Cluster == p.Name && wp.Chosen() {
				r.Addr = netip.AddrPortFrom(peering.TunnelAddr(wp.PublicKey), peering.DefaultExportPort)
			}
		}
		out = append(out, r)
	}
	return out
}
