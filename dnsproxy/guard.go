package dnsproxy

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// maxQuerySize bounds a query's size: a real question with EDNS options
// fits in a few hundred bytes; anything far larger is refused as malformed.
const maxQuerySize = 4096

// check is the guard at the front of the chain: who may ask, and what may
// be asked. It returns the rcode to answer with at once, or -1 to go on.
func (s *Server) check(w dns.ResponseWriter, r *dns.Msg) int {
	if !s.allowed(w.RemoteAddr()) {
		return dns.RcodeRefused
	}
	if r.Opcode != dns.OpcodeQuery {
		return dns.RcodeNotImplemented
	}
	if len(r.Question) != 1 || len(r.Answer) != 0 || len(r.Ns) != 0 || r.Len() > maxQuerySize {
		return dns.RcodeFormatError
	}
	opts := 0
	for _, rr := range r.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	if opts > 1 {
		return dns.RcodeFormatError
	}
	if o := r.IsEdns0(); o != nil && o.Version() != 0 {
		return dns.RcodeBadVers
	}
	q := r.Question[0]
	if q.Qclass != dns.ClassINET {
		return dns.RcodeRefused
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return dns.RcodeRefused // no zone transfers
	case dns.TypeANY, dns.TypeMAILA, dns.TypeMAILB:
		return dns.RcodeNotImplemented
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeNone:
		return dns.RcodeFormatError // not a question
	}
	return -1
}

// allowed reports whether a client may use the proxy: pods (the cluster
// CIDR) and the node itself. With no prefixes configured, anyone may.
func (s *Server) allowed(a net.Addr) bool {
	if len(s.cfg.Allowed) == 0 {
		return true
	}
	var ip netip.Addr
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		return false
	}
	return s.allowedAddr(ip)
}

// allowedAddr is allowed for an address.
func (s *Server) allowedAddr(ip netip.Addr) bool {
	if len(s.cfg.Allowed) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.Allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
