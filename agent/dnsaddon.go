package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/agent/kube"
	"github.com/weftnet/weft/dnsproxy"
)

// dnsAddon runs the node-local DNS proxy: the listen interface and NOTRACK
// table on the node, the records fed by the shared informers, and the
// server. A goroutine repairs the interface and table every resync.
type dnsAddon struct {
	log     *slog.Logger
	cfg     DNSConfig
	listen  netip.AddrPort
	allowed []netip.Prefix
	records *dnsproxy.KubeRecords
	set     *dnsproxy.ClustersetRecords // clusterset.local, over records
	metrics *dnsproxy.Metrics
	publish func(DNSStatus)
	resync  time.Duration

	mu        sync.Mutex // guards the fields below
	server    *dnsproxy.Server
	serving   bool // server started
	cache     *dnsproxy.Cache
	upstreams []netip.AddrPort
	regs      []cache.ResourceEventHandlerRegistration
	stop      chan struct{}
	done      chan struct{}
}

// newDNSAddon builds the DNS proxy addon, or nil when it is disabled (then
// removing what an earlier run left on the node).
func newDNSAddon(a *Agent) (addon, error) {
	cfg := a.cfg.DNS
	if cfg.ListenAddress == "" {
		if err := cfg.complete(); err != nil { // a Config not run through Complete (tests)
			return nil, err
		}
	}
	log := a.base.With("component", "dns", "node", a.cfg.NodeName)
	if !*cfg.Enabled {
		removeDNSNode(log, cfg)
		return nil, nil
	}
	listen := netip.AddrPortFrom(netip.MustParseAddr(cfg.ListenAddress), uint16(cfg.Port))
	allowed := []netip.Prefix{
		a.cfg.ClusterPrefix(),
		netip.PrefixFrom(listen.Addr(), 32),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("::1/128"),
	}
	if a.under.Address.IsValid() {
		allowed = append(allowed, netip.PrefixFrom(a.under.Address, a.under.Address.BitLen()))
	}
	for _, n := range cfg.AllowedNetworks {
		allowed = append(allowed, netip.MustParsePrefix(n).Masked()) // validated by complete
	}
	m, err := dnsproxy.NewMetrics(a.metrics.reg)
	if err != nil {
		return nil, fmt.Errorf("dns: failed to register metrics: %w", err)
	}
	records := dnsproxy.NewKubeRecords()
	return &dnsAddon{
		log:     log,
		cfg:     cfg,
		listen:  listen,
		allowed: allowed,
		records: records,
		set:     dnsproxy.NewClustersetRecords(a.cfg.ClusterID, records),
		metrics: m,
		publish: func(st DNSStatus) { a.setStatus(func(s *Status) { s.DNS = &st }) },
		resync:  a.cfg.ResyncInterval.Duration,
	}, nil
}

func (d *dnsAddon) Name() string { return "dns" }

// Start registers the informer handlers, puts the listen address and
// NOTRACK table on the node and starts serving. Forwarded names are
// answered at once; cluster names once the informers have synced.
func (d *dnsAddon) Start(ctx context.Context, inf *kube.Informers) error {
	type source struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}
	sources := []source{
		{inf.Services(), d.records.ServiceHandler()},
		{inf.EndpointSlices(), d.records.EndpointSliceHandler()},
		{inf.Namespaces(), d.records.NamespaceHandler()},
		{inf.Services(), d.set.ServiceHandler()},
		{inf.EndpointSlices(), d.set.EndpointSliceHandler()},
	}
	if dnsproxy.PodRecords(d.cfg.Pods) == dnsproxy.PodsVerified {
		sources = append(sources, source{inf.Pods(), d.records.PodHandler()})
	}
	var regs []cache.ResourceEventHandlerRegistration
	for _, s := range sources {
		reg, err := s.inf.AddEventHandler(s.h)
		if err != nil {
			return fmt.Errorf("failed to register a DNS informer handler: %w", err)
		}
		regs = append(regs, reg)
	}
	synced := func() bool {
		for _, r := range regs {
			if !r.HasSynced() {
				return false
			}
		}
		return true
	}

	upstreams, err := d.upstreamsFromConfig()
	if err != nil {
		return err
	}
	if len(upstreams) == 0 {
		d.log.Warn("no upstream resolvers: names outside the cluster zone get SERVFAIL", "resolvConf", d.cfg.ResolvConf)
	}
	fwd := dnsproxy.NewForward(dnsproxy.ForwardConfig{
		Upstreams: upstreams, TCP: d.cfg.UpstreamTCP, Timeout: d.cfg.UpstreamTimeout.Duration, Log: d.log,
	}, d.metrics)
	cch := dnsproxy.NewCache(dnsproxy.CacheConfig{
		Size: d.cfg.Cache.Size, MaxTTL: d.cfg.Cache.MaxTTL.Duration,
		MaxNegativeTTL: d.cfg.Cache.MaxNegativeTTL.Duration, ServeStale: d.cfg.Cache.ServeStale.Duration,
	}, fwd, d.metrics)
	zone, err := dnsproxy.NewCluster(dnsproxy.ZoneConfig{
		Zone: d.cfg.Zone, TTL: d.cfg.TTL.Duration, NegativeTTL: d.cfg.NegativeTTL.Duration,
		Pods: dnsproxy.PodRecords(d.cfg.Pods), Ready: synced,
	}, d.records, dnsproxy.NewClusterset(dnsproxy.ClustersetConfig{
		TTL: d.cfg.TTL.Duration, NegativeTTL: d.cfg.NegativeTTL.Duration, Ready: synced,
	}, d.set, cch))
	if err != nil {
		return fmt.Errorf("dns.%w", err)
	}
	d.mu.Lock()
	d.cache, d.upstreams, d.regs = cch, upstreams, regs
	// The zones' own answers are cached too, until the records change.
	front := dnsproxy.NewCache(dnsproxy.CacheConfig{
		Size: d.cfg.Cache.Size, AuthoritativeOnly: true, Generation: d.set.Generation,
	}, zone, nil)
	d.server = dnsproxy.NewServer(dnsproxy.ServerConfig{Addr: d.listen, Allowed: d.allowed, Log: d.log}, front, d.metrics)
	stop, done := make(chan struct{}), make(chan struct{})
	d.stop, d.done = stop, done
	d.mu.Unlock()
	// A node that cannot take the listen address yet (or whose port is
	// taken) keeps its data plane: the loop retries every resync.
	err = d.bringUp()
	if err != nil {
		d.log.Error("DNS proxy not serving yet; retrying every resync", "err", err)
	}
	d.report(synced(), err)
	go d.loop(ctx, synced, stop, done)
	return nil
}

