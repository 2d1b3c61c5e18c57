package loadbalancer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the load balancer's Prometheus series. The allocator's are
// set only on the node holding the Lease (and dropped when it loses it);
// the announcer's on every node. A nil *Metrics counts nothing.
type Metrics struct {
	leader    prometheus.Gauge
	assigned  prometheus.Gauge
	unserved  *prometheus.GaugeVec
	poolSize  *prometheus.GaugeVec
	poolFree  *prometheus.GaugeVec
	writes    *prometheus.CounterVec
	announced prometheus.Gauge
	arpSent   *prometheus.CounterVec
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_loadbalancer_leader", Help: "1 on the node that holds the load-balancer Lease and assigns addresses.",
		}),
		assigned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_loadbalancer_addresses_assigned", Help: "Load-balancer addresses assigned to Services (leader only).",
		}),
		unserved: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_loadbalancer_services_unserved", Help: "LoadBalancer Services weft serves but could not give an address, by reason (leader only).",
		}, []string{"reason"}),
		poolSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_loadbalancer_pool_addresses", Help: "Addresses in each pool (leader only).",
		}, []string{"pool"}),
		poolFree: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_loadbalancer_pool_free_addresses", Help: "Addresses of each pool no Service holds (leader only).",
		}, []string{"pool"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_loadbalancer_status_updates_total", Help: "Service status writes by the allocator, by result (ok, error).",
		}, []string{"result"}),
		announced: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_loadbalancer_announced_addresses", Help: "Addresses this node answers ARP for.",
		}),
		arpSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_loadbalancer_arp_sent_total", Help: "ARP frames sent for load-balancer addresses, by kind (gratuitous, reply).",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.leader, m.assigned, m.unserved, m.poolSize, m.poolFree, m.writes, m.announced, m.arpSent} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("failed to register load-balancer metrics: %w", err)
		}
	}
	return m, nil
}

// setAssignment records one assignment pass of the leader.
func (m *Metrics) setAssignment(pools []Pool, as []Assignment) {
	if m == nil {
		return
	}
	m.leader.Set(1)
	used := PoolUsage(pools, as)
	total := 0.0
	m.poolSize.Reset()
	m.poolFree.Reset()
	for i, p := range pools {
		m.poolSize.WithLabelValues(p.String()).Set(float64(p.Size()))
		m.poolFree.WithLabelValues(p.String()).Set(float64(p.Size() - used[i]))
		total += float64(used[i])
	}
	m.assigned.Set(total)
	m.unserved.Reset()
	for _, a := range as {
		if a.Reason.Unserved() {
			m.unserved.WithLabelValues(string(a.Reason)).Inc()
		}
	}
}

// notLeader drops the leader's series.
func (m *Metrics) notLeader() {
	if m == nil {
		return
	}
	m.leader.Set(0)
	m.assigned.Set(0)
	m.unserved.Reset()
	m.poolSize.Reset()
	m.poolFree.Reset()
}

func (m *Metrics) countWrite(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.writes.WithLabelValues("error").Inc()
	} else {
		m.writes.WithLabelValues("ok").Inc()
	}
}

func (m *Metrics) setAnnounced(n int) {
	if m != nil {
		m.announced.Set(float64(n))
	}
}

func (m *Metrics) countARP(kind string) {
	if m != nil {
		m.arpSent.WithLabelValues(kind).Inc()
	}
}
