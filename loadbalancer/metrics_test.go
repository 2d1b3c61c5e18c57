package loadbalancer

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("not a counter or gauge: %v", &m)
	return 0
}

// gathered returns every series of reg as "name{labels} value".
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			name := mf.GetName()
			for _, l := range m.Label {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			}
		}
	}
	return out
}

func TestMetricsFromAssignment(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering twice did not fail")
	}
	ps := pools(t, "10.0.0.0/30", "10.0.1.0-10.0.1.9")
	as := Assign(ps, DefaultClass, []Request{lb("ns/a", 1), lb("ns/b", 2).asks("10.0.1.5"), lb("ns/c", 3).asks("10.9.9.9"), lb("ns/d", 4).asks("bad")})
	m.setAssignment(ps, as)
	got := gathered(t, reg)
	for name, want := range map[string]float64{
		"weft_loadbalancer_leader":                                      1,
		"weft_loadbalancer_addresses_assigned":                          2,
		"weft_loadbalancer_pool_addresses{pool=10.0.0.0/30}":            4,
		"weft_loadbalancer_pool_free_addresses{pool=10.0.0.0/30}":       3,
		"weft_loadbalancer_pool_addresses{pool=10.0.1.0-10.0.1.9}":      10,
		"weft_loadbalancer_pool_free_addresses{pool=10.0.1.0-10.0.1.9}": 9,
		"weft_loadbalancer_services_unserved{reason=OutsidePools}":      1,
		"weft_loadbalancer_services_unserved{reason=InvalidRequest}":    1,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	m.notLeader()
	got = gathered(t, reg)
	if got["weft_loadbalancer_leader"] != 0 || got["weft_loadbalancer_pool_addresses{pool=10.0.0.0/30}"] != 0 {
		t.Errorf("after losing the lease: %v", got)
	}
	var nilMetrics *Metrics
	nilMetrics.setAssignment(ps, as) // counts nothing, does not panic
	nilMetrics.countARP("reply")
}
