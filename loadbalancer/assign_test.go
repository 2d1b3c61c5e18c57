package loadbalancer

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func pools(t *testing.T, ss ...string) []Pool {
	t.Helper()
	var out []Pool
	for _, s := range ss {
		p, err := ParsePool(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// lb is a weft LoadBalancer Service created at minute n.
func lb(key string, n int, current ...string) Request {
	return Request{Key: key, Type: corev1.ServiceTypeLoadBalancer, Created: t0.Add(time.Duration(n) * time.Minute), Current: addrs(current...)}
}

func (r Request) asks(a string) Request            { r.Requested = a; return r }
func (r Request) class(c string) Request           { r.Class = &c; return r }
func (r Request) typ(t corev1.ServiceType) Request { r.Type = t; return r }

// show renders assignments as key=addr or key!reason, in request order.
func show(as []Assignment) []string {
	var out []string
	for _, a := range as {
		if a.Addr.IsValid() {
			out = append(out, a.Key+"="+a.Addr.String())
		} else {
			out = append(out, a.Key+"!"+string(a.Reason))
		}
	}
	return out
}

func TestAssign(t *testing.T) {
	const pool = "10.0.0.1-10.0.0.3"
	for _, tc := range []struct {
		name  string
		pools []string
		reqs  []Request
		want  []string
	}{
		{"creation order, not list order", []string{pool},
			[]Request{lb("ns/c", 3), lb("ns/a", 1), lb("ns/b", 2)},
			[]string{"ns/c=10.0.0.3", "ns/a=10.0.0.1", "ns/b=10.0.0.2"}},
		{"same creation time: by key", []string{pool},
			[]Request{lb("ns/z", 1), lb("ns/y", 1)},
			[]string{"ns/z=10.0.0.2", "ns/y=10.0.0.1"}},
		{"keeps current address although older Services come new", []string{pool},
			[]Request{lb("ns/old", 1), lb("ns/new", 9, "10.0.0.1")},
			[]string{"ns/old=10.0.0.2", "ns/new=10.0.0.1"}},
		{"exhausted: the youngest goes without, the rest are served", []string{pool},
			[]Request{lb("ns/d", 4), lb("ns/a", 1), lb("ns/b", 2), lb("ns/c", 3)},
			[]string{"ns/d!PoolExhausted", "ns/a=10.0.0.1", "ns/b=10.0.0.2", "ns/c=10.0.0.3"}},
		{"exhausted by current holders: a new Service does not evict", []string{pool},
			[]Request{lb("ns/first", 0), lb("ns/x", 5, "10.0.0.1"), lb("ns/y", 6, "10.0.0.2"), lb("ns/z", 7, "10.0.0.3")},
			[]string{"ns/first!PoolExhausted", "ns/x=10.0.0.1", "ns/y=10.0.0.2", "ns/z=10.0.0.3"}},
		{"no pools", nil, []Request{lb("ns/a", 1)}, []string{"ns/a!PoolExhausted"}},
		{"second pool when the first is full", []string{"10.0.0.1/32", "10.0.1.0/31"},
			[]Request{lb("ns/a", 1), lb("ns/b", 2), lb("ns/c", 3)},
			[]string{"ns/a=10.0.0.1", "ns/b=10.0.1.0", "ns/c=10.0.1.1"}},
		{"requested address", []string{pool},
			[]Request{lb("ns/a", 1), lb("ns/b", 2).asks("10.0.0.1")},
			[]string{"ns/a=10.0.0.2", "ns/b=10.0.0.1"}},
		{"requested address outside the pools", []string{pool},
			[]Request{lb("ns/a", 1).asks("10.0.0.9")},
			[]string{"ns/a!OutsidePools"}},
		{"requested IPv6 address", []string{pool},
			[]Request{lb("ns/a", 1).asks("fd00::1")},
			[]string{"ns/a!OutsidePools"}},
		{"requested address is not one", []string{pool},
			[]Request{lb("ns/a", 1).asks("10.0.0")},
			[]string{"ns/a!InvalidRequest"}},
		{"requested address held by another Service's status", []string{pool},
			[]Request{lb("ns/a", 1).asks("10.0.0.2"), lb("ns/b", 2, "10.0.0.2")},
			[]string{"ns/a!Taken", "ns/b=10.0.0.2"}},
		{"two ask for one: the older gets it", []string{pool},
			[]Request{lb("ns/b", 2).asks("10.0.0.3"), lb("ns/a", 1).asks("10.0.0.3")},
			[]string{"ns/b!Taken", "ns/a=10.0.0.3"}},
		{"asking for another address moves, and the old one is not reused yet", []string{"10.0.0.1-10.0.0.2"},
			[]Request{lb("ns/a", 1, "10.0.0.1").asks("10.0.0.2"), lb("ns/b", 2)},
			[]string{"ns/a=10.0.0.2", "ns/b!PoolExhausted"}},
		{"current address outside the pools is replaced", []string{pool},
			[]Request{lb("ns/a", 1, "192.0.2.1")},
			[]string{"ns/a=10.0.0.1"}},
		{"two show one address (after a split): the older keeps it", []string{pool},
			[]Request{lb("ns/young", 5, "10.0.0.1"), lb("ns/old", 1, "10.0.0.1")},
			[]string{"ns/young=10.0.0.2", "ns/old=10.0.0.1"}},
		{"other class and ClusterIP are skipped; their addresses stay reserved", []string{pool},
			[]Request{
				lb("ns/other", 1, "10.0.0.1").class("example.com/lb"),
				lb("ns/was-lb", 2, "10.0.0.2").typ(corev1.ServiceTypeClusterIP),
				lb("ns/mine", 3).class(DefaultClass),
				lb("ns/next", 4)},
			[]string{"ns/other!OtherClass", "ns/was-lb!NotLoadBalancer", "ns/mine=10.0.0.3", "ns/next!PoolExhausted"}},
		{"unparsable request keeps nothing but reserves its address", []string{"10.0.0.1/32"},
			[]Request{lb("ns/a", 1, "10.0.0.1").asks("x"), lb("ns/b", 2)},
			[]string{"ns/a!InvalidRequest", "ns/b!PoolExhausted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := show(Assign(pools(t, tc.pools...), DefaultClass, tc.reqs))
			if !slices.Equal(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

// Released addresses are free at the next pass: replaying the outcome as
// the Services' status converges, and never shows one address twice.
func TestAssignConverges(t *testing.T) {
	ps := pools(t, "10.0.0.1-10.0.0.4")
	reqs := []Request{lb("ns/a", 1, "10.0.0.1").typ(corev1.ServiceTypeNodePort), lb("ns/b", 2, "10.0.0.2"), lb("ns/c", 3), lb("ns/d", 4), lb("ns/e", 5).asks("10.0.0.1")}
	var last []string
	for pass := 0; pass < 4; pass++ {
		as := Assign(ps, DefaultClass, reqs)
		seen := map[netip.Addr]string{}
		for i, a := range as {
			reqs[i].Current = nil
			if a.Addr.IsValid() {
				if other, ok := seen[a.Addr]; ok {
					t.Fatalf("pass %d: %s given to %s and %s", pass, a.Addr, other, a.Key)
				}
				seen[a.Addr] = a.Key
				reqs[i].Current = []netip.Addr{a.Addr}
			}
		}
		last = show(as)
	}
	want := []string{"ns/a!NotLoadBalancer", "ns/b=10.0.0.2", "ns/c=10.0.0.3", "ns/d=10.0.0.4", "ns/e=10.0.0.1"}
	if !slices.Equal(last, want) {
		t.Errorf("converged to %v, want %v", last, want)
	}
}

// Every replica computes the same, whatever order its informer lists in.
func TestAssignIgnoresListOrder(t *testing.T) {
	ps := pools(t, "10.0.0.0/28")
	var reqs []Request
	for i := range 20 {
		r := lb(fmt.Sprintf("ns/s%02d", i), i%5)
		if i%7 == 0 {
			r = r.asks(fmt.Sprintf("10.0.0.%d", 15-i/7))
		}
		reqs = append(reqs, r)
	}
	byKey := func(rs []Request) map[string]string {
		m := map[string]string{}
		for _, s := range show(Assign(ps, DefaultClass, rs)) {
			m[s[:6]] = s
		}
		return m
	}
	want := byKey(reqs)
	exhausted := 0
	for _, s := range want {
		if s[6] == '!' {
			exhausted++
		}
	}
	if exhausted != 4 {
		t.Errorf("%d Services without an address, want 4 (20 Services, 16 addresses): %v", exhausted, want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10 {
		rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
		got := byKey(reqs)
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("after a shuffle %s, want %s", got[k], v)
			}
		}
	}
}

func TestPoolUsage(t *testing.T) {
	ps := pools(t, "10.0.0.0/30", "10.0.1.0/30")
	as := Assign(ps, DefaultClass, []Request{lb("ns/a", 1), lb("ns/b", 2).asks("10.0.1.2"), lb("ns/c", 3), lb("ns/d", 4).asks("10.9.9.9")})
	if got := PoolUsage(ps, as); !slices.Equal(got, []uint64{2, 1}) {
		t.Errorf("usage %v, want [2 1]", got)
	}
}
