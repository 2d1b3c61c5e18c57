package dnsproxy

import (
	"encoding/binary"
	"time"

	"github.com/miekg/dns"
)

// The wire path: a UDP query whose answer is cached is answered from the
// answer's stored bytes, without a dns.Msg on either side.
//
// parseQuery reads what a cached answer needs from the datagram (id, CD,
// the question, the client's EDNS) and accepts only the plain case: one
// question whose name needs no escaping, no answer or authority records,
// at most an OPT record (version 0, options that are cookies or padding),
// nothing after it. Anything else, and every miss, goes the slow way (a
// full unpack, the guard, the chain), which answers it exactly as before;
// so the wire path may refuse any query, and only changes how fast a hit
// is answered, never what is answered.
//
// A handler takes part by implementing wireHandler; the chain's wire path
// ends at the first handler that does not (or that would answer the query
// itself other than from a cache): the zone cache, the cluster and
// clusterset zones for names outside them, and the forwarder's cache do.
// A handler added to the chain without it sends every name behind it the
// slow way.

// wireHandler is a handler that can answer some queries from stored wire
// bytes. serveWire appends the whole reply to dst, or returns false having
// changed nothing that the slow path would see.
type wireHandler interface {
	serveWire(q *wireQuery, dst []byte) ([]byte, bool)
}

// maxNameLen is the longest domain name in wire form (RFC 1035 3.1).
const maxNameLen = 255

// wireQuery is a query as parseQuery read it.
type wireQuery struct {
	id     uint16
	qname  []byte // the question's name in wire form, in the client's case
	lname  []byte // its presentation form in lower case: the cache key's name
	qtype  uint16
	qclass uint16
	cd     bool
	edns   bool      // the client sent an OPT record
	do     bool      // and set DO in it
	limit  int       // the largest reply the client takes
	size   uint16    // the EDNS buffer size the proxy advertises
	now    time.Time // when the batch was read (zero: ask the clock)
	buf    [maxNameLen + 1]byte
}

// parseQuery reads b into q. It returns false for anything but a plain
// query (see above): the slow path answers those.
func parseQuery(q *wireQuery, b []byte) bool {
	if len(b) < 12 {
		return false
	}
	const (
		qr     = 1 << 15
		opcode = 0xF << 11
		cd     = 1 << 4
	)
	flags := binary.BigEndian.Uint16(b[2:])
	if flags&(qr|opcode) != 0 ||
		binary.BigEndian.Uint16(b[4:]) != 1 || // qdcount
		binary.BigEndian.Uint16(b[6:]) != 0 || // ancount
		binary.BigEndian.Uint16(b[8:]) != 0 { // nscount
		return false
	}
	arcount := binary.BigEndian.Uint16(b[10:])
	if arcount > 1 {
		return false
	}
	q.id = binary.BigEndian.Uint16(b)
	q.cd = flags&cd != 0
	off, ok := q.parseName(b, 12)
	if !ok || off+4 > len(b) {
		return false
	}
	q.qname = b[12:off]
	q.qtype = binary.BigEndian.Uint16(b[off:])
	q.qclass = binary.BigEndian.Uint16(b[off+2:])
	off += 4
	q.edns, q.do = false, false
	if arcount == 1 {
		if off, ok = q.parseOPT(b, off); !ok {
			return false
		}
	}
	return off == len(b)
}

// parseName reads the question's name at b[off:] into q.lname and returns
// the offset after it. Compression pointers, and bytes that the
// presentation form would escape (or that are not ASCII), are refused.
func (q *wireQuery) parseName(b []byte, off int) (int, bool) {
	n := 0
	for {
		if off >= len(b) {
			return 0, false
		}
		l := int(b[off])
		off++
		if l == 0 {
			break
		}
		if l > 63 || off+l > len(b) || n+l+1 > maxNameLen-1 {
			return 0, false // a pointer, a reserved label type, or too long
		}
		for _, c := range b[off : off+l] {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '*':
			case 'A' <= c && c <= 'Z':
				c += 'a' - 'A'
			default:
				return 0, false
			}
			q.buf[n] = c
			n++
		}
		q.buf[n] = '.'
		n++
		off += l
	}
	if n == 0 { // the root
		q.buf[0] = '.'
		n = 1
	}
	q.lname = q.buf[:n]
	return off, true
}

