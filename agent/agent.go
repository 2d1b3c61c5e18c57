// Package agent runs weft on one node.
//
// One goroutine (Run's loop) owns the data plane: it waits on gossip changes,
// a resync ticker and ctx.Done, plans the desired peer set from gossip (a pure
// function) and hands it to the tunnel backend, which applies it idempotently.
// The status and health servers read a snapshot guarded by mu; nothing holds
// mu across a netlink or wgctrl call. Backend calls are serialised by
// backendMu, because the status socket also asks the backend for live stats.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/weftnet/weft/agent/kube"
	"github.com/weftnet/weft/gossip"
	"github.com/weftnet/weft/masquerade"
	"github.com/weftnet/weft/nodestate"
	"github.com/weftnet/weft/tunnel"
	"k8s.io/client-go/kubernetes"
)

// Agent is one node's weft.
type Agent struct {
	cfg  Config
	log  *slog.Logger // this component's
	base *slog.Logger // handed to gossip and the tunnel, which tag their own

	gossip     *gossip.Node
	kube       *kube.Watcher        // nil outside Kubernetes mode
	kubeClient kubernetes.Interface // nil outside Kubernetes mode
	addons     []addon              // started in order, closed in reverse
	metrics    *metrics
	under      underlay

	backendMu sync.Mutex // serialises calls into backend
	backend   tunnel.Backend

	leaveReq chan struct{} // buffered(1): `weft leave` asked us to leave
	proc     Process       // the binary's process hooks (SetProcess)

	peering    *peeringState   // nil when peering is off; owned by Run's loop
	clusterset *clustersetSync // nil unless peering is on in Kubernetes mode; set before Run's loop

	mu         sync.Mutex     // guards the fields below
	liveNodes  func([]string) // told the live peers after every reconcile (load-balancer announcement); nil: none
	publishErr string         // last error publishing to our Node, logged once
	status     Status
	ready      bool
	lease      netip.Prefix
	tunInfo    tunnel.Info
}

// New prepares an agent from a completed Config (see Config.Complete). It
// touches nothing on the node yet.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	if log == nil {
		log = slog.Default()
	}
	a := &Agent{cfg: cfg, base: log, log: log.With("component", "agent", "node", cfg.NodeName), leaveReq: make(chan struct{}, 1)}
	a.status = Status{Node: cfg.NodeName, ClusterID: cfg.ClusterID, Backend: cfg.Tunnel.Backend, Interface: cfg.Tunnel.Interface}
	a.metrics = newMetrics(a.liveStatus, nil)
	return a, nil
}

// Process is what the binary running the agent does for the process as a
// whole: the Go runtime's collector and memory limit are the binary's, and
// the agent never sets them itself, only calls these at points of its
// start-up. Nil fields are skipped.
type Process struct {
	// Started is called once start-up is done (lease, device, every peer
	// programmed), with whether the tunnel's device is an embedded
	// wireguard-go device in this process. It must not block.
	Started func(ctx context.Context, embeddedDevice bool)
	// Memory is handed to the tunnel backend (tunnel.Config.Memory).
	Memory tunnel.ProcessMemory
}

// SetProcess sets the binary's process hooks; call it before Run.
func (a *Agent) SetProcess(p Process) { a.proc = p }

// Status returns a copy of the node's current view.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.status
	st.Peers = append([]PeerStatus(nil), a.status.Peers...)
	st.Skipped = append([]SkippedPeer(nil), a.status.Skipped...)
	return st
}

func (a *Agent) readiness() (bool, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ready {
		return true, ""
	}
	if !a.lease.IsValid() {
		return false, "no pod CIDR lease yet"
	}
	if a.status.LastError != "" {
		return false, a.status.LastError
	}
	return false, "data plane not programmed yet"
}

