package serviceproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/clusterset"
)

// Controller keeps the node's service table in step with the cluster's
// Services and EndpointSlices.
//
// Informer handlers convert each object to its lean copy, store it under
// mu, mark its Service dirty and kick a buffered(1) channel; they never
// block. One goroutine (run) owns the planner's cache and the applier: on
// a kick it waits Debounce for more, replans only the dirty Services,
// resolves conflicts across all of them and applies the difference. A
// failed apply keeps the previous table in force and is retried on the
// next change or resync.
type Controller struct {
	cfg ControllerConfig
	log *slog.Logger

	svcInf, sliceInf cache.SharedIndexInformer // set by Start
	kick             chan struct{}
	stop             chan struct{}
	done             chan struct{}
	closeOne         sync.Once
	health           *healthChecks
	metrics          *metrics

	mu       sync.Mutex // guards the fields below
	services map[string]Service
	slices   map[string]map[string]Slice // service key → slice name → slice
	owner    map[string]string           // "ns/slice name" → service key
	dirty    map[string]time.Time        // service key → first change not yet applied
	cs       clustersetState             // clusterset IPs (clusterset.go)

	// Owned by run.
	plans  map[string]*ServicePlan
	status Status
	aside  string // why the proxy stands aside, "" when serving
}

// applier is what the controller needs of *Applier.
type applier interface {
	Apply(*Plan) (Stats, error)
	Forget()
	Drifted(Lister) bool
}

var _ applier = (*Applier)(nil)

// ControllerConfig assembles a Controller.
type ControllerConfig struct {
	Log     *slog.Logger
	Config  Config // completed
	Context Context
	Applier applier
	// Lister reads the kernel's tables (kube-proxy detection, drift).
	Lister Lister
	// Remove deletes the service table (standing aside, leaving).
	Remove func() error
	// Publish receives the status after every sync.
	Publish    func(Status)
	Registerer prometheus.Registerer
	// DeleteFlows deletes the conntrack entries of UDP flows sent to gone
	// endpoints (DeleteUDPFlows; nil in tests that run no kernel).
	DeleteFlows func([]netip.AddrPort) (uint, error)
	// OnPlan, when set, is called from the loop with every plan applied
	// (the load-balancer announcer reads it).
	OnPlan func(*Plan)
}

// Status is the Service proxy's part of `weft status`.
type Status struct {
	// Proxy is "weft" while the agent serves Services; otherwise it says
	// who does (kube-proxy's table found).
	Proxy     string `json:"proxy"`
	Synced    bool   `json:"synced"`
	Services  int    `json:"services"`
	Endpoints int    `json:"endpoints"`
	Chains    int    `json:"chains"`
	// Problems are parts of Services the proxy cannot serve, and
	// addresses two Services claim (at most 20).
	Problems    []string  `json:"problems,omitempty"`
	LastApply   time.Time `json:"lastApply,omitzero"`
	LastOutcome string    `json:"lastOutcome,omitempty"`
	SyncSeconds float64   `json:"syncSeconds"`
	LastError   string    `json:"lastError,omitempty"`
}

// NewController assembles a controller; Start runs it.
func NewController(cfg ControllerConfig) *Controller {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Publish == nil {
		cfg.Publish = func(Status) {}
	}
	if cfg.Remove == nil {
		cfg.Remove = func() error { return nil }
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	return &Controller{
		cfg:      cfg,
		log:      cfg.Log,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		health:   newHealthChecks(cfg.Log),
		metrics:  newMetrics(cfg.Registerer),
		services: map[string]Service{},
		slices:   map[string]map[string]Slice{},
		owner:    map[string]string{},
		dirty:    map[string]time.Time{},
		cs:       newClustersetState(),
		plans:    map[string]*ServicePlan{},
		status:   Status{Proxy: ProxyWeft},
	}
}

// Start registers handlers on the shared Service and EndpointSlice
// informers and starts the loop; it does not block.
func (c *Controller) Start(ctx context.Context, services, endpointSlices cache.SharedIndexInformer) error {
	c.svcInf, c.sliceInf = services, endpointSlices
	if _, err := services.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.setService(o) },
		UpdateFunc: func(_, o any) { c.setService(o) },
		DeleteFunc: func(o any) { c.deleteService(o) },
	}); err != nil {
		return fmt.Errorf("failed to watch Services: %w", err)
	}
	if _, err := endpointSlices.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { c.setSlice(o) },
		UpdateFunc: func(_, o any) { c.setSlice(o) },
		DeleteFunc: func(o any) { c.deleteSlice(o) },
	}); err != nil {
		return fmt.Errorf("failed to watch EndpointSlices: %w", err)
	}
	c.cfg.Publish(c.status)
	go c.run(ctx)
	return nil
}

// Close stops the loop and the health check servers; with leave it also
// removes the table. On a plain stop the table stays, so Services keep
// working while the agent restarts.
func (c *Controller) Close(leave bool) error {
	c.closeOne.Do(func() { close(c.stop) })
	<-c.done
	c.health.close()
	if leave {
		return c.cfg.Remove()
	}
	return nil
}

