package dnsproxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's Prometheus series. A nil *Metrics records
// nothing, so handlers can be built without it in tests.
type Metrics struct {
	queries      *prometheus.CounterVec
	cacheHits    prometheus.Counter
	cacheMisses  prometheus.Counter
	cacheStale   prometheus.Counter
	cacheEntries prometheus.Gauge
	upstream     *prometheus.HistogramVec
	upstreamErrs *prometheus.CounterVec

	// The queries counters met so far, by queryKey: the UDP fast path
	// counts every query, and WithLabelValues (hashing and checking three
	// strings) cost more than answering a cache hit. The map is replaced,
	// never changed (a new key is rare), so readers on several CPUs share
	// it without writing to a lock.
	countersMu sync.Mutex // serializes replacing counters
	counters   atomic.Pointer[map[uint64]prometheus.Counter]
}

// queryKey is the key of Metrics.counters, for the types and rcodes that
// have names (so the map stays small whatever clients send).
func queryKey(qtype uint16, rcode int, proto string) (uint64, bool) {
	if _, ok := dns.TypeToString[qtype]; !ok || rcode < 0 || rcode > 0xFFF {
		return 0, false
	}
	k := uint64(qtype)<<32 | uint64(rcode)<<8
	switch proto {
	case "udp":
	case "tcp":
		k |= 1
	default:
		return 0, false
	}
	return k, true
}

// NewMetrics makes the series and registers them on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_dns_queries_total", Help: "DNS queries answered, by query type, response code and transport.",
		}, []string{"type", "rcode", "proto"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_dns_cache_hits_total", Help: "Forwarded names answered from the cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_dns_cache_misses_total", Help: "Forwarded names not in the cache (or expired).",
		}),
		cacheStale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "weft_dns_cache_stale_served_total", Help: "Expired answers served because every upstream failed.",
		}),
		cacheEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_dns_cache_entries", Help: "Answers held in the cache.",
		}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "weft_dns_upstream_duration_seconds", Help: "Round trip of queries forwarded upstream, by upstream and transport.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"upstream", "proto"}),
		upstreamErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_dns_upstream_errors_total", Help: "Forwarded queries that got no usable answer from an upstream.",
		}, []string{"upstream"}),
	}
	for _, c := range []prometheus.Collector{m.queries, m.cacheHits, m.cacheMisses, m.cacheStale, m.cacheEntries, m.upstream, m.upstreamErrs} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) query(qtype uint16, rcode int, proto string) {
	if m == nil {
		return
	}
	k, ok := queryKey(qtype, rcode, proto)
	if !ok {
		m.queriesCounter(qtype, rcode, proto).Inc()
		return
	}
	var c prometheus.Counter
	if cs := m.counters.Load(); cs != nil {
		c = (*cs)[k]
	}
	if c == nil {
		c = m.queriesCounter(qtype, rcode, proto)
		m.countersMu.Lock()
		next := map[uint64]prometheus.Counter{k: c}
		if cs := m.counters.Load(); cs != nil {
			for k, v := range *cs {
				next[k] = v
			}
		}
		m.counters.Store(&next)
		m.countersMu.Unlock()
	}
	c.Inc()
}

func (m *Metrics) queriesCounter(qtype uint16, rcode int, proto string) prometheus.Counter {
	t, ok := dns.TypeToString[qtype]
	if !ok {
		t = "other"
	}
	rc, ok := dns.RcodeToString[rcode]
	if !ok {
		rc = "other"
	}
	return m.queries.WithLabelValues(t, rc, proto)
}

func (m *Metrics) cacheHit() {
	if m != nil {
		m.cacheHits.Inc()
	}
}

func (m *Metrics) cacheMiss() {
	if m != nil {
		m.cacheMisses.Inc()
	}
}

func (m *Metrics) staleServed() {
	if m != nil {
		m.cacheStale.Inc()
	}
}

func (m *Metrics) cacheSize(n int) {
	if m != nil {
		m.cacheEntries.Set(float64(n))
	}
}

func (m *Metrics) upstreamRTT(upstream, proto string, d time.Duration) {
	if m != nil {
		m.upstream.WithLabelValues(upstream, proto).Observe(d.Seconds())
	}
}

func (m *Metrics) upstreamError(upstream string) {
	if m != nil {
		m.upstreamErrs.WithLabelValues(upstream).Inc()
	}
}
