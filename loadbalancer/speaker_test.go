package loadbalancer

import (
	"net/netip"
	"slices"
	"testing"
)

func TestSpeak(t *testing.T) {
	ps := pools(t, "10.0.0.0/24")
	as := manyAddrs(40) // 10.0.0.0-39
	var any []Candidates
	for _, a := range as {
		any = append(any, Candidates{Addr: a, Any: true})
	}
	live := []string{"n1", "n2", "n3"}

	// Every address is announced by exactly one live node.
	count := map[netip.Addr]int{}
	for _, n := range live {
		for _, a := range Speak(n, live, any, ps) {
			count[a]++
		}
	}
	for _, a := range as {
		if count[a] != 1 {
			t.Errorf("%s announced by %d nodes", a, count[a])
		}
	}
	// A node missing from its own live list still counts itself.
	if got, want := Speak("n1", []string{"n2", "n3"}, any, ps), Speak("n1", live, any, ps); !slices.Equal(got, want) {
		t.Errorf("without itself in live: %v, want %v", got, want)
	}

	a := netip.MustParseAddr("10.0.0.7")
	for _, tc := range []struct {
		name string
		c    Candidates
		live []string
		want map[string]bool // node → announces a
	}{
		{"local policy: only the endpoint's node", Candidates{Addr: a, Nodes: []string{"n2"}}, live, map[string]bool{"n2": true}},
		{"local policy: endpoint node dead", Candidates{Addr: a, Nodes: []string{"n4"}}, live, map[string]bool{}},
		{"local policy: no endpoints", Candidates{Addr: a}, live, map[string]bool{}},
		{"outside the pools", Candidates{Addr: netip.MustParseAddr("192.0.2.1"), Any: true}, live, map[string]bool{}},
	} {
		got := map[string]bool{}
		for _, n := range append(slices.Clone(live), "n4") {
			if slices.Contains(Speak(n, tc.live, []Candidates{tc.c}, ps), tc.c.Addr) && slices.Contains(tc.live, n) {
				got[n] = true
			}
		}
		if len(got) != len(tc.want) || !func() bool {
			for n := range tc.want {
				if !got[n] {
					return false
				}
			}
			return true
		}() {
			t.Errorf("%s: announced by %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := Speak("n1", nil, []Candidates{{Addr: netip.MustParseAddr("192.0.2.1"), Any: true}}, nil); len(got) != 1 {
		t.Errorf("without pools every address may be announced: %v", got)
	}
}

type fakeSetter struct{ sets [][]netip.Addr }

func (f *fakeSetter) Set(a []netip.Addr) { f.sets = append(f.sets, a) }

func TestSpeakerWaitsForLiveNodesAndFollowsThem(t *testing.T) {
	f := &fakeSetter{}
	ps := pools(t, "10.0.0.0/24")
	s := newSpeaker("n1", f, ps)
	var cs []Candidates
	for _, a := range manyAddrs(20) {
		cs = append(cs, Candidates{Addr: a, Any: true})
	}
	s.SetCandidates(cs)
	if len(f.sets) != 0 {
		t.Fatalf("announced %v before knowing the live nodes", f.sets)
	}
	s.SetLive([]string{"n1", "n2"})
	withTwo := Speak("n1", []string{"n2"}, cs, ps)
	if len(f.sets) != 1 || !slices.Equal(f.sets[0], withTwo) || len(withTwo) == 0 {
		t.Fatalf("sets %v, want one with %v", f.sets, withTwo)
	}
	s.SetLive([]string{"n2", "n1"}) // same view: no call
	if len(f.sets) != 1 {
		t.Errorf("same view set again: %v", f.sets[1:])
	}
	s.SetLive(nil) // n2 gone: n1 takes everything
	if got := f.sets[len(f.sets)-1]; len(got) != 20 || !slices.Equal(s.Announcing(), got) {
		t.Errorf("alone: announcing %v", got)
	}
	s.SetCandidates(nil)
	if got := f.sets[len(f.sets)-1]; len(got) != 0 {
		t.Errorf("no candidates: announcing %v", got)
	}
}
