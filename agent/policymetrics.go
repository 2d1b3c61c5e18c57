package agent

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/policy"
)

// policyMetrics are the policy addon's series on the agent's registry.
type policyMetrics struct {
	compileTime prometheus.Histogram
	applyTime   prometheus.Histogram
	errors      *prometheus.CounterVec
	policies    prometheus.Gauge
	pods        prometheus.Gauge
	problems    prometheus.Gauge

	mu       sync.Mutex // guards drops and podDrops
	drops    map[chainLabels]uint64
	podDrops map[podLabels]uint64
}

type podLabels struct{ direction, pod string }

var descPolicyDrops = prometheus.NewDesc("weft_policy_dropped_packets_total",
	"Packets dropped by NetworkPolicy, by direction and the policies selecting the destination (ingress) or source (egress) pod.",
	[]string{"direction", "policies"}, nil)

var descPolicyPodDrops = prometheus.NewDesc("weft_policy_pod_dropped_packets_total",
	"Packets dropped by NetworkPolicy per isolated pod on this node (ingress: to it; egress: from it), while it stays isolated.",
	[]string{"direction", "pod"}, nil)

func newPolicyMetrics(reg *prometheus.Registry) *policyMetrics {
	m := &policyMetrics{
		compileTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_policy_compile_duration_seconds", Help: "Time to compile the node's NetworkPolicy ruleset.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		applyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "weft_policy_apply_duration_seconds", Help: "Time to apply the ruleset to nftables.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_policy_errors_total", Help: "Failed compiles and applies (the previous ruleset stayed in force).",
		}, []string{"stage"}),
		policies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_policy_policies", Help: "NetworkPolicies selecting pods on this node.",
		}),
		pods: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_policy_pods_enforced", Help: "Pods on this node isolated by NetworkPolicy in at least one direction.",
		}),
		problems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_policy_problems", Help: "Parts of NetworkPolicies weft cannot enforce exactly (see weft status).",
		}),
		drops: map[chainLabels]uint64{},
	}
	reg.MustRegister(m.compileTime, m.applyTime, m.errors, m.policies, m.pods, m.problems, m)
	return m
}

func (m *policyMetrics) set(rs policy.Ruleset) {
	m.policies.Set(float64(rs.Policies))
	m.pods.Set(float64(rs.Pods))
	m.problems.Set(float64(len(rs.Problems)))
}

func (m *policyMetrics) setDrops(d map[chainLabels]uint64, pods map[podLabels]uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.drops, m.podDrops = d, pods
}

// Describe implements prometheus.Collector for the drop counters.
func (m *policyMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPolicyDrops
	ch <- descPolicyPodDrops
}

// Collect implements prometheus.Collector from the last counter read.
func (m *policyMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for l, n := range m.drops {
		ch <- prometheus.MustNewConstMetric(descPolicyDrops, prometheus.CounterValue, float64(n), l.direction, l.policies)
	}
	for l, n := range m.podDrops {
		ch <- prometheus.MustNewConstMetric(descPolicyPodDrops, prometheus.CounterValue, float64(n), l.direction, l.pod)
	}
}
