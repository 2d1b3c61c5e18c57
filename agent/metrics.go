package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/weftnet/weft/gossip"
)

// metrics are the agent's Prometheus series, on a registry of its own.
type metrics struct {
	reg           *prometheus.Registry
	reconcileRuns prometheus.Counter
	reconcileErrs prometheus.Counter
	reconcileTime prometheus.Histogram
	leaseChanges  prometheus.Counter
	snapshot      func() Status
	gossipStats   func() gossip.Stats
}

func newMetrics(snapshot func() Status, gossipStats func() gossip.Stats) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		reconcileRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_reconcile_runs_total", Help: "Reconcile passes of the data plane.",
		}),
		reconcileErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_reconcile_errors_total", Help: "Reconcile passes that failed.",
		}),
		reconcileTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_reconcile_duration_seconds", Help: "Time to plan and apply the data plane.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		leaseChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_lease_changes_total", Help: "Times this node's pod CIDR lease was obtained or changed.",
		}),
		snapshot:    snapshot,
		gossipStats: gossipStats,
	}
	m.reg.MustRegister(m.reconcileRuns, m.reconcileErrs, m.reconcileTime, m.leaseChanges, m,
		// The agent's own footprint: Go heap, goroutines, GC (go_*),
		// resident memory and CPU (process_*), and the memory limit that
		// memoryLimit sets (go_gc_gomemlimit_bytes).
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/gomemlimit:bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	descMembers   = prometheus.NewDesc("weft_gossip_members", "Live gossip members, this node included.", nil, nil)
	descLease     = prometheus.NewDesc("weft_lease_info", "This node's pod CIDR lease (1 while held).", []string{"cidr"}, nil)
	descPeers     = prometheus.NewDesc("weft_tunnel_peers", "Peers programmed in the tunnel.", []string{"backend"}, nil)
	descSkipped   = prometheus.NewDesc("weft_tunnel_peers_skipped", "Gossip members not programmed (incomplete metadata).", nil, nil)
	descHandshake = prometheus.NewDesc("weft_tunnel_peer_handshake_age_seconds", "Seconds since the peer's last WireGuard handshake.", []string{"peer"}, nil)
	descRx        = prometheus.NewDesc("weft_tunnel_peer_rx_bytes", "Bytes received from the peer through the tunnel.", []string{"peer"}, nil)
	descTx        = prometheus.NewDesc("weft_tunnel_peer_tx_bytes", "Bytes sent to the peer through the tunnel.", []string{"peer"}, nil)
	descReady     = prometheus.NewDesc("weft_ready", "1 when the node's lease, tunnel and state file are in place.", nil, nil)
	descPeerGW    = prometheus.NewDesc("weft_peering_gateway_active", "1 on the node that is its cluster's active peering gateway.", nil, nil)
	descRemoteUp  = prometheus.NewDesc("weft_peering_remote_reachable", "1 while the remote cluster's networks are routed, 0 while they are refused.", []string{"cluster"}, nil)
	descRemoteHS  = prometheus.NewDesc("weft_peering_remote_handshake_age_seconds", "Seconds since the last handshake with the remote cluster's chosen gateway (active gateway only).", []string{"cluster", "gateway"}, nil)
	descRemoteRx  = prometheus.NewDesc("weft_peering_remote_rx_bytes", "Bytes received from the remote cluster's chosen gateway (active gateway only).", []string{"cluster", "gateway"}, nil)
	descRemoteTx  = prometheus.NewDesc("weft_peering_remote_tx_bytes", "Bytes sent to the remote cluster's chosen gateway (active gateway only).", []string{"cluster", "gateway"}, nil)
	descExported  = prometheus.NewDesc("weft_clusterset_exported_services", "Services this cluster exports to its peers (active gateway only).", nil, nil)
	descImported  = prometheus.NewDesc("weft_clusterset_imported_services", "A peer's exported Services imported here (active gateway only).", []string{"cluster"}, nil)
	descGossipTx  = prometheus.NewDesc("weft_gossip_sent_bytes_total", "Gossip payload bytes sent: udp (probes, acks, gossip), tcp (push/pull state exchanges).", []string{"transport"}, nil)
	descGossipRx  = prometheus.NewDesc("weft_gossip_received_bytes_total", "Gossip payload bytes received: udp (probes, acks, gossip), tcp (push/pull state exchanges).", []string{"transport"}, nil)
	descGossip    = prometheus.NewDesc("weft_gossip_events_total", "Gossip events by kind (rejected packets, malformed metadata, lease conflicts).", []string{"kind"}, nil)
)

