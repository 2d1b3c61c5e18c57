package agent

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/agent/kube"
	"github.com/weftnet/weft/gossip"
	"github.com/weftnet/weft/internal/nftable"
	"github.com/weftnet/weft/loadbalancer"
	"github.com/weftnet/weft/serviceproxy"
)

// servicesAddon runs the Service proxy (package serviceproxy) on the
// agent's shared informers and, with load-balancer pools configured, the
// address allocator and the ARP announcer (package loadbalancer).
type servicesAddon struct {
	a    *Agent
	ctl  *serviceproxy.Controller
	conn *nftables.Conn

	// With pools only.
	announcer *loadbalancer.Announcer
	speaker   *loadbalancer.Speaker
	lbMetrics *loadbalancer.Metrics
}

// newServicesAddon builds the Service proxy addon, or nil when
// services.proxy is off; then a table left by an earlier run is removed,
// so that no stale translation stays behind.
func newServicesAddon(a *Agent) (addon, error) {
	cfg := a.cfg.Services
	if cfg.Debounce.Duration == 0 {
		_ = cfg.Complete() // a Config not run through Complete (tests)
	}
	conn, err := nftable.NewLargeConn()
	if err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		if err := serviceproxy.Remove(conn); err != nil {
			a.log.Warn("services.proxy is off but an old service table could not be removed", "err", err)
		}
		_ = conn.CloseLasting()
		return nil, nil
	}
	s := &servicesAddon{a: a, conn: conn}
	lb := cfg.LoadBalancer
	if len(lb.ParsedPools()) > 0 {
		if s.lbMetrics, err = loadbalancer.NewMetrics(a.metrics.reg); err != nil {
			_ = conn.CloseLasting()
			return nil, err
		}
		if lb.Announcing() {
			if s.announcer, err = loadbalancer.NewAnnouncer(a.under.Interface, a.base.With("component", "loadbalancer", "node", a.cfg.NodeName)); err != nil {
				_ = conn.CloseLasting()
				return nil, fmt.Errorf("services.loadBalancer: %w", err)
			}
			s.announcer.Instrument(s.lbMetrics)
			s.speaker = loadbalancer.NewSpeaker(a.cfg.NodeName, s.announcer, lb.ParsedPools()...)
			a.setLiveNodes(s.speaker.SetLive)
		}
	}
	s.ctl = serviceproxy.NewController(serviceproxy.ControllerConfig{
		Log:     a.base.With("component", "services", "node", a.cfg.NodeName),
		Config:  cfg,
		Context: serviceproxy.Context{Node: a.cfg.NodeName, ClusterCIDR: a.cfg.ClusterPrefix()},
		Applier: serviceproxy.NewApplier(conn),
		Lister:  conn,
		Remove:  func() error { return serviceproxy.Remove(conn) },
		Publish: func(st serviceproxy.Status) {
			a.setStatus(func(s *Status) { s.Services = &st })
		},
		Registerer:  a.metrics.reg,
		DeleteFlows: serviceproxy.DeleteUDPFlows,
		OnPlan:      s.planned,
	})
	return s, nil
}

// allocatorLease is the load-balancer Lease's duration: a new leader
// takes over within it after the old one dies.
const allocatorLease = 60 * time.Second

func (s *servicesAddon) Name() string { return "services" }

func (s *servicesAddon) Start(ctx context.Context, inf *kube.Informers) error {
	if s.lbMetrics != nil {
		al, err := loadbalancer.NewAllocator(loadbalancer.AllocatorConfig{
			Client:   s.a.kubeClient,
			Services: inf.Services(),
			Config:   s.a.cfg.Services.LoadBalancer,
			NodeName: s.a.cfg.NodeName,
			Log:      s.a.base.With("node", s.a.cfg.NodeName),
			Metrics:  s.lbMetrics,
			// Slow Lease timing: an idle agent should make next to no API
			// requests, and only assigning a new address waits for a
			// leader (announcing goes by gossip).
			LeaseDuration: allocatorLease,
			RenewDeadline: allocatorLease * 3 / 4,
			RetryPeriod:   allocatorLease / 4,
		})
		if err != nil {
			return err
		}
		go func() { // ends with ctx
			if err := al.Run(ctx); err != nil && ctx.Err() == nil {
				s.a.log.Warn("load-balancer allocator stopped", "err", err)
			}
		}()
	}
	return s.ctl.Start(ctx, inf.Services(), inf.EndpointSlices())
}

// planned hands the plan's load-balancer addresses to the speaker.
func (s *servicesAddon) planned(p *serviceproxy.Plan) {
	if s.speaker == nil {
		return
	}
	var cs []loadbalancer.Candidates
	for _, sp := range p.Services {
		for _, a := range sp.Announce {
			cs = append(cs, loadbalancer.Candidates{Addr: a.Addr, Any: a.Any, Nodes: a.Nodes})
		}
	}
	s.speaker.SetCandidates(cs)
}

func (s *servicesAddon) Close(leave bool) error {
	defer s.conn.CloseLasting()
	err := s.ctl.Close(leave)
	if s.announcer != nil {
		s.a.setLiveNodes(nil)
		_ = s.announcer.Close()
	}
	return err
}

// setLiveNodes registers f to be told the live peers after every
// reconcile (nil: no one).
func (a *Agent) setLiveNodes(f func([]string)) {
	a.mu.Lock()
	a.liveNodes = f
	a.mu.Unlock()
	if f != nil && a.gossip != nil {
		var deleted func(string) bool
		if a.kube != nil {
			deleted = a.kube.Deleted
		}
		a.tellLiveNodes(a.gossip.Peers(), deleted)
	}
}

// tellLiveNodes tells the registered listener the gossip members that are
// alive and whose Node was not deleted.
func (a *Agent) tellLiveNodes(members []gossip.Meta, deleted func(string) bool) {
	a.mu.Lock()
	f := a.liveNodes
	a.mu.Unlock()
	if f == nil {
		return
	}
	names := make([]string, 0, len(members))
	for _, m := range members {
		if deleted == nil || !deleted(m.Name) {
			names = append(names, m.Name)
		}
	}
	f(names)
}

// SetClustersetIPs hands the clusterset IP table to the Service proxy.
func (s *servicesAddon) SetClustersetIPs(ips map[string]netip.Addr) { s.ctl.SetClustersetIPs(ips) }

// ServiceExportHandler feeds ServiceExports to the Service proxy: an
// exported Service's endpoints join its clusterset IP.
func (s *servicesAddon) ServiceExportHandler() cache.ResourceEventHandler {
	return s.ctl.ServiceExportHandler()
}
