package agent

import (
	"context"
	"fmt"

	"github.com/weftnet/weft/agent/kube"
)

// An addon is a part of the agent that runs beside the data plane loop and
// reads the cluster through the shared informers: the DNS proxy and the
// NetworkPolicy enforcer. Each lives in its own file (dns.go, policy.go)
// with its config section, and is listed in addonConstructors.
//
// Start registers informer handlers and starts the addon's goroutines; it
// must not block on the API server (the informers start after every addon
// has registered). Close undoes what the addon put on the node when the
// agent leaves the cluster for good (leave true); on a plain stop it keeps
// the node's DNS and policy in place, as the data plane is kept.
type addon interface {
	Name() string
	Start(ctx context.Context, inf *kube.Informers) error
	Close(leave bool) error
}

// addonConstructors builds the enabled addons from the completed config. A
// constructor returns nil when its addon is disabled.
var addonConstructors = []func(a *Agent) (addon, error){
	newDNSAddon,
	newPolicyAddon,
	newServicesAddon,
}

// startAddons builds and starts every enabled addon on shared informers.
// Outside Kubernetes mode there is nothing for them to read, so none runs.
func (a *Agent) startAddons(ctx context.Context) error {
	if a.kube == nil {
		return nil
	}
	inf := kube.NewInformers(a.kubeClient, 0)
	if a.peering != nil { // any node may become the active gateway (by config or Node label)
		a.clusterset = newClustersetSync(a.kubeClient, inf, a.cfg.ClusterID, a.clustersetIPs(), a.base.With("component", "clusterset", "node", a.cfg.NodeName))
	}
	for _, mk := range addonConstructors {
		ad, err := mk(a)
		if err != nil {
			return err
		}
		if ad == nil {
			continue
		}
		if err := ad.Start(ctx, inf); err != nil {
			return fmt.Errorf("failed to start %s: %w", ad.Name(), err)
		}
		a.addons = append(a.addons, ad)
	}
	inf.Start(ctx.Done())
	a.startServiceExports(ctx)
	a.startClustersetIPs(ctx)
	return nil
}

// closeAddons closes the addons in reverse order, logging failures.
func (a *Agent) closeAddons(leave bool) {
	for i := len(a.addons) - 1; i >= 0; i-- {
		if err := a.addons[i].Close(leave); err != nil {
			a.log.Warn("addon close", "addon", a.addons[i].Name(), "err", err)
		}
	}
}
