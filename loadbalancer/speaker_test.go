package loadbalancer

import (
	"net/netip"
	"slices"
	"testing"
)

type setRecorder struct{ sets [][]netip.Addr }

func (r *setRecorder) Set(a []netip.Addr) { r.sets = append(r.sets, slices.Clone(a)) }

func TestOwned(t *testing.T) {
	a1, a2 := netip.MustParseAddr("192.168.77.200"), netip.MustParseAddr("192.168.77.201")
	live := []string{"n1", "n2", "n3"}
	cs := []Candidates{{Addr: a1, Any: true}, {Addr: a2, Nodes: []string{"n2", "n9"}}}
	owners := map[netip.Addr]string{}
	for _, n := range live {
		for _, a := range Owned(n, live, cs) {
			if o, ok := owners[a]; ok {
				t.Errorf("%s announced by %s and %s", a, o, n)
			}
			owners[a] = n
		}
	}
	if owners[a1] != Elect(a1, live) {
		t.Errorf("%s owned by %q, want the elected %q", a1, owners[a1], Elect(a1, live))
	}
	if owners[a2] != "n2" {
		t.Errorf("%s (externalTrafficPolicy Local, endpoint on n2 and on dead n9) owned by %q, want n2", a2, owners[a2])
	}
	if got := Owned("n2", []string{"n1", "n3"}, []Candidates{{Addr: a2, Nodes: []string{"n2"}}}); got != nil {
		t.Errorf("a node not live owns %v", got)
	}
	if got := Owned("n1", live, []Candidates{{Addr: a2, Nodes: nil}}); got != nil {
		t.Errorf("an address no node may announce is owned: %v", got)
	}
}

func TestSpeakerFailover(t *testing.T) {
	a := netip.MustParseAddr("192.168.77.200")
	live := []string{"n1", "n2", "n3"}
	owner := Elect(a, live)
	var rest []string
	for _, n := range live {
		if n != owner {
			rest = append(rest, n)
		}
	}
	next := Elect(a, rest)
	rec := &setRecorder{}
	s := NewSpeaker(next, rec)
	s.SetLive(live)
	s.SetCandidates([]Candidates{{Addr: a, Any: true}})
	if len(s.Owned()) != 0 {
		t.Fatalf("%s owns %v while %s is live", next, s.Owned(), owner)
	}
	s.SetLive(slices.DeleteFunc(slices.Clone(live), func(n string) bool { return n == owner || n == next }))
	if !slices.Equal(s.Owned(), []netip.Addr{a}) {
		t.Errorf("after %s died %s owns %v, want %s", owner, next, s.Owned(), a)
	}
	s.SetLive(live)
	if len(s.Owned()) != 0 {
		t.Errorf("after %s came back %s still owns %v", owner, next, s.Owned())
	}
	if n := len(rec.sets); n != 3 {
		t.Errorf("announcer set %d times (%v), want 3: none, the address, none", n, rec.sets)
	}
}

func TestSpeakerWaitsForLiveNodes(t *testing.T) {
	rec := &setRecorder{}
	s := NewSpeaker("n1", rec)
	s.SetCandidates([]Candidates{{Addr: netip.MustParseAddr("192.168.77.200"), Any: true}})
	if len(rec.sets) != 0 {
		t.Errorf("announced %v before knowing the live nodes", rec.sets)
	}
}