func (c *Controller) kickLoop() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Controller) markLocked(key string) {
	if _, ok := c.dirty[key]; !ok {
		c.dirty[key] = time.Now()
	}
	if _, ok := c.cs.ips[key]; ok { // its clusterset IP reads it too
		c.markLocked(ClustersetKey(splitKey(key)))
	}
}

func (c *Controller) setService(o any) {
	svc, ok := o.(*corev1.Service)
	if !ok {
		return
	}
	lean, serve := ServiceFromAPI(svc)
	key := lean.Key()
	c.mu.Lock()
	exportChanged := c.setExportedLocked(c.cs.annotated, key, svc.Annotations[clusterset.ExportAnnotation] == "true")
	if old, had := c.services[key]; serve && had && serviceEqual(old, lean) {
		c.mu.Unlock()
		if exportChanged {
			c.kickLoop()
		}
		return // a status or annotation change the proxy does not read
	}
	if serve {
		c.services[key] = lean
	} else {
		delete(c.services, key)
	}
	c.markLocked(key)
	c.mu.Unlock()
	c.kickLoop()
}

func (c *Controller) deleteService(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	svc, ok := o.(*corev1.Service)
	if !ok {
		return
	}
	key := svc.Namespace + "/" + svc.Name
	c.mu.Lock()
	c.setExportedLocked(c.cs.annotated, key, false)
	delete(c.services, key)
	c.markLocked(key)
	c.mu.Unlock()
	c.kickLoop()
}

func (c *Controller) setSlice(o any) {
	es, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	lean, serve := SliceFromAPI(es)
	c.mu.Lock()
	// A slice can lose its service label: forget it wherever it was.
	c.dropSliceLocked(es.Namespace, es.Name)
	c.setImportLocked(es)
	if serve {
		key := lean.Namespace + "/" + lean.Service
		if c.slices[key] == nil {
			c.slices[key] = map[string]Slice{}
		}
		c.slices[key][lean.Name] = lean
		c.owner[lean.Namespace+"/"+lean.Name] = key
		c.markLocked(key)
	}
	c.mu.Unlock()
	c.kickLoop()
}

func (c *Controller) deleteSlice(o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	es, ok := o.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	c.mu.Lock()
	c.dropSliceLocked(es.Namespace, es.Name)
	c.dropImportLocked(es.Namespace, es.Name)
	c.mu.Unlock()
	c.kickLoop()
}

func (c *Controller) dropSliceLocked(ns, name string) {
	svc, ok := c.owner[ns+"/"+name]
	if !ok {
		return
	}
	delete(c.owner, ns+"/"+name)
	delete(c.slices[svc], name)
	if len(c.slices[svc]) == 0 {
		delete(c.slices, svc)
	}
	c.markLocked(svc)
}

func (c *Controller) run(ctx context.Context) {
	defer close(c.done)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if !cache.WaitForCacheSync(ctx.Done(), c.svcInf.HasSynced, c.sliceInf.HasSynced) {
		return
	}
	c.log.Info("informers synced; serving Services")
	c.checkKubeProxy()
	c.sync()
	resync := time.NewTicker(c.cfg.Config.ResyncInterval.Duration)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			t := time.NewTimer(c.cfg.Config.Debounce.Duration)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			c.sync()
		case <-resync.C:
			c.checkKubeProxy()
			if c.aside == "" && c.cfg.Lister != nil && c.cfg.Applier.Drifted(c.cfg.Lister) {
				c.log.Info("the service table drifted from what was applied; rewriting it")
				c.cfg.Applier.Forget()
			}
			c.sync()
		}
	}
}

// checkKubeProxy looks for kube-proxy's rules (at start and on every
// resync, not on every change: it reads the kernel); while they are on the
// node weft's table is removed, so the two never both translate the same
// addresses.
func (c *Controller) checkKubeProxy() {
	if c.cfg.Lister == nil {
		return
	}
	who, err := KubeProxyPresent(c.cfg.Lister)
	if err != nil {
		c.log.Warn("cannot tell whether kube-proxy runs", "err", err)
		return
	}
	switch {
	case who != "" && c.aside == "":
		c.log.Warn("kube-proxy's rules are on this node; weft stands aside and removes its service table", "found", who)
		if err := c.cfg.Remove(); err != nil {
			c.log.Warn("failed to remove the service table", "err", err)
		}
		c.cfg.Applier.Forget()
		c.health.close()
	case who == "" && c.aside != "":
		c.log.Info("kube-proxy's rules are gone; weft serves Services again")
	}
	c.aside = who
}