// bringUp ensures the node's part and starts the server if it is not
// serving yet.
func (d *dnsAddon) bringUp() error {
	nodeErr := d.ensureNode()
	if nodeErr != nil && !errors.Is(nodeErr, errNotrack) {
		return nodeErr
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.serving {
		if err := d.server.Start(); err != nil {
			return fmt.Errorf("dns.listenAddress: %w", err)
		}
		d.serving = true
	}
	return nodeErr
}

func (d *dnsAddon) upstreamsFromConfig() ([]netip.AddrPort, error) {
	if len(d.cfg.Upstreams) == 0 {
		ups, err := dnsproxy.UpstreamsFromResolvConf(d.cfg.ResolvConf, d.listen.Addr())
		if err != nil {
			return nil, fmt.Errorf("dns.resolvConf: %w", err)
		}
		return ups, nil
	}
	var ups []netip.AddrPort
	for _, u := range d.cfg.Upstreams {
		ap, _ := dnsproxy.ParseUpstream(u) // validated by complete
		ups = append(ups, ap)
	}
	return ups, nil
}

var errNotrack = errors.New("NOTRACK table")

// ensureNode puts the listen address on its interface and the NOTRACK
// table in place (only when the kernel's differs). A failing NOTRACK
// table is reported (errNotrack) but does not stop the proxy.
func (d *dnsAddon) ensureNode() error {
	if err := dnsproxy.EnsureListenLink(d.cfg.Interface, d.listen.Addr()); err != nil {
		return fmt.Errorf("dns.interface: %w", err)
	}
	if !*d.cfg.Notrack {
		return nil
	}
	rs, err := dnsproxy.PlanNotrack(d.listen)
	if err != nil {
		return err
	}
	conn, err := dnsproxy.NewNftConn()
	if err == nil && !dnsproxy.NotrackCurrent(conn, rs) {
		err = dnsproxy.ApplyNotrack(conn, rs)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errNotrack, err)
	}
	return nil
}

// loop repairs the node's part every resync and publishes status until
// ctx is done or Close.
func (d *dnsAddon) loop(ctx context.Context, synced func() bool, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(d.resync)
	defer t.Stop()
	wasSynced := synced()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		err := d.bringUp()
		if err != nil {
			d.log.Error("failed to bring up or repair the DNS proxy", "err", err)
		}
		if s := synced(); s != wasSynced {
			wasSynced = s
			d.log.Info("cluster zone synced; answering cluster names")
		}
		d.report(wasSynced, err)
	}
}

func (d *dnsAddon) report(synced bool, err error) {
	d.mu.Lock()
	st := DNSStatus{
		Listen:  d.listen.String(),
		Zone:    d.cfg.Zone,
		Synced:  synced,
		Notrack: *d.cfg.Notrack && (err == nil || !errors.Is(err, errNotrack)),
	}
	for _, u := range d.upstreams {
		st.Upstreams = append(st.Upstreams, u.String())
	}
	if d.cache != nil {
		st.CacheEntries = d.cache.Len()
	}
	d.mu.Unlock()
	if err != nil {
		st.LastError = err.Error()
	}
	d.publish(st)
}

// Close stops serving. On leave it also removes the interface and the
// NOTRACK table; on a plain stop they stay, so pods' resolv.conf keeps
// pointing at an address the next agent answers on.
func (d *dnsAddon) Close(leave bool) error {
	// The repair loop first, so that it cannot start the server again.
	d.mu.Lock()
	stop, done := d.stop, d.done
	d.stop = nil
	d.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	d.mu.Lock()
	srv, serving := d.server, d.serving
	d.serving = false
	d.mu.Unlock()
	var errs []error
	if serving {
		errs = append(errs, srv.Close())
	}
	if leave {
		errs = append(errs, removeDNSNode(d.log, d.cfg))
	}
	return errors.Join(errs...)
}

// removeDNSNode deletes the listen interface and NOTRACK table.
func removeDNSNode(log *slog.Logger, cfg DNSConfig) error {
	var errs []error
	if conn, err := dnsproxy.NewNftConn(); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, dnsproxy.RemoveNotrack(conn))
	}
	errs = append(errs, dnsproxy.RemoveListenLink(cfg.Interface))
	err := errors.Join(errs...)
	if err != nil {
		log.Warn("failed to remove the DNS proxy's interface or NOTRACK table", "err", err)
	}
	return err
}
