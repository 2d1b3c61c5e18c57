package policy

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// IPv4 ranges as uint32 pairs: ipBlocks (a CIDR minus its excepts) and pod
// addresses become sorted, disjoint, non-adjacent ranges, which is what an
// nftables interval set accepts.

type span struct{ lo, hi uint32 }

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

func prefixSpan(p netip.Prefix) span {
	p = p.Masked()
	lo := u32(p.Addr())
	hi := lo | (uint32(1)<<(32-p.Bits()) - 1)
	if p.Bits() == 0 {
		hi = ^uint32(0)
	}
	return span{lo, hi}
}

// subtract removes cut from every span in s.
func subtract(s []span, cut span) []span {
	var out []span
	for _, x := range s {
		if cut.hi < x.lo || cut.lo > x.hi {
			out = append(out, x)
			continue
		}
		if cut.lo > x.lo {
			out = append(out, span{x.lo, cut.lo - 1})
		}
		if cut.hi < x.hi {
			out = append(out, span{cut.hi + 1, x.hi})
		}
	}
	return out
}

// normalize sorts and merges overlapping and adjacent spans.
func normalize(s []span) []span {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b span) int {
		switch {
		case a.lo < b.lo:
			return -1
		case a.lo > b.lo:
			return 1
		}
		return 0
	})
	var out []span
	for _, x := range s {
		if n := len(out); n > 0 && (x.lo <= out[n-1].hi || out[n-1].hi != ^uint32(0) && x.lo == out[n-1].hi+1) {
			if x.hi > out[n-1].hi {
				out[n-1].hi = x.hi
			}
			continue
		}
		out = append(out, x)
	}
	return out
}

func toRanges(s []span) []Range {
	out := make([]Range, 0, len(s))
	for _, x := range normalize(s) {
		out = append(out, Range{First: addr(x.lo), Last: addr(x.hi)})
	}
	return out
}

// contains reports whether v is in s, which must be normalized (sorted).
func contains(s []span, v uint32) bool {
	i, _ := slices.BinarySearchFunc(s, v, func(x span, v uint32) int {
		switch {
		case x.hi < v:
			return -1
		case x.lo > v:
			return 1
		}
		return 0
	})
	return i < len(s) && v >= s[i].lo && v <= s[i].hi
}
