package loadbalancer

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
)

// Elect returns the node that announces addr: of the candidates, the one
// with the highest rendezvous weight hash(addr, node), ties (never seen in
// practice) to the lower name. Every node computes it alike from the same
// candidate list, in any order. Addresses spread evenly across the nodes,
// and when a candidate leaves only the addresses it announced move (each
// to its own next-highest node); when one joins, it takes only the
// addresses for which it now weighs most. No candidates: "".
//
// The candidates are the nodes fit to announce: alive, ready, on the
// underlay segment the pools belong to. For a Service with
// externalTrafficPolicy Local the caller passes only nodes with a local
// endpoint.
func Elect(addr netip.Addr, candidates []string) string {
	best, bestW := "", uint64(0)
	for _, c := range candidates {
		if c == "" {
			continue
		}
		w := weight(addr, c)
		if best == "" || w > bestW || (w == bestW && c < best) {
			best, bestW = c, w
		}
	}
	return best
}

// Announced returns the addresses node announces: those Elect gives it.
func Announced(node string, addrs []netip.Addr, candidates []string) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if Elect(a, candidates) == node {
			out = append(out, a)
		}
	}
	return out
}

func weight(addr netip.Addr, node string) uint64 {
	h := sha256.New()
	b, _ := addr.Unmap().MarshalBinary()
	h.Write(b)
	h.Write([]byte(node))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}
