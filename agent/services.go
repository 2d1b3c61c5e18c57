package agent

import (
	"context"

	"github.com/google/nftables"

	"github.com/weftnet/weft/agent/kube"
	"github.com/weftnet/weft/nftable"
	"github.com/weftnet/weft/serviceproxy"
)

// servicesAddon runs the Service proxy (package serviceproxy) on the
// agent's shared informers.
type servicesAddon struct {
	ctl  *serviceproxy.Controller
	conn *nftables.Conn
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
	return &servicesAddon{conn: conn, ctl: serviceproxy.NewController(serviceproxy.ControllerConfig{
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
	})}, nil
}

func (s *servicesAddon) Name() string { return "services" }

func (s *servicesAddon) Start(ctx context.Context, inf *kube.Informers) error {
	return s.ctl.Start(ctx, inf.Services(), inf.EndpointSlices())
}

func (s *servicesAddon) Close(leave bool) error {
	defer s.conn.CloseLasting()
	return s.ctl.Close(leave)
}
