package agent

// Clusterset IPs (package clusterset, ips.go): the active gateway
// allocates one address per clusterset Service with ClusterIPs at every
// pull and publishes the table as a ConfigMap; every node watches that one
// ConfigMap and hands the table to the DNS proxy (which answers it) and
// the Service proxy (which serves it).

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/clusterset"
	"github.com/weftnet/weft/peering"
)

// clustersetIPConfig is how the active gateway allocates clusterset IPs.
type clustersetIPConfig struct {
	// Range is the clusterset IP range; invalid when clusterset IPs are
	// off, Off saying why.
	Range netip.Prefix
	Off   string
	// Local are this cluster's pod and service networks: never allocated.
	Local []netip.Prefix
}

// ClustersetIPStatus is the clusterset IP allocation as the last pull left
// it (part of ClustersetStatus).
type ClustersetIPStatus struct {
	// IPRange is the clusterset IP range in force; IPsOff says why there
	// are no clusterset IPs when there are none.
	IPRange string `json:"ipRange,omitempty"`
	IPsOff  string `json:"ipsOff,omitempty"`
	// IPs counts the Services with a clusterset IP; IPsFull those left
	// without one because the range (or the table) is full: their names
	// answer the exporting clusters' ClusterIPs instead.
	IPs     int    `json:"ips"`
	IPsFull int    `json:"ipsFull,omitempty"`
	IPError string `json:"ipError,omitempty"`
}

// completeClustersetIPRange checks peering.clustersetIPRange when it is
// set: an invalid range, or one overlapping this cluster's networks, is an
// error. The default is checked at start (clustersetIPs) and, where it
// overlaps, not used.
func (p *PeeringConfig) completeClustersetIPRange(l peering.Local) error {
	if p.ClustersetIPRange == "" {
		return nil
	}
	rng, err := netip.ParsePrefix(p.ClustersetIPRange)
	if err != nil {
		return fmt.Errorf("peering.clustersetIPRange: %q is not a CIDR", p.ClustersetIPRange)
	}
	if err := clusterset.ValidIPRange(rng); err != nil {
		return fmt.Errorf("peering.clustersetIPRange: %w", err)
	}
	if n := overlapping(rng, l); n.IsValid() {
		return fmt.Errorf("peering.clustersetIPRange: %s overlaps this cluster's network %s", rng, n)
	}
	return nil
}

// overlapping is the first of l's networks that rng overlaps.
func overlapping(rng netip.Prefix, l peering.Local) netip.Prefix {
	for _, n := range slices.Concat(l.PodCIDRs, l.ServiceCIDRs) {
		if n.Overlaps(rng) {
			return n
		}
	}
	return netip.Prefix{}
}

// clustersetIPs is the allocation config of the agent's (completed) config.
func (a *Agent) clustersetIPs() clustersetIPConfig {
	var c clustersetIPConfig
	l, err := a.cfg.Peering.local(&a.cfg)
	if err != nil {
		c.Off = err.Error()
		return c
	}
	c.Local = slices.Concat(l.PodCIDRs, l.ServiceCIDRs)
	if !a.cfg.Services.Enabled() {
		c.Off = "services.proxy is off: no Service proxy of weft's serves clusterset IPs"
		return c
	}
	s := a.cfg.Peering.ClustersetIPRange
	if s == "" {
		s = clusterset.DefaultIPRange
	}
	rng, err := netip.ParsePrefix(s)
	if err == nil {
		err = clusterset.ValidIPRange(rng)
	}
	if err != nil {
		c.Off = fmt.Sprintf("peering.clustersetIPRange %q: %v", s, err)
		return c
	}
	if n := overlapping(rng, l); n.IsValid() {
		c.Off = fmt.Sprintf("the default clusterset IP range %s overlaps this cluster's network %s: set peering.clustersetIPRange", rng, n)
		return c
	}
	c.Range = rng
	return c
}