// Run brings the node up and keeps its data plane in line with gossip until
// ctx is done. On return the tunnel and routes are left in place (an agent
// restart must not cut pods off); gossip is shut down without leaving, so
// this node's lease stays reserved for it.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := a.cfg

	// Everything that can be wrong with the inputs is checked before the
	// node is changed in any way.
	key, err := gossip.LoadKey(cfg.Gossip.KeyFile)
	if err != nil {
		return fmt.Errorf("gossip.keyFile: %w", err)
	}
	u, err := detectUnderlay(netlinkLister{}, cfg.Underlay)
	if err != nil {
		return err
	}
	a.under = u
	a.setStatus(func(s *Status) { s.UnderlayIP = u.Address.String() })
	a.log.Info("underlay", "interface", u.Interface, "address", u.Address, "mtu", u.MTU)

	backend, err := newBackend(cfg.Tunnel.Backend, tunnel.Config{
		Interface: cfg.Tunnel.Interface,
		Port:      cfg.Tunnel.Port,
		KeyFile:   cfg.Tunnel.KeyFile,
		VNI:       cfg.Tunnel.VNI,
		Logger:    a.base.With("node", cfg.NodeName),
		Memory:    a.proc.Memory,
	})
	if err != nil {
		return err
	}
	a.backend = backend
	if err := a.startPeering(); err != nil {
		return err
	}

	seeds := make([]string, 0, len(cfg.Gossip.Seeds))
	for _, s := range cfg.Gossip.Seeds {
		addr, _ := cfg.seedAddr(s) // validated by Complete
		seeds = append(seeds, addr)
	}
	var static netip.Prefix
	if cfg.Kubernetes.Enabled {
		var kseeds []string
		static, kseeds, err = a.startKube(ctx)
		if err != nil {
			return err
		}
		seeds = append(seeds, kseeds...)
	}
	g, err := gossip.New(gossip.Config{
		NodeName:       cfg.NodeName,
		ClusterID:      cfg.ClusterID,
		BindAddr:       u.Address,
		BindPort:       cfg.Gossip.Port,
		AdvertiseAddr:  u.Address,
		Seeds:          seeds,
		Key:            key,
		ClusterCIDR:    cfg.ClusterPrefix(),
		BlockBits:      cfg.BlockSize,
		LeaseFile:      cfg.Gossip.LeaseFile,
		LeaseGrace:     cfg.Gossip.LeaseGrace.Duration,
		RejoinInterval: cfg.Gossip.RejoinInterval.Duration,
		StaticLease:    static,
		Meta:           gossip.Meta{UnderlayIP: u.Address, TunnelPort: cfg.Tunnel.Port, GatewayEligible: a.gatewayEligible()},
		Logger:         a.base,
	})
	if err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	a.gossip = g
	if err := applySysctls("/proc/sys", requiredSysctls); err != nil {
		return err
	}
	a.metrics.gossipStats = g.Stats

	errc := make(chan error, 2)
	go func() { errc <- serveStatus(ctx, cfg.StatusSocket, a.liveStatus, a.requestLeave) }()
	if cfg.MetricsAddress != "off" {
		go func() { errc <- serveHealth(ctx, cfg.MetricsAddress, a.metrics, a.readiness) }()
	}

	lease, err := g.Start(ctx)
	if err != nil {
		g.Shutdown()
		return fmt.Errorf("failed to join the cluster and obtain a lease: %w", err)
	}
	leaving := false
	defer func() { a.shutdown(leaving) }()

	if err := a.setupLease(ctx, lease); err != nil {
		return err
	}
	if err := a.openPeeringDevice(); err != nil {
		return fmt.Errorf("peering device: %w", err)
	}
	a.reconcile(ctx)
	if a.proc.Started != nil {
		e, ok := a.backend.(interface{ Embedded() bool })
		a.proc.Started(ctx, ok && e.Embedded())
	}
	if err := a.startAddons(ctx); err != nil {
		return err
	}

	var kubeChanges <-chan struct{} // nil, never ready, outside Kubernetes mode
	if a.kube != nil {
		kubeChanges = a.kube.Changes()
	}
	ticker := time.NewTicker(cfg.ResyncInterval.Duration)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.leaveReq:
			a.log.Info("leaving the cluster: freeing the lease and removing the data plane")
			leaving = true
			return nil
		case err := <-errc:
			if err != nil {
				return err
			}
		case <-g.Changes():
			if l := g.Lease(); l != a.currentLease() {
				a.log.Warn("pod CIDR lease changed", "old", a.currentLease(), "new", l)
				if err := a.setupLease(ctx, l); err != nil {
					a.log.Error("failed to move to the new lease", "err", err)
				}
			}
			a.reconcile(ctx)
		case <-kubeChanges:
			a.reconcile(ctx)
		case <-ticker.C:
			a.reconcile(ctx)
			a.reloadPeering()
		}
	}
}

