package loadbalancer

import (
	"net/netip"
	"slices"
	"sync"
)

// Candidates says which nodes may announce a load-balancer address: any
// live node, or (externalTrafficPolicy Local) only those of Nodes.
type Candidates struct {
	Addr  netip.Addr
	Any   bool
	Nodes []string
}

// Owned returns the addresses self announces: for each, Elect over the
// live nodes that may announce it. It is pure.
func Owned(self string, live []string, cs []Candidates) []netip.Addr {
	var out []netip.Addr
	for _, c := range cs {
		cands := live
		if !c.Any {
			cands = nil
			for _, n := range c.Nodes {
				if slices.Contains(live, n) {
					cands = append(cands, n)
				}
			}
		}
		if Elect(c.Addr, cands) == self && !slices.Contains(out, c.Addr) {
			out = append(out, c.Addr)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Setter is what a Speaker drives: *Announcer.
type Setter interface{ Set([]netip.Addr) }

// Speaker keeps an announcer answering for the addresses this node owns as
// the live nodes and the Services' addresses change. Its methods are safe
// to call from several goroutines (the agent's loop reports the live
// nodes, the Service proxy's loop the addresses); they never block on the
// network.
type Speaker struct {
	self string
	out  Setter

	mu    sync.Mutex // guards the fields below
	known bool       // SetLive was called: until then nothing is announced
	live  []string
	cands []Candidates
	owned []netip.Addr
}

// NewSpeaker returns a Speaker for node self driving out.
func NewSpeaker(self string, out Setter) *Speaker {
	return &Speaker{self: self, out: out}
}

// SetLive reports the live nodes (self is always one).
func (s *Speaker) SetLive(nodes []string) {
	live := append([]string{s.self}, nodes...)
	slices.Sort(live)
	live = slices.Compact(live)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live, s.known = live, true
	s.updateLocked()
}

// SetCandidates reports the load-balancer addresses and who may announce them.
func (s *Speaker) SetCandidates(cs []Candidates) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cands = cs
	s.updateLocked()
}

// Owned returns the addresses this node announces now.
func (s *Speaker) Owned() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.owned)
}

func (s *Speaker) updateLocked() {
	if !s.known {
		return // alone as far as it knows: it would announce everything
	}
	owned := Owned(s.self, s.live, s.cands)
	if slices.Equal(owned, s.owned) && s.owned != nil {
		return
	}
	s.owned = owned
	if s.owned == nil {
		s.owned = []netip.Addr{}
	}
	s.out.Set(owned)
}
