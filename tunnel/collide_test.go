package tunnel

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
)

// collisionPartners must find exactly the pairs a pairwise scan finds.
func TestCollisionPartnersMatchesPairwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	idOf := func(p Peer) string { return p.PublicKey }
	for round := range 300 {
		n := 1 + rng.IntN(12)
		cands := make([]Peer, n)
		for i := range cands {
			bits := 22 + rng.IntN(5) // nested and disjoint blocks of a small space
			addr := netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(8)), 0})
			if rng.IntN(10) == 0 {
				addr = netip.MustParseAddr(fmt.Sprintf("fd00::%x", rng.IntN(4)))
				bits = 126 + rng.IntN(3)
			}
			cands[i] = Peer{
				Name:      fmt.Sprintf("n%d", rng.IntN(n+3)),
				PublicKey: fmt.Sprintf("k%d", rng.IntN(n+3)),
				PodCIDR:   netip.PrefixFrom(addr, bits),
			}
		}
		want := map[int][]int{}
		for i := range cands {
			for j := range cands {
				a, b := cands[i], cands[j]
				if i != j && (a.Name == b.Name || idOf(a) == idOf(b) || a.PodCIDR.Overlaps(b.PodCIDR)) {
					want[i] = append(want[i], j)
				}
			}
		}
		if got := collisionPartners(cands, idOf); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: %v\ngot  %v\nwant %v", round, cands, got, want)
		}
	}
}
