package dnsproxy

import (
	"encoding/binary"
	"math/rand/v2"
	"strings"

	"github.com/miekg/dns"
)

// Address shuffling: the zones answer a name with several addresses (a
// headless Service's endpoints) in a fresh random order on every query,
// so that clients, which mostly take the first address, spread over the
// endpoints (as CoreDNS's loadbalance plugin does). The zones shuffle the
// answers they compute; the zone cache shuffles again on every hit, on
// the slow path (the dns.Msg) and on the wire path (the packed bytes), so
// a cached answer does not freeze one order. Forwarded answers keep the
// upstream's order.
//
// What is shuffled is the address run: the answer section's trailing
// records that are all A or all AAAA and owned by one name, when there
// are two or more of them. Records before the run (a CNAME chain) stay
// where they are. The random numbers come from math/rand/v2's global
// source, which takes no lock and allocates nothing.

// addrRun returns where rrs's address run starts, or len(rrs) if it has
// none (fewer than two records in it).
func addrRun(rrs []dns.RR) int {
	n := len(rrs)
	if n < 2 {
		return n
	}
	last := rrs[n-1].Header()
	if last.Rrtype != dns.TypeA && last.Rrtype != dns.TypeAAAA {
		return n
	}
	i := n - 1
	for i > 0 {
		h := rrs[i-1].Header()
		if h.Rrtype != last.Rrtype || !strings.EqualFold(h.Name, last.Name) {
			break
		}
		i--
	}
	if n-i < 2 {
		return n
	}
	return i
}

// shuffleAddrs shuffles the address run of rrs in place.
func shuffleAddrs(rrs []dns.RR) {
	run := rrs[addrRun(rrs):]
	for i := len(run) - 1; i > 0; i-- {
		j := rand.IntN(i + 1)
		run[i], run[j] = run[j], run[i]
	}
}

// wireRun is an address run in a packed answer: count records of size
// bytes each from off. Records of one type owned by one name, packed
// without compression, have one size.
type wireRun struct {
	off, size, count uint16
}

// shuffle shuffles the run's records in b, a copy of the packed answer,
// swapping them byte for byte in place.
func (r wireRun) shuffle(b []byte) {
	if r.count < 2 {
		return
	}
	off, size := int(r.off), int(r.size)
	for i := int(r.count) - 1; i > 0; i-- {
		j := rand.IntN(i + 1)
		if i == j {
			continue
		}
		x := b[off+i*size : off+(i+1)*size]
		y := b[off+j*size : off+(j+1)*size]
		for k := range x {
			x[k], y[k] = y[k], x[k]
		}
	}
}

// wireRecord is one record of a packed answer section, as walkAnswer
// finds it.
type wireRecord struct {
	off, nameEnd, end int
}

// findWireRun finds the address run among the answer records recs of
// the packed message b, mirroring addrRun.
func findWireRun(b []byte, recs []wireRecord) wireRun {
	n := len(recs)
	if n < 2 {
		return wireRun{}
	}
	rtype := func(r wireRecord) uint16 { return binary.BigEndian.Uint16(b[r.nameEnd:]) }
	name := func(r wireRecord) []byte { return b[r.off:r.nameEnd] }
	last := recs[n-1]
	if t := rtype(last); t != dns.TypeA && t != dns.TypeAAAA {
		return wireRun{}
	}
	size := last.end - last.off
	i := n - 1
	for i > 0 {
		p := recs[i-1]
		if rtype(p) != rtype(last) || p.end-p.off != size || !strings.EqualFold(string(name(p)), string(name(last))) {
			break
		}
		i--
	}
	if n-i < 2 {
		return wireRun{}
	}
	return wireRun{off: uint16(recs[i].off), size: uint16(size), count: uint16(n - i)}
}