func (a *Agent) currentLease() netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lease
}

// setupLease (re)creates the tunnel device for a lease, publishes the
// tunnel's identity in gossip and writes the state file for weft-cni.
func (a *Agent) setupLease(ctx context.Context, lease netip.Prefix) error {
	gw := nodestate.GatewayFor(lease)
	a.backendMu.Lock()
	info, err := a.backend.Setup(ctx, tunnel.Local{
		Name:        a.cfg.NodeName,
		UnderlayIP:  a.under.Address,
		UnderlayMTU: a.under.MTU,
		PodCIDR:     lease,
		Gateway:     gw,
	})
	a.backendMu.Unlock()
	if err != nil {
		return fmt.Errorf("failed to set up the %s tunnel: %w", a.backend.Name(), err)
	}
	if err := a.gossip.UpdateMeta(func(m *gossip.Meta) {
		m.PublicKey = info.PublicKey
		m.VTEPMAC = info.VTEPMAC
		m.TunnelPort = info.Port
	}); err != nil {
		return fmt.Errorf("failed to publish tunnel identity: %w", err)
	}
	if *a.cfg.Masquerade {
		if err := a.applyMasquerade(); err != nil {
			return err
		}
	}
	st := nodestate.State{
		Node:        a.cfg.NodeName,
		PodCIDR:     lease,
		Gateway:     gw,
		ClusterCIDR: a.cfg.ClusterPrefix(),
		MTU:         info.MTU,
	}
	if err := nodestate.Write(a.cfg.StateFile, st); err != nil {
		return err
	}
	a.metrics.leaseChanges.Inc()
	a.mu.Lock()
	a.lease = lease
	a.tunInfo = info
	a.status.PodCIDR = lease.String()
	a.status.MTU = info.MTU
	a.mu.Unlock()
	a.log.Info("lease in place", "podCIDR", lease, "gateway", gw, "mtu", info.MTU, "backend", a.backend.Name())
	return nil
}

func (a *Agent) applyMasquerade() error {
	var exempt []netip.Prefix
	if a.peering != nil {
		exempt = a.peering.plan.NoMasquerade
	}
	rs, err := masquerade.Plan(a.cfg.ClusterPrefix(), exempt...)
	if err != nil {
		return err
	}
	conn, err := masquerade.NewConn()
	if err != nil {
		return err
	}
	if masquerade.Current(conn, rs) {
		return nil
	}
	return masquerade.Apply(conn, rs)
}