// Describe implements prometheus.Collector for the snapshot-derived series.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMembers, descLease, descPeers, descSkipped, descHandshake, descRx, descTx, descReady, descGossip, descGossipTx, descGossipRx, descPeerGW, descRemoteUp, descRemoteHS, descRemoteRx, descRemoteTx, descExported, descImported} {
		ch <- d
	}
}

// Collect implements prometheus.Collector from the agent's latest status.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	st := m.snapshot()
	ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(st.Members))
	if st.PodCIDR != "" {
		ch <- prometheus.MustNewConstMetric(descLease, prometheus.GaugeValue, 1, st.PodCIDR)
	}
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(st.Peers)), st.Backend)
	ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.GaugeValue, float64(len(st.Skipped)))
	ready := 0.0
	if st.Ready {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	now := time.Now()
	for _, p := range st.Peers {
		if !p.LastHandshake.IsZero() {
			ch <- prometheus.MustNewConstMetric(descHandshake, prometheus.GaugeValue, now.Sub(p.LastHandshake).Seconds(), p.Name)
		}
		ch <- prometheus.MustNewConstMetric(descRx, prometheus.CounterValue, float64(p.RxBytes), p.Name)
		ch <- prometheus.MustNewConstMetric(descTx, prometheus.CounterValue, float64(p.TxBytes), p.Name)
	}
	if p := st.Peering; p != nil {
		collectPeering(ch, st.Node, p, now)
	}
	if m.gossipStats != nil {
		gs := m.gossipStats()
		for k, v := range gossipCounters(gs) {
			ch <- prometheus.MustNewConstMetric(descGossip, prometheus.CounterValue, float64(v), k)
		}
		tr := gs.Traffic
		for _, c := range []struct {
			desc  *prometheus.Desc
			bytes uint64
			proto string
		}{
			{descGossipTx, tr.PacketBytesSent, "udp"}, {descGossipRx, tr.PacketBytesReceived, "udp"},
			{descGossipTx, tr.StreamBytesSent, "tcp"}, {descGossipRx, tr.StreamBytesReceived, "tcp"},
		} {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.bytes), c.proto)
		}
	}
}

// collectPeering emits the peering series of node's status.
func collectPeering(ch chan<- prometheus.Metric, node string, p *PeeringStatus, now time.Time) {
	active := 0.0
	if p.ActiveGateway == node {
		active = 1
	}
	ch <- prometheus.MustNewConstMetric(descPeerGW, prometheus.GaugeValue, active)
	for _, r := range p.Remotes {
		up := 1.0
		if r.Unreachable != "" {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(descRemoteUp, prometheus.GaugeValue, up, r.Name)
		if r.Gateway == "" {
			continue
		}
		if !r.LastHandshake.IsZero() {
			ch <- prometheus.MustNewConstMetric(descRemoteHS, prometheus.GaugeValue, now.Sub(r.LastHandshake).Seconds(), r.Name, r.Gateway)
		}
		ch <- prometheus.MustNewConstMetric(descRemoteRx, prometheus.CounterValue, float64(r.RxBytes), r.Name, r.Gateway)
		ch <- prometheus.MustNewConstMetric(descRemoteTx, prometheus.CounterValue, float64(r.TxBytes), r.Name, r.Gateway)
	}
	if cs := p.Clusterset; cs != nil {
		ch <- prometheus.MustNewConstMetric(descExported, prometheus.GaugeValue, float64(cs.Exported))
		for cluster, n := range cs.Imported {
			ch <- prometheus.MustNewConstMetric(descImported, prometheus.GaugeValue, float64(n), cluster)
		}
	}
}

// serveHealth serves /healthz (the process is up), /readyz (the data plane
// is in place), /metrics and /debug/pprof on addr until ctx is done.
func serveHealth(ctx context.Context, addr string, m *metrics, ready func() (bool, string)) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := ready()
		if !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	// Profiles, for diagnosing the agent in place (the listener is
	// loopback-only unless configured otherwise).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("failed to listen on metricsAddress %s: %w", addr, err)
	}
	return serveHTTP(ctx, l, mux, "health")
}
