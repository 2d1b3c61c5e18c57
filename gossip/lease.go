package gossip

import (
	"cmp"
	"hash/fnv"
	"iter"
	"math/big"
	"net/netip"
	"slices"
	"time"
)

// This file holds the pure lease rules: who wins a conflict, which block is
// free, when a tombstone expires. No locks, no clocks, no I/O: every node
// must compute the same answers from the same inputs.

// claim is one node's hold on a block, live or remembered in a tombstone.
type claim struct {
	Name      string
	CIDR      netip.Prefix
	ClaimedAt time.Time
	Static    bool
}

func claimOf(m Meta) claim {
	return claim{Name: m.Name, CIDR: m.PodCIDR, ClaimedAt: m.ClaimedAt, Static: m.Static}
}

// beats reports whether a wins a conflict against b: a static lease beats a
// claimed one, then the earlier ClaimedAt wins (an unset ClaimedAt counts as
// the latest), then the lower name.
func beats(a, b claim) bool {
	if a.Static != b.Static {
		return a.Static
	}
	if !a.ClaimedAt.Equal(b.ClaimedAt) {
		switch {
		case a.ClaimedAt.IsZero():
			return false
		case b.ClaimedAt.IsZero():
			return true
		}
		return a.ClaimedAt.Before(b.ClaimedAt)
	}
	return a.Name < b.Name
}

// losers returns the names of the claims that lose at least one conflict
// with an overlapping claim. Claims without a valid CIDR are ignored.
// Keeping only the claims not in the result leaves no two overlapping.
func losers(cs []claim) map[string]bool {
	valid := make([]claim, 0, len(cs))
	for _, c := range cs {
		if c.CIDR.IsValid() {
			valid = append(valid, c)
		}
	}
	// Prefixes are nested or disjoint. Sorted by first address (wider
	// first on a tie), everything inside valid[i] directly follows it.
	slices.SortFunc(valid, func(a, b claim) int {
		if c := a.CIDR.Addr().Compare(b.CIDR.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.CIDR.Bits(), b.CIDR.Bits())
	})
	lost := make(map[string]bool)
	for i, a := range valid {
		for _, b := range valid[i+1:] {
			if !a.CIDR.Contains(b.CIDR.Addr()) {
				break
			}
			if beats(a, b) {
				lost[b.Name] = true
			} else {
				lost[a.Name] = true
			}
		}
	}
	return lost
}

// strongestRival returns the strongest claim in others that overlaps self
// and beats it.
func strongestRival(self claim, others iter.Seq[claim]) (claim, bool) {
	var best claim
	found := false
	for o := range others {
		if o.Name == self.Name || !o.CIDR.IsValid() || !o.CIDR.Overlaps(self.CIDR) {
			continue
		}
		if beats(o, self) && (!found || beats(o, best)) {
			best, found = o, true
		}
	}
	return best, found
}

func overlapsAny(p netip.Prefix, taken []netip.Prefix) bool {
	for _, t := range taken {
		if t.IsValid() && t.Overlaps(p) {
			return true
		}
	}
	return false
}

// maxBlockSplit bounds how many blocks a cluster CIDR may be cut into
// (2^20), so a scan for a free block stays cheap.
const maxBlockSplit = 20

// blockCount is the number of /bits blocks in cluster.
func blockCount(cluster netip.Prefix, bits int) uint64 {
	return uint64(1) << (bits - cluster.Bits())
}

// blockAt returns the idx-th /bits block of cluster.
func blockAt(cluster netip.Prefix, bits int, idx uint64) netip.Prefix {
	base := new(big.Int).SetBytes(cluster.Masked().Addr().AsSlice())
	off := new(big.Int).Lsh(new(big.Int).SetUint64(idx), uint(cluster.Addr().BitLen()-bits))
	raw := base.Add(base, off).FillBytes(make([]byte, cluster.Addr().BitLen()/8))
	a, _ := netip.AddrFromSlice(raw)
	return netip.PrefixFrom(a, bits)
}

// freeBlock returns the first /bits block of cluster, scanning from block
// start and wrapping around, that overlaps nothing in taken.
func freeBlock(cluster netip.Prefix, bits int, taken []netip.Prefix, start uint64) (netip.Prefix, bool) {
	n := blockCount(cluster, bits)
	for i := range n {
		p := blockAt(cluster, bits, (start+i)%n)
		if !overlapsAny(p, taken) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// nameHash spreads first choices over the cluster CIDR so that nodes
// starting together rarely race for the same block.
func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// tombstone remembers the lease of a failed node until Expires.
type tombstone struct {
	claim
	Expires time.Time
}

func (t tombstone) live(now time.Time) bool { return now.Before(t.Expires) }

// mergeTombstone folds in into have and reports whether have changed.
// Per name, the newer lease (later ClaimedAt) wins; for the same lease the
// later expiry wins. Expired tombstones are dropped.
func mergeTombstone(have map[string]tombstone, in tombstone, now time.Time) bool {
	if !in.live(now) || !in.CIDR.IsValid() {
		return false
	}
	old, ok := have[in.Name]
	switch {
	case !ok || !old.live(now):
	case in.ClaimedAt.After(old.ClaimedAt):
	case in.ClaimedAt.Equal(old.ClaimedAt) && in.CIDR == old.CIDR && in.Expires.After(old.Expires):
	default:
		return false
	}
	have[in.Name] = in
	return true
}