// reconcile plans peers from gossip and applies them; it records the result
// for status, readiness and metrics. Errors are logged and retried on the
// next tick, never fatal.
func (a *Agent) reconcile(ctx context.Context) {
	start := time.Now()
	a.metrics.reconcileRuns.Inc()
	members := a.gossip.Peers()
	var deleted func(string) bool
	if a.kube != nil {
		deleted = a.kube.Deleted
	}
	a.tellLiveNodes(members, deleted)
	peers, skipped := planPeers(a.backend.Name(), members, deleted)
	gw, activeGW := a.planGateway(members)
	peers = withGatewayExtra(peers, activeGW, gw.ViaGateway)

	a.backendMu.Lock()
	err := a.backend.Apply(ctx, peers)
	if err == nil && *a.cfg.Masquerade {
		err = a.applyMasquerade()
	}
	if gerr := a.applyGateway(gw); gerr != nil {
		err = errors.Join(err, gerr)
	}
	a.backendMu.Unlock()
	if a.peering != nil {
		a.runClusterset(ctx, gw)
		a.peering.clusterset = nil
		if a.clusterset != nil && gw.Gateway {
			cs := a.clusterset.Status()
			a.peering.clusterset = &cs
		}
		snap := a.peering.snapshot()
		a.setStatus(func(s *Status) { s.Peering = snap })
	}
	a.metrics.reconcileTime.Observe(time.Since(start).Seconds())
	if err == nil && a.kube != nil {
		a.publishToNode(ctx)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	a.status.Members = a.gossip.Members()
	a.status.Skipped = skipped
	a.status.LastReconcile = time.Now()
	a.status.Peers = a.status.Peers[:0]
	for _, p := range peers {
		a.status.Peers = append(a.status.Peers, PeerStatus{
			Name:     p.Name,
			Endpoint: netip.AddrPortFrom(p.UnderlayIP, uint16(p.Port)).String(),
			PodCIDR:  p.PodCIDR.String(),
		})
	}
	if err != nil {
		a.metrics.reconcileErrs.Inc()
		a.status.LastError = err.Error()
		a.log.Error("reconcile failed", "err", err, "peers", len(peers))
		return
	}
	a.status.LastError = ""
	a.ready = true
	a.status.Ready = true
	a.log.Debug("reconciled", "peers", len(peers), "skipped", len(skipped), "took", time.Since(start))
}

// liveStatus is the status with fresh tunnel counters.
func (a *Agent) liveStatus() Status {
	st := a.Status()
	if a.backend == nil || !a.currentLease().IsValid() {
		return st
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a.backendMu.Lock()
	stats, err := a.backend.Stats(ctx)
	a.backendMu.Unlock()
	if err != nil {
		if st.LastError != "" {
			st.LastError += "; "
		}
		st.LastError += "tunnel stats: " + err.Error()
		return st
	}
	byName := make(map[string]tunnel.PeerStats, len(stats))
	for _, s := range stats {
		byName[s.Name] = s
	}
	for i := range st.Peers {
		if s, ok := byName[st.Peers[i].Name]; ok {
			st.Peers[i].LastHandshake = s.LastHandshake
			st.Peers[i].RxBytes = s.RxBytes
			st.Peers[i].TxBytes = s.TxBytes
		}
	}
	st.Members = a.gossip.Members()
	return st
}

func (a *Agent) setStatus(f func(*Status)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(&a.status)
}

// shutdown ends the agent. By default it stops gossip without leaving and
// leaves the data plane in place (a restart must not cut pods off, and the
// lease stays reserved for this node). When leaving, it announces the leave
// so others free the lease at once, and removes the tunnel device, routes,
// masquerade table and state file.
func (a *Agent) shutdown(leave bool) {
	a.closeAddons(leave)
	a.closePeering(leave)
	if leave {
		if err := a.gossip.Leave(5 * time.Second); err != nil {
			a.log.Warn("gossip leave", "err", err)
		}
	} else if err := a.gossip.Shutdown(); err != nil {
		a.log.Warn("gossip shutdown", "err", err)
	}
	a.backendMu.Lock()
	defer a.backendMu.Unlock()
	if err := a.backend.Close(leave); err != nil {
		a.log.Warn("tunnel close", "err", err)
	}
	if !leave {
		return
	}
	if conn, err := masquerade.NewConn(); err == nil {
		if err := masquerade.Remove(conn); err != nil {
			a.log.Warn("masquerade removal", "err", err)
		}
	}
	if err := nodestate.Remove(a.cfg.StateFile); err != nil {
		a.log.Warn("state file removal", "err", err)
	}
}

func (a *Agent) requestLeave() {
	select {
	case a.leaveReq <- struct{}{}:
	default:
	}
}

// gossipCounters names gossip's counters for the metrics endpoint.
func gossipCounters(s gossip.Stats) map[string]uint64 {
	return map[string]uint64{
		"malformed_meta":   s.MalformedMeta,
		"foreign_cluster":  s.ForeignMeta,
		"malformed_state":  s.MalformedState,
		"decrypt_failures": s.DecryptFailures,
		"conflicts_lost":   s.ConflictsLost,
		"reclaims":         s.Reclaims,
		"unproven_members": s.Unproven,
	}
}