// syncIPs allocates and publishes the clusterset IPs of this cluster's
// exports and of derived (the imports planned or kept), never inside
// this cluster's or a peer's networks.
func (c *clustersetSync) syncIPs(ctx context.Context, remotes []clusterset.Remote, derived []*discoveryv1.EndpointSlice) ClustersetIPStatus {
	st := ClustersetIPStatus{IPsOff: c.ips.Off}
	if !c.ips.Range.IsValid() {
		return st
	}
	st.IPRange = c.ips.Range.String()
	doc, err := c.exports()
	if err != nil {
		st.IPError = err.Error()
		return st
	}
	exclude := slices.Clone(c.ips.Local)
	for _, r := range remotes {
		exclude = append(exclude, r.Networks...)
	}
	al, err := clusterset.SyncIPs(ctx, c.client, c.ips.Range, exclude, clusterset.IPServices(doc, derived))
	switch {
	case err != nil:
		st.IPError = "not published, the table stays as it was: " + err.Error()
	case len(al.Full) > 0:
		st.IPError = fmt.Sprintf("clusterset IP range %s (or the table of %d) is full: %d Services have none, first %s",
			c.ips.Range, clusterset.MaxIPs, len(al.Full), al.Full[0])
	}
	if err == nil {
		st.IPs, st.IPsFull = len(al.IPs), len(al.Full)
	}
	// Logged when the problems change, not at every pull.
	note := st.IPError + strings.Join(al.Moved, ";")
	c.mu.Lock()
	prev := c.ipNote
	c.ipNote = note
	c.mu.Unlock()
	if note != prev {
		for _, m := range al.Moved {
			c.log.Warn("clusterset IP moved", "reason", m)
		}
		if st.IPError != "" {
			c.log.Warn("clusterset IPs", "problem", st.IPError)
		}
	}
	return st
}

// keptImports are the derived slices in the cache of the source clusters
// kept as they are.
func (c *clustersetSync) keptImports(keep map[string]bool) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for _, o := range c.slices.GetStore().List() {
		if s, ok := o.(*discoveryv1.EndpointSlice); ok && s.Labels[discoveryv1.LabelManagedBy] == clusterset.ManagedBy && keep[s.Labels[clusterset.LabelSourceCluster]] {
			out = append(out, s)
		}
	}
	return out
}

// clustersetIPsConsumer is a part of the agent that reads the table.
type clustersetIPsConsumer interface {
	SetClustersetIPs(map[string]netip.Addr)
}

// startClustersetIPs watches the clusterset IP table for the addons that
// read it, when peering is on. The watch is on one ConfigMap, by name.
func (a *Agent) startClustersetIPs(ctx context.Context) {
	if a.peering == nil || a.kubeClient == nil {
		return
	}
	var cs []clustersetIPsConsumer
	for _, ad := range a.addons {
		if c, ok := ad.(clustersetIPsConsumer); ok {
			cs = append(cs, c)
		}
	}
	if len(cs) == 0 {
		return
	}
	lw := cache.NewListWatchFromClient(a.kubeClient.CoreV1().RESTClient(), "configmaps", clusterset.IPsNamespace,
		fields.OneTermEqualSelector("metadata.name", clusterset.IPsConfigMap))
	inf := cache.NewSharedIndexInformer(lw, &corev1.ConfigMap{}, 0, cache.Indexers{})
	t := &ipTable{log: a.base.With("component", "clusterset", "node", a.cfg.NodeName), consumers: cs}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { t.set(o) },
		UpdateFunc: func(_, o any) { t.set(o) },
		DeleteFunc: func(any) { t.set(nil) },
	}); err != nil {
		a.log.Error("failed to watch the clusterset IP table", "err", err)
		return
	}
	go inf.Run(ctx.Done())
}

// ipTable decodes the ConfigMap and hands the table on. The informer
// calls it from one goroutine.
type ipTable struct {
	log       *slog.Logger
	consumers []clustersetIPsConsumer
	problems  string
}

func (t *ipTable) set(o any) {
	var ips map[string]netip.Addr
	var problems []string
	if cm, ok := o.(*corev1.ConfigMap); ok {
		ips, problems = clusterset.DecodeIPs(cm.Data)
	}
	if p := strings.Join(problems, "; "); p != t.problems {
		t.problems = p
		if p != "" {
			t.log.Warn("entries of the clusterset IP table left out", "configMap", clusterset.IPsNamespace+"/"+clusterset.IPsConfigMap, "problems", p)
		}
	}
	for _, c := range t.consumers {
		c.SetClustersetIPs(ips)
	}
}

// SetClustersetIPs hands the table to the clusterset zone.
func (d *dnsAddon) SetClustersetIPs(ips map[string]netip.Addr) { d.set.SetClustersetIPs(ips) }
