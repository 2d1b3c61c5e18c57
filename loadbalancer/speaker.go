package loadbalancer

import (
	"net/netip"
	"slices"
	"sync"
)

// Candidates is a load-balancer address and the nodes that may announce
// it: any live node (Any, externalTrafficPolicy Cluster), or only Nodes
// (Local: those with a usable endpoint; none means no one announces).
type Candidates struct {
	Addr  netip.Addr
	Any   bool
	Nodes []string
}

// Speak returns the addresses node announces, sorted: for each address in
// the pools (any address when pools is empty), the node Elect picks among
// its candidates that are live. node itself always counts as live. Every
// node computes the same from the same view, so each address has one
// announcer.
func Speak(node string, live []string, cs []Candidates, pools []Pool) []netip.Addr {
	alive := map[string]bool{node: true}
	for _, n := range live {
		alive[n] = true
	}
	everyone := make([]string, 0, len(alive))
	for n := range alive {
		everyone = append(everyone, n)
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, c := range cs {
		a := c.Addr.Unmap()
		if seen[a] || (len(pools) > 0 && !inAny(pools, a)) {
			continue
		}
		seen[a] = true
		candidates := everyone
		if !c.Any {
			candidates = slices.DeleteFunc(slices.Clone(c.Nodes), func(n string) bool { return !alive[n] })
		}
		if Elect(a, candidates) == node {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// addrSetter is what a Speaker needs of *Announcer.
type addrSetter interface {
	Set([]netip.Addr)
}

var _ addrSetter = (*Announcer)(nil)

// Speaker keeps an announcer's set equal to Speak over the latest live
// nodes and candidates. Until it is told the live nodes it announces
// nothing: alone, every node would elect itself.
type Speaker struct {
	node  string
	pools []Pool
	ann   addrSetter

	mu        sync.Mutex // guards the fields below and orders calls to ann.Set
	live      []string
	liveKnown bool
	cands     []Candidates
	current   []netip.Addr
}

// NewSpeaker returns a speaker for node driving a. With pools, only
// addresses in them are announced (a Service may show another
// controller's address, which weft must not answer for).
func NewSpeaker(node string, a *Announcer, pools ...Pool) *Speaker {
	return newSpeaker(node, a, pools)
}

func newSpeaker(node string, a addrSetter, pools []Pool) *Speaker {
	return &Speaker{node: node, ann: a, pools: slices.Clone(pools)}
}

// SetLive sets the nodes that are alive (gossip members whose Node was
// not deleted); this node need not be listed.
func (s *Speaker) SetLive(nodes []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live, s.liveKnown = slices.Clone(nodes), true
	s.updateLocked()
}

// SetCandidates sets the load-balancer addresses and who may announce
// each (from the Service proxy's plan).
func (s *Speaker) SetCandidates(cs []Candidates) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cands = slices.Clone(cs)
	s.updateLocked()
}

// Announcing returns the addresses this node announces now.
func (s *Speaker) Announcing() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.current)
}

func (s *Speaker) updateLocked() {
	var next []netip.Addr
	if s.liveKnown {
		next = Speak(s.node, s.live, s.cands, s.pools)
	}
	if slices.Equal(next, s.current) {
		return
	}
	s.current = next
	s.ann.Set(slices.Clone(next))
}
