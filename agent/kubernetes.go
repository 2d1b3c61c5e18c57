package agent

import (
	"context"
	"net/netip"
	"time"

	"github.com/weftnet/weft/agent/kube"
)

// startKube connects to the API server and starts the Node cache. It waits
// (bounded by kubernetes.syncTimeout) for the first list, then returns this
// node's podCIDR as a static lease (when Kubernetes assigned one inside the
// cluster CIDR) and the other Nodes' InternalIPs as gossip seeds. An API
// server that does not answer in time is not fatal: the agent goes on with
// gossip alone and the cache fills in when the server returns.
func (a *Agent) startKube(ctx context.Context) (netip.Prefix, []string, error) {
	cfg := a.cfg
	client, err := kube.NewClient(cfg.Kubernetes.Kubeconfig, "weft-agent/"+cfg.NodeName)
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	a.kubeClient = client
	a.kube = kube.NewWatcher(client, cfg.NodeName, a.base)
	if err := a.kube.Run(ctx); err != nil {
		return netip.Prefix{}, nil, err
	}
	a.setStatus(func(s *Status) { s.Kubernetes = "waiting for the first list of Nodes" })
	if !a.kube.WaitSynced(ctx, cfg.Kubernetes.SyncTimeout.Duration) {
		a.log.Warn("the API server did not answer in time; starting from gossip alone", "waited", cfg.Kubernetes.SyncTimeout.Duration)
		return netip.Prefix{}, nil, nil
	}
	a.setStatus(func(s *Status) { s.Kubernetes = "synced" })

	var static netip.Prefix
	if self, ok := a.kube.Node(cfg.NodeName); !ok {
		a.log.Warn("no Node object for this node; claiming a block by gossip")
	} else if self.PodCIDR.IsValid() {
		cluster := cfg.ClusterPrefix()
		switch {
		case !cluster.Contains(self.PodCIDR.Addr()) || self.PodCIDR.Bits() < cluster.Bits():
			a.log.Warn("the Node's podCIDR lies outside clusterCIDR; claiming a block by gossip instead",
				"podCIDR", self.PodCIDR, "clusterCIDR", cluster)
		default:
			static = self.PodCIDR
		}
	}
	var seeds []string
	for _, n := range a.kube.Nodes() {
		if n.Name == cfg.NodeName {
			continue
		}
		if !n.InternalIP.IsValid() {
			a.log.Info("node has no InternalIP; not a gossip seed", "peer", n.Name)
			continue
		}
		seeds = append(seeds, netip.AddrPortFrom(n.InternalIP, uint16(cfg.Gossip.Port)).String())
	}
	a.log.Info("kubernetes mode", "podCIDR", static, "seedsFromNodes", len(seeds))
	return static, seeds, nil
}

// publishToNode records this node's tunnel identity on its Node object and
// marks its network available. It patches only what differs from the cache
// and logs a failure once until it changes.
func (a *Agent) publishToNode(ctx context.Context) {
	if !a.kube.Synced() {
		return
	}
	a.mu.Lock()
	info, lease := a.tunInfo, a.lease
	a.mu.Unlock()
	ann := map[string]string{
		kube.AnnotationEndpoint: netip.AddrPortFrom(a.under.Address, uint16(info.Port)).String(),
		kube.AnnotationPodCIDR:  lease.String(),
	}
	if info.PublicKey != "" {
		ann[kube.AnnotationPublicKey] = info.PublicKey
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := a.kube.Publish(pctx, ann)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	a.mu.Lock()
	changed := msg != a.publishErr
	a.publishErr = msg
	a.mu.Unlock()
	switch {
	case err != nil && changed:
		a.log.Warn("failed to publish to this node's Node object; will retry", "err", err)
	case err == nil && changed:
		a.log.Info("published to this node's Node object")
	}
}
