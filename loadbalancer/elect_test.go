package loadbalancer

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func nodes(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("node-%d", i))
	}
	return out
}

func manyAddrs(n int) []netip.Addr {
	var out []netip.Addr
	a := netip.MustParseAddr("10.0.0.0")
	for range n {
		out = append(out, a)
		a = a.Next()
	}
	return out
}

func TestElectEmpty(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	if got := Elect(a, nil); got != "" {
		t.Errorf("no candidates: %q", got)
	}
	if got := Elect(a, []string{""}); got != "" {
		t.Errorf("only an empty name: %q", got)
	}
	if got := Elect(a, []string{"only"}); got != "only" {
		t.Errorf("one candidate: %q", got)
	}
}

func TestElectIgnoresOrder(t *testing.T) {
	ns := nodes(7)
	rev := slices.Clone(ns)
	slices.Reverse(rev)
	for _, a := range manyAddrs(200) {
		if x, y := Elect(a, ns), Elect(a, rev); x != y {
			t.Fatalf("%s: %s in one order, %s in the other", a, x, y)
		}
	}
}

func TestElectSpreads(t *testing.T) {
	ns := nodes(5)
	count := map[string]int{}
	for _, a := range manyAddrs(1000) {
		count[Elect(a, ns)]++
	}
	// 200 each on average; a node far off means the hash is not spreading.
	for _, n := range ns {
		if count[n] < 140 || count[n] > 260 {
			t.Errorf("%s announces %d of 1000 addresses: %v", n, count[n], count)
		}
	}
}

func TestElectMovesOnlyTheLostNodesAddresses(t *testing.T) {
	ns := nodes(6)
	as := manyAddrs(500)
	before := map[netip.Addr]string{}
	for _, a := range as {
		before[a] = Elect(a, ns)
	}
	gone := "node-3"
	rest := slices.DeleteFunc(slices.Clone(ns), func(n string) bool { return n == gone })
	moved := 0
	for _, a := range as {
		after := Elect(a, rest)
		switch {
		case before[a] == gone:
			moved++
			if after == gone || after == "" {
				t.Fatalf("%s still on %q", a, after)
			}
		case after != before[a]:
			t.Errorf("%s moved from %s to %s although %s was not its node", a, before[a], after, gone)
		}
	}
	if moved == 0 {
		t.Fatal("node-3 announced nothing; the test proves nothing")
	}
	// And back: when it returns, it takes exactly its addresses again.
	for _, a := range as {
		if got := Elect(a, ns); got != before[a] {
			t.Errorf("%s on %s after the node came back, was %s", a, got, before[a])
		}
	}
}

func TestAnnounced(t *testing.T) {
	ns := nodes(3)
	as := manyAddrs(30)
	var all []netip.Addr
	for _, n := range ns {
		mine := Announced(n, as, ns)
		for _, a := range mine {
			if Elect(a, ns) != n {
				t.Errorf("%s announces %s, elected %s", n, a, Elect(a, ns))
			}
		}
		all = append(all, mine...)
	}
	slices.SortFunc(all, netip.Addr.Compare)
	if !slices.Equal(all, as) {
		t.Errorf("the nodes together announce %v, want every address once", all)
	}
	if got := Announced("not-a-candidate", as, ns); len(got) != 0 {
		t.Errorf("a node that is no candidate announces %v", got)
	}
}
