package serviceproxy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// recorder is a Conn that records the batch as ops and holds the table's
// marker rule as the kernel would after a flush.
type recorder struct {
	ops     []string
	pending []string
	table   bool // the services chain's first rule carries structureVersion
}

var _ Conn = (*recorder)(nil)

func (r *recorder) op(s string) { r.pending = append(r.pending, s) }

func (r *recorder) AddTable(t *nftables.Table) *nftables.Table { r.op("add table"); return t }
func (r *recorder) DelTable(*nftables.Table)                   { r.op("del table") }
func (r *recorder) AddChain(c *nftables.Chain) *nftables.Chain { r.op("add chain " + c.Name); return c }
func (r *recorder) FlushChain(c *nftables.Chain)               { r.op("flush chain " + c.Name) }
func (r *recorder) DelChain(c *nftables.Chain)                 { r.op("del chain " + c.Name) }
func (r *recorder) AddRule(x *nftables.Rule) *nftables.Rule {
	r.op("add rule " + x.Chain.Name)
	return x
}
func (r *recorder) AddSet(s *nftables.Set, el []nftables.SetElement) error {
	if !s.Anonymous {
		r.op("add set " + s.Name)
	}
	return nil
}
func (r *recorder) DelSet(s *nftables.Set) { r.op("del set " + s.Name) }
func (r *recorder) SetAddElements(s *nftables.Set, el []nftables.SetElement) error {
	for range el {
		r.op("add element " + s.Name)
	}
	return nil
}
func (r *recorder) SetDeleteElements(s *nftables.Set, el []nftables.SetElement) error {
	for range el {
		r.op("del element " + s.Name)
	}
	return nil
}
func (r *recorder) GetRules(t *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error) {
	if !r.table || c.Name != servicesChain {
		return nil, nil
	}
	return []*nftables.Rule{{UserData: []byte(structureVersion), Exprs: []expr.Any{}}}, nil
}
func (r *recorder) Flush() error {
	r.ops = append(r.ops, r.pending...)
	if slices.Contains(r.pending, "add table") {
		r.table = true
	}
	r.pending = nil
	return nil
}

func (r *recorder) take() []string {
	ops := r.ops
	r.ops = nil
	return ops
}

func TestApplierWritesOnlyWhatChanged(t *testing.T) {
	rec := &recorder{}
	a := NewApplier(rec)
	mk := func(name string, ip string, eps ...netip.Addr) (string, *ServicePlan) {
		s := Service{Namespace: "default", Name: name, ClusterIPs: []netip.Addr{netip.MustParseAddr(ip)},
			Ports: []ServicePort{{Name: "http", Protocol: TCP, Port: 80}}}
		sl := slice()
		sl.Service = name
		for _, e := range eps {
			sl.Endpoints = append(sl.Endpoints, ready(e, "n1"))
		}
		return s.Key(), PlanService(testCtx, s, []Slice{sl})
	}
	p := &Plan{Services: map[string]*ServicePlan{}}
	for i, n := range []string{"a", "b", "c"} {
		k, sp := mk(n, "10.96.0."+string(rune('1'+i)), ep1, ep2)
		p.Services[k] = sp
	}
	st, err := a.Apply(p)
	if err != nil || st.Outcome != Replaced {
		t.Fatalf("first apply: %+v %v", st, err)
	}
	if ops := rec.take(); !slices.Contains(ops, "del table") || len(ops) < 20 {
		t.Fatalf("first apply did not write the table: %q", ops)
	}

	// b loses an endpoint: its service chain is rewritten and the gone
	// endpoint's chain deleted; nothing of a and c is touched.
	next := &Plan{Services: map[string]*ServicePlan{}}
	for k, sp := range p.Services {
		next.Services[k] = sp
	}
	k, sp := mk("b", "10.96.0.2", ep1)
	next.Services[k] = sp
	st, err = a.Apply(next)
	if err != nil || st.Outcome != Incremental {
		t.Fatalf("second apply: %+v %v", st, err)
	}
	want := []string{
		"flush chain service-default/b/tcp/80", "add rule service-default/b/tcp/80", "add rule service-default/b/tcp/80",
		"flush chain endpoint-default/b/tcp/80/10.244.2.5:8080", "del chain endpoint-default/b/tcp/80/10.244.2.5:8080",
	}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Errorf("second apply wrote\n %q\nwant\n %q", got, want)
	}
	if st.ChainsChanged != 1 || st.Chains != 1 || st.ChainsAdded != 0 {
		t.Errorf("stats %+v", st)
	}

	// The same plan again writes nothing.
	if st, err := a.Apply(next); err != nil || st.Outcome != Unchanged {
		t.Errorf("third apply: %+v %v", st, err)
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("an unchanged plan wrote %q", got)
	}

	// c goes away: its elements and chains are deleted.
	delete(next.Services, "default/c")
	if _, err := a.Apply(next); err != nil {
		t.Fatal(err)
	}
	got := rec.take()
	for _, w := range []string{"del element service-ips", "del element cluster-ips", "del chain service-default/c/tcp/80",
		"del chain endpoint-default/c/tcp/80/10.244.1.5:8080", "del chain endpoint-default/c/tcp/80/10.244.2.5:8080"} {
		if !slices.Contains(got, w) {
			t.Errorf("removing c: no %q in %q", w, got)
		}
	}
	for _, op := range got {
		if strings.Contains(op, "default/a/") || strings.Contains(op, "default/b/") {
			t.Errorf("removing c touched %q", op)
		}
	}

	// A table gone from the kernel is written anew.
	rec.table = false
	if st, err := a.Apply(next); err != nil || st.Outcome != Replaced {
		t.Errorf("apply after the table vanished: %+v %v", st, err)
	}
}