// parseOPT reads the additional record at b[off:], which must be an OPT
// record of version 0 owned by the root, whose options (if any) are
// cookies or padding (options miekg/dns unpacks without judging them).
func (q *wireQuery) parseOPT(b []byte, off int) (int, bool) {
	if off+11 > len(b) || b[off] != 0 || binary.BigEndian.Uint16(b[off+1:]) != dns.TypeOPT {
		return 0, false
	}
	size := binary.BigEndian.Uint16(b[off+3:])
	version := b[off+6]
	flags := binary.BigEndian.Uint16(b[off+7:])
	rdlen := int(binary.BigEndian.Uint16(b[off+9:]))
	off += 11
	if version != 0 || off+rdlen > len(b) {
		return 0, false // BADVERS, or short: the slow path says so
	}
	opts := b[off : off+rdlen]
	for len(opts) > 0 {
		if len(opts) < 4 {
			return 0, false
		}
		code := binary.BigEndian.Uint16(opts)
		olen := int(binary.BigEndian.Uint16(opts[2:]))
		if olen > len(opts)-4 || (code != dns.EDNS0COOKIE && code != dns.EDNS0PADDING) {
			return 0, false
		}
		opts = opts[4+olen:]
	}
	q.edns = true
	q.do = flags&(1<<15) != 0
	q.limit = int(max(dns.MinMsgSize, size)) // the server caps it
	return off + rdlen, true
}

// serveWire answers b from the chain's wire path into w, as the slow path
// would answer it: the guard's checks that a hit must pass, the reply cut
// to the client's UDP size (a reply that does not fit goes the slow way,
// which truncates it), the query counted. It returns false, having
// written nothing, for every query it leaves to the slow path.
func (s *Server) serveWire(q *wireQuery, w *udpWriter, b []byte) bool {
	wh, ok := s.chain.(wireHandler)
	if !ok || !parseQuery(q, b) || q.qclass != dns.ClassINET || !s.allowedAddr(w.ap.Addr()) {
		return false
	}
	switch q.qtype {
	case dns.TypeAXFR, dns.TypeIXFR, dns.TypeANY, dns.TypeMAILA, dns.TypeMAILB,
		dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeNone:
		return false // the guard's
	}
	q.size = s.cfg.UDPSize
	if q.edns {
		q.limit = min(q.limit, int(s.cfg.UDPSize))
	} else {
		q.limit = dns.MinMsgSize
	}
	reply, ok := wh.serveWire(q, w.buf[:0])
	if !ok {
		return false
	}
	s.metrics.query(q.qtype, int(reply[3]&0xF), "udp")
	_ = w.send(reply) // a direct send's error is lost, as on the slow path
	return true
}

// serveWire answers names outside the zone (other than PTR queries, which
// may be the cluster's reverse names) from next's wire path.
func (c *Cluster) serveWire(q *wireQuery, dst []byte) ([]byte, bool) {
	if q.qtype == dns.TypePTR || nameInZone(q.lname, c.zone) {
		return nil, false
	}
	if n, ok := c.next.(wireHandler); ok {
		return n.serveWire(q, dst)
	}
	return nil, false
}

// serveWire answers names outside clusterset.local (other than PTR
// queries, which may be the other clusters' reverse names) from next's
// wire path.
func (c *Clusterset) serveWire(q *wireQuery, dst []byte) ([]byte, bool) {
	if q.qtype == dns.TypePTR || nameInZone(q.lname, ClustersetZone) {
		return nil, false
	}
	if n, ok := c.next.(wireHandler); ok {
		return n.serveWire(q, dst)
	}
	return nil, false
}

// nameInZone is inZone's test on a byte name: name is zone or under it.
func nameInZone(name []byte, zone string) bool {
	i := len(name) - len(zone)
	if i < 0 || string(name[i:]) != zone {
		return false
	}
	return i == 0 || name[i-1] == '.'
}
