package dnsproxy

import (
	"bytes"
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

// The cache's part of the wire path (wirepath.go). Each entry keeps its
// answer packed once, when stored, with the offsets of its TTL fields and
// of the owner names that are the question's name; a hit copies those
// bytes and patches them for the client: its id, its question (the
// name's case, RFC 5452's 0x20) and those owner names with it, the TTLs
// less the time held, and an OPT record if it sent one. That is the
// reply the slow path packs for a hit (answer, then out) when it fits
// the client's size: uncompressed. One that does not fit goes the slow
// way, which compresses and, if it must, truncates. The zone cache's
// entries also keep where their address run lies, and a hit shuffles
// it in the copy (shuffle.go).

// wireAnswer is an answer packed for the wire path. Never changed once
// made.
type wireAnswer struct {
	b     []byte
	qend  int      // offset where the question's name ends
	ttls  []uint16 // offsets of the records' TTL fields
	names []uint16 // offsets of owner names spelled as the question's
	run   wireRun  // the address run a hit shuffles; none unless e.shuffle
}

// packWire packs e.msg for the wire path. An answer that does not pack,
// or that has an OPT record or an extended rcode, gets none and is served
// the slow way only.
func (e *cacheEntry) packWire() *wireAnswer {
	if e.msg.Rcode > 0xF || len(e.msg.Question) != 1 {
		return nil
	}
	for _, sec := range [][]dns.RR{e.msg.Answer, e.msg.Ns, e.msg.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				return nil
			}
		}
	}
	m := *e.msg // a shallow copy: Pack only reads the records
	m.Compress = false
	b, err := m.Pack()
	if err != nil || len(b) > 0xFFFF {
		return nil
	}
	return walkAnswer(b, e.shuffle)
}

// walkAnswer finds the offsets a hit patches in b, an uncompressed
// message of one question, and with shuffle, its address run.
func walkAnswer(b []byte, shuffle bool) *wireAnswer {
	if len(b) < 12 || binary.BigEndian.Uint16(b[4:]) != 1 {
		return nil
	}
	a := &wireAnswer{b: b}
	off, ok := skipName(b, 12)
	if !ok || off+4 > len(b) {
		return nil
	}
	a.qend = off
	qname := b[12:a.qend]
	off += 4
	n := int(binary.BigEndian.Uint16(b[6:])) + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	ancount := int(binary.BigEndian.Uint16(b[6:]))
	var recs []wireRecord // the answer section's, when shuffling
	a.ttls = make([]uint16, 0, n)
	for i := range n {
		end, ok := skipName(b, off)
		if !ok || end+10 > len(b) {
			return nil
		}
		if bytes.EqualFold(b[off:end], qname) {
			a.names = append(a.names, uint16(off))
		}
		a.ttls = append(a.ttls, uint16(end+4))
		next := end + 10 + int(binary.BigEndian.Uint16(b[end+8:]))
		if shuffle && i < ancount {
			recs = append(recs, wireRecord{off: off, nameEnd: end, end: next})
		}
		off = next
	}
	if off != len(b) {
		return nil
	}
	if shuffle {
		a.run = findWireRun(b, recs)
	}
	return a
}

// skipName returns the offset after the uncompressed name at b[off:].
func skipName(b []byte, off int) (int, bool) {
	for off < len(b) {
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, true
		case l > 63:
			return 0, false // compressed, or a reserved label type
		}
		off += 1 + l
	}
	return 0, false
}

// serveWire answers q from a fresh entry's bytes. On a miss (or an entry
// too big for the client, or stale) the zone cache hands q to the next
// handler's wire path; the forwarder's cache leaves it to the slow path,
// which counts the miss and asks the upstreams.
func (c *Cache) serveWire(q *wireQuery, dst []byte) ([]byte, bool) {
	var gen uint64
	if c.cfg.Generation != nil {
		gen = c.cfg.Generation()
	}
	now := q.now // one clock reading per batch: TTLs count whole seconds
	if now.IsZero() || !c.realClock {
		now = c.cfg.Now()
	}
	e := c.getWire(q, now)
	var a *wireAnswer
	if e != nil {
		a = e.wire
	}
	if a == nil || e.gen != gen || !now.Before(e.expires) ||
		a.qend-12 != len(q.qname) || !bytes.EqualFold(a.b[12:a.qend], q.qname) {
		if n, ok := c.next.(wireHandler); ok && c.cfg.AuthoritativeOnly {
			return n.serveWire(q, dst)
		}
		return nil, false
	}
	size := len(a.b)
	if q.edns {
		size += 11
	}
	if size > q.limit {
		return nil, false // the slow path truncates it
	}
	if !c.cfg.AuthoritativeOnly {
		c.metrics.cacheHit()
	}
	start := len(dst)
	dst = append(dst, a.b...)
	b := dst[start:]
	binary.BigEndian.PutUint16(b, q.id)
	b[2] = b[2]&^0x78 | 0x80 // QR, opcode QUERY
	b[3] |= 0x80             // RA
	copy(b[12:], q.qname)
	binary.BigEndian.PutUint16(b[a.qend:], q.qtype)
	binary.BigEndian.PutUint16(b[a.qend+2:], q.qclass)
	for _, o := range a.names {
		copy(b[o:], q.qname)
	}
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, o := range a.ttls {
		ttl := binary.BigEndian.Uint32(b[o:])
		if ttl > age {
			ttl -= age
		} else {
			ttl = 0
		}
		binary.BigEndian.PutUint32(b[o:], ttl)
	}
	a.run.shuffle(b) // after the patches, which it carries along
	if q.edns {
		var do byte
		if q.do {
			do = 0x80
		}
		dst = append(dst, 0, byte(dns.TypeOPT>>8), byte(dns.TypeOPT), byte(q.size>>8), byte(q.size), 0, 0, do, 0, 0, 0)
		binary.BigEndian.PutUint16(dst[start+10:], binary.BigEndian.Uint16(dst[start+10:])+1)
	}
	return dst, true
}

// getWire is get for a wire query. Its key's name is lname itself, not a
// copy: the lookup does not keep the key, and lname does not change
// during it.
func (c *Cache) getWire(q *wireQuery, now time.Time) *cacheEntry {
	name := unsafe.String(unsafe.SliceData(q.lname), len(q.lname))
	return c.get(cacheKey{name: name, qtype: q.qtype, qclass: q.qclass, do: q.do, cd: q.cd}, now)
}