// sync replans the dirty Services and applies the whole plan's difference.
func (c *Controller) sync() {
	start := time.Now()
	if c.aside != "" {
		c.status.Proxy = "kube-proxy (" + c.aside + ")"
		c.status.Synced = false
		c.cfg.Publish(c.status)
		return
	}
	c.status.Proxy = ProxyWeft
	c.mu.Lock()
	dirty := c.dirty
	c.dirty = map[string]time.Time{}
	var oldest time.Time
	var goneEPs []netip.AddrPort
	for key, at := range dirty {
		old := c.plans[key]
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
		if cs, isCS, ok := c.clustersetLocked(key); isCS {
			if ok {
				c.plans[key] = PlanClusterset(c.cfg.Context, cs)
			} else {
				delete(c.plans, key)
			}
			goneEPs = append(goneEPs, goneUDP(old, c.plans[key])...)
			continue
		}
		svc, ok := c.services[key]
		if !ok {
			delete(c.plans, key)
			goneEPs = append(goneEPs, goneUDP(old, nil)...)
			continue
		}
		c.plans[key] = PlanService(c.cfg.Context, svc, c.slicesLocked(key))
		goneEPs = append(goneEPs, goneUDP(old, c.plans[key])...)
	}
	var problems []string
	for _, key := range sortedKeys(c.services) {
		for _, p := range c.services[key].Problems {
			problems = append(problems, key+": "+p)
		}
	}
	c.mu.Unlock()

	p := &Plan{Services: make(map[string]*ServicePlan, len(c.plans))}
	for k, sp := range c.plans {
		p.Services[k] = sp
	}
	p.Resolve()
	st, err := c.cfg.Applier.Apply(p)
	c.status.SyncSeconds = time.Since(start).Seconds()
	c.metrics.syncTime.Observe(c.status.SyncSeconds)
	if err != nil {
		c.metrics.errors.Inc()
		c.status.LastError = err.Error()
		c.log.Warn("failed to apply the service table; the previous one stays in force", "err", err)
		// Replan these again on the next try.
		c.mu.Lock()
		for key, at := range dirty {
			if _, ok := c.dirty[key]; !ok {
				c.dirty[key] = at
			}
		}
		c.mu.Unlock()
		c.cfg.Publish(c.status)
		return
	}
	if !oldest.IsZero() && st.Outcome != Unchanged {
		c.metrics.changeToApplied.Observe(time.Since(oldest).Seconds())
	}
	c.status.LastError = ""
	if c.cfg.DeleteFlows != nil {
		if n, err := c.cfg.DeleteFlows(goneEPs); err != nil {
			c.log.Warn("failed to delete the conntrack entries of UDP flows to gone endpoints", "err", err)
		} else if n > 0 {
			c.log.Debug("deleted conntrack entries of UDP flows to gone endpoints", "entries", n)
		}
	}
	if st.Outcome != Unchanged {
		c.status.LastApply, c.status.LastOutcome = time.Now(), string(st.Outcome)
	}
	var checks []HealthCheck
	endpoints, chains := 0, 0
	for _, k := range sortedKeys(p.Services) {
		sp := p.Services[k]
		endpoints += sp.Endpoints
		chains += len(sp.Chains)
		if sp.HealthCheck != nil {
			checks = append(checks, *sp.HealthCheck)
		}
	}
	if err := c.health.set(checks); err != nil {
		problems = append(problems, err.Error())
	}
	problems = append(problems, p.Conflicts...)
	if len(problems) > 20 {
		problems = problems[:20]
	}
	c.status.Synced = true
	c.status.Services, c.status.Endpoints, c.status.Chains = len(p.Services), endpoints, chains
	c.status.Problems = problems
	c.metrics.services.Set(float64(len(p.Services)))
	c.metrics.endpoints.Set(float64(endpoints))
	if c.cfg.OnPlan != nil {
		c.cfg.OnPlan(p)
	}
	c.cfg.Publish(c.status)
}

// serviceEqual compares the lean copies.
func serviceEqual(a, b Service) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name &&
		slices.Equal(a.ClusterIPs, b.ClusterIPs) && slices.Equal(a.ExternalIPs, b.ExternalIPs) &&
		slices.Equal(a.LoadBalancerIPs, b.LoadBalancerIPs) && slices.Equal(a.Ports, b.Ports) &&
		a.Affinity == b.Affinity && a.InternalLocal == b.InternalLocal && a.ExternalLocal == b.ExternalLocal &&
		a.PreferClose == b.PreferClose && a.HealthCheckNodePort == b.HealthCheckNodePort &&
		slices.Equal(a.Problems, b.Problems)
}

type metrics struct {
	syncTime        prometheus.Histogram
	changeToApplied prometheus.Histogram
	errors          prometheus.Counter
	services        prometheus.Gauge
	endpoints       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		syncTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_services_sync_duration_seconds", Help: "Time to plan and apply the node's service table.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		changeToApplied: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_services_change_to_applied_seconds", Help: "Time from a Service or EndpointSlice change seen to the table enforcing it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_services_sync_errors_total", Help: "Failed applies of the service table (the previous table stayed in force).",
		}),
		services: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_services_services", Help: "Services in the node's service table.",
		}),
		endpoints: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_services_endpoints", Help: "Endpoint chains (endpoint and port) in the node's service table.",
		}),
	}
	reg.MustRegister(m.syncTime, m.changeToApplied, m.errors, m.services, m.endpoints)
	return m
}
