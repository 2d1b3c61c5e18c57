package dnsproxy

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// SchemaVersion is the version of the Kubernetes DNS specification the
// cluster zone implements, served as dns-version.<zone> TXT.
const SchemaVersion = "1.1.0"

// PodRecords says how a-b-c-d.<ns>.pod.<zone> is answered.
type PodRecords string

const (
	// PodsInsecure answers any well-formed address in any namespace, as
	// the specification (section 2.6) still requires.
	PodsInsecure PodRecords = "insecure"
	// PodsVerified answers only when a pod of that namespace has that
	// address.
	PodsVerified PodRecords = "verified"
	// PodsDisabled answers NXDOMAIN for every pod name.
	PodsDisabled PodRecords = "disabled"
)

// ZoneConfig configures the cluster zone.
type ZoneConfig struct {
	// Zone is the cluster domain, e.g. "cluster.local".
	Zone string
	// TTL of every record answered. Default 5s.
	TTL time.Duration
	// NegativeTTL is the SOA minimum (how long NXDOMAIN and NODATA may be
	// cached). Default 5s.
	NegativeTTL time.Duration
	// Pods selects the pod record mode. Default PodsInsecure.
	Pods PodRecords
	// Ready reports whether Records holds the cluster's state yet (the
	// informers' first list); until then the zone answers SERVFAIL rather
	// than a wrong NXDOMAIN. Nil means always ready.
	Ready func() bool
}

// maxChase bounds how many ExternalName CNAMEs one query follows.
const maxChase = 8

type chaseKey struct{}

// Cluster answers the cluster zone and the PTR names of the cluster's
// Service and endpoint addresses; every other query goes to next.
type Cluster struct {
	zone   string // lower case, fully qualified
	ttl    uint32
	negTTL uint32
	pods   PodRecords
	rec    Records
	next   Handler
	ready  func() bool
	serial uint32
}

// NewCluster makes the cluster zone handler.
func NewCluster(cfg ZoneConfig, rec Records, next Handler) (*Cluster, error) {
	zone := dns.CanonicalName(cfg.Zone)
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, fmt.Errorf("zone: %q is not a domain name", cfg.Zone)
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = 5 * time.Second
	}
	switch cfg.Pods {
	case "":
		cfg.Pods = PodsInsecure
	case PodsInsecure, PodsVerified, PodsDisabled:
	default:
		return nil, fmt.Errorf("pods: %q is not one of insecure, verified, disabled", cfg.Pods)
	}
	return &Cluster{
		zone:   zone,
		ttl:    uint32(cfg.TTL / time.Second),
		negTTL: uint32(cfg.NegativeTTL / time.Second),
		pods:   cfg.Pods,
		rec:    rec,
		next:   next,
		ready:  cfg.Ready,
		serial: uint32(time.Now().Unix()),
	}, nil
}

// answer is the cluster zone's reply to one question, before it becomes a
// message.
type answer struct {
	rcode  int
	answer []dns.RR
	extra  []dns.RR
	cname  string // an ExternalName target to follow, fully qualified
}

// ServeDNS answers the cluster zone and known reverse names; anything else
// goes to the next handler.
func (c *Cluster) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	labels, ok := inZone(name, c.zone)
	if c.ready != nil && !c.ready() && (ok || q.Qtype == dns.TypePTR) {
		reply(w, r, dns.RcodeServerFailure)
		return
	}
	if !ok {
		if rrs := reversePTR(q, name, c.ptr); len(rrs) > 0 {
			c.write(w, r, answer{answer: rrs})
			return
		}
		c.next.ServeDNS(ctx, w, r)
		return
	}
	ans := c.resolve(q.Name, q.Qtype, labels)
	if ans.cname != "" && q.Qtype != dns.TypeCNAME {
		ans = c.chase(ctx, w, r, ans)
		if d := deferIO(ctx); d != nil && d.deferred {
			return // the target needs the upstreams: answered off the fast path
		}
	}
	c.write(w, r, ans)
}

// chase follows an ExternalName's CNAME through the whole chain (this
// zone, then the cache and upstreams) and appends what it finds.
func (c *Cluster) chase(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, ans answer) answer {
	depth, _ := ctx.Value(chaseKey{}).(int)
	if depth >= maxChase {
		return ans
	}
	sub := new(dns.Msg)
	sub.SetQuestion(ans.cname, r.Question[0].Qtype)
	sub.RecursionDesired = true
	resp := record(context.WithValue(ctx, chaseKey{}, depth+1), c, w, sub)
	if resp == nil {
		return ans
	}
	ans.answer = append(ans.answer, resp.Answer...)
	ans.rcode = resp.Rcode
	return ans
}

func (c *Cluster) write(w dns.ResponseWriter, r *dns.Msg, a answer) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Rcode = a.rcode
	shuffleAddrs(a.answer) // a headless Service's endpoints, in a fresh order
	m.Answer = a.answer
	m.Extra = a.extra
	if a.rcode == dns.RcodeNameError || (a.rcode == dns.RcodeSuccess && len(a.answer) == 0) {
		m.Ns = []dns.RR{c.soa()}
	}
	_ = w.WriteMsg(m)
}

func (c *Cluster) hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

func (c *Cluster) soa() dns.RR {
	return &dns.SOA{
		Hdr:     c.hdr(c.zone, dns.TypeSOA, c.negTTL),
		Ns:      "ns.dns." + c.zone,
		Mbox:    "hostmaster." + c.zone,
		Serial:  c.serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  c.negTTL,
	}
}

var (
	nxdomain = answer{rcode: dns.RcodeNameError}
	nodata   = answer{rcode: dns.RcodeSuccess}
)

// resolve answers qname (as asked, any case) of type qtype whose labels
// above the zone are labels (lower case).
func (c *Cluster) resolve(qname string, qtype uint16, labels []string) answer {
	n := len(labels)
	switch {
	case n == 0:
		return c.apexRecords(qname, qtype)
	case n == 1:
		switch labels[0] {
		case "dns-version":
			return c.txtAnswer(qname, qtype, SchemaVersion)
		case "svc", "pod":
			return nodata
		}
		return nxdomain
	case labels[n-1] == "svc":
		return c.resolveSvc(qname, qtype, labels[:n-1])
	case labels[n-1] == "pod":
		return c.resolvePod(qname, qtype, labels[:n-1])
	}
	return nxdomain
}

// apexRecords answers the zone's own name: its SOA and NS.
func (c *Cluster) apexRecords(qname string, qtype uint16) answer {
	switch qtype {
	case dns.TypeSOA:
		soa := c.soa()
		soa.Header().Name = qname
		return answer{answer: []dns.RR{soa}}
	case dns.TypeNS:
		return answer{answer: []dns.RR{&dns.NS{Hdr: c.hdr(qname, dns.TypeNS, c.ttl), Ns: "ns.dns." + c.zone}}}
	}
	return nodata
}

// txtAnswer answers a name holding one TXT string (dns-version).
func (c *Cluster) txtAnswer(qname string, qtype uint16, txt string) answer {
	if qtype == dns.TypeTXT {
		return answer{answer: []dns.RR{&dns.TXT{Hdr: c.hdr(qname, dns.TypeTXT, c.ttl), Txt: []string{txt}}}}
	}
	return nodata
}

// resolveSvc answers names under svc.<zone>: labels are what precedes it.
func (c *Cluster) resolveSvc(qname string, qtype uint16, l []string) answer {
	switch len(l) {
	case 1: // <ns>.svc
		if c.rec.Namespace(l[0]) {
			return nodata
		}
		return nxdomain
	case 2: // <service>.<ns>.svc
		s, ok := c.rec.Service(l[1], l[0])
		if !ok {
			return nxdomain
		}
		return c.serviceRecords(qname, qtype, s)
	case 3:
		s, ok := c.rec.Service(l[2], l[1])
		if !ok {
			return nxdomain
		}
		if strings.HasPrefix(l[0], "_") { // _<proto>.<service>: an empty non-terminal
			proto := l[0][1:]
			if slices.ContainsFunc(c.srvPorts(s), func(p Port) bool { return p.Protocol == proto && p.Name != "" }) {
				return nodata
			}
			return nxdomain
		}
		return c.endpointRecords(qname, qtype, s, l[0])
	case 4: // _<port>._<proto>.<service>.<ns>.svc
		if !strings.HasPrefix(l[0], "_") || !strings.HasPrefix(l[1], "_") {
			return nxdomain
		}
		s, ok := c.rec.Service(l[3], l[2])
		if !ok {
			return nxdomain
		}
		return c.srvRecords(qname, qtype, s, l[0][1:], l[1][1:])
	}
	return nxdomain
}

// serviceRecords answers <service>.<ns>.svc.<zone>.
func (c *Cluster) serviceRecords(qname string, qtype uint16, s Service) answer {
	if s.ExternalName != "" {
		target := dns.Fqdn(s.ExternalName)
		return answer{
			answer: []dns.RR{&dns.CNAME{Hdr: c.hdr(qname, dns.TypeCNAME, c.ttl), Target: target}},
			cname:  target,
		}
	}
	if !s.Headless {
		return c.addrAnswer(qname, qtype, s.ClusterIPs)
	}
	var addrs []netip.Addr
	for _, ep := range c.rec.Endpoints(s.Namespace, s.Name) {
		addrs = append(addrs, ep.Addrs...)
	}
	if len(addrs) == 0 {
		// The specification: a headless Service without ready endpoints
		// is NXDOMAIN.
		return nxdomain
	}
	return c.addrAnswer(qname, qtype, addrs)
}

// endpointRecords answers <hostname>.<service>.<ns>.svc.<zone> of a
// headless Service: the endpoint's hostname, or its dashed address.
func (c *Cluster) endpointRecords(qname string, qtype uint16, s Service, host string) answer {
	if !s.Headless || s.ExternalName != "" {
		return nxdomain
	}
	var addrs []netip.Addr
	for _, ep := range c.rec.Endpoints(s.Namespace, s.Name) {
		if ep.Hostname != "" && ep.Hostname == host {
			addrs = append(addrs, ep.Addrs...)
			continue
		}
		for _, a := range ep.Addrs {
			if dashed(a) == host {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		return nxdomain
	}
	return c.addrAnswer(qname, qtype, addrs)
}

// srvPorts are the ports a Service's SRV records use: the Service's own,
// and for a headless Service, its endpoints' (the numbers they listen on).
func (c *Cluster) srvPorts(s Service) []Port {
	if !s.Headless {
		return s.Ports
	}
	ports := slices.Clone(s.Ports)
	for _, ep := range c.rec.Endpoints(s.Namespace, s.Name) {
		ports = append(ports, ep.Ports...)
	}
	return ports
}

// srvRecords answers _<port>._<proto>.<service>.<ns>.svc.<zone>.
func (c *Cluster) srvRecords(qname string, qtype uint16, s Service, port, proto string) answer {
	if port == "" || s.ExternalName != "" {
		return nxdomain
	}
	match := func(p Port) bool { return p.Name == port && p.Protocol == proto }
	svcName := s.Name + "." + s.Namespace + ".svc." + c.zone
	var srv, extra []dns.RR
	if !s.Headless {
		i := slices.IndexFunc(s.Ports, match)
		if i < 0 {
			return nxdomain
		}
		srv = append(srv, &dns.SRV{Hdr: c.hdr(qname, dns.TypeSRV, c.ttl), Priority: 0, Weight: 100, Port: s.Ports[i].Port, Target: svcName})
		extra = c.addrRRs(svcName, s.ClusterIPs, dns.TypeA, dns.TypeAAAA)
	} else {
		svcPort, hasSvcPort := Port{}, false
		if i := slices.IndexFunc(s.Ports, match); i >= 0 {
			svcPort, hasSvcPort = s.Ports[i], true
		}
		for _, ep := range c.rec.Endpoints(s.Namespace, s.Name) {
			p, ok := svcPort, hasSvcPort
			if i := slices.IndexFunc(ep.Ports, match); i >= 0 {
				p, ok = ep.Ports[i], true
			}
			if !ok {
				continue
			}
			hosts := map[string][]netip.Addr{}
			var order []string
			for _, a := range ep.Addrs {
				h := ep.Hostname
				if h == "" {
					h = dashed(a)
				}
				if _, seen := hosts[h]; !seen {
					order = append(order, h)
				}
				hosts[h] = append(hosts[h], a)
			}
			for _, h := range order {
				target := h + "." + svcName
				srv = append(srv, &dns.SRV{Hdr: c.hdr(qname, dns.TypeSRV, c.ttl), Priority: 0, Weight: 100, Port: p.Port, Target: target})
				extra = append(extra, c.addrRRs(target, hosts[h], dns.TypeA, dns.TypeAAAA)...)
			}
		}
		if len(srv) == 0 {
			return nxdomain
		}
	}
	if qtype != dns.TypeSRV {
		return nodata
	}
	return answer{answer: srv, extra: extra}
}

// resolvePod answers <a-b-c-d>.<ns>.pod.<zone> (labels precede pod).
func (c *Cluster) resolvePod(qname string, qtype uint16, l []string) answer {
	switch len(l) {
	case 1:
		if c.rec.Namespace(l[0]) {
			return nodata
		}
		return nxdomain
	case 2:
		if c.pods == PodsDisabled {
			return nxdomain
		}
		a, ok := parseDashed(l[0])
		if !ok {
			return nxdomain
		}
		if c.pods == PodsVerified && !c.rec.PodIP(l[1], a) {
			return nxdomain
		}
		return c.addrAnswer(qname, qtype, []netip.Addr{a})
	}
	return nxdomain
}

// addrAnswer is the A or AAAA answer for addrs at name: NODATA for other
// types, or when no address is of the asked family.
func (c *Cluster) addrAnswer(qname string, qtype uint16, addrs []netip.Addr) answer {
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
		return answer{answer: c.addrRRs(qname, addrs, qtype)}
	}
	return nodata
}

// addrRRs makes A and/or AAAA records (as types allows) for addrs at name,
// each address once.
func (c *Cluster) addrRRs(name string, addrs []netip.Addr, types ...uint16) []dns.RR {
	var out []dns.RR
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		a = a.Unmap()
		if seen[a] {
			continue
		}
		seen[a] = true
		switch {
		case a.Is4() && slices.Contains(types, dns.TypeA):
			out = append(out, &dns.A{Hdr: c.hdr(name, dns.TypeA, c.ttl), A: a.AsSlice()})
		case a.Is6() && slices.Contains(types, dns.TypeAAAA):
			out = append(out, &dns.AAAA{Hdr: c.hdr(name, dns.TypeAAAA, c.ttl), AAAA: a.AsSlice()})
		}
	}
	return out
}

// reversePTR is ptr's answer to q (name: its name in lower case) when q
// is a PTR query for an address; nothing otherwise.
func reversePTR(q dns.Question, name string, ptr func(qname string, a netip.Addr) []dns.RR) []dns.RR {
	if q.Qtype != dns.TypePTR {
		return nil
	}
	a, ok := reverseAddr(name)
	if !ok {
		return nil
	}
	return ptr(q.Name, a)
}

// ptr is the PTR answer for address a asked as qname, empty when a is no
// Service's or endpoint's.
func (c *Cluster) ptr(qname string, a netip.Addr) []dns.RR {
	var out []dns.RR
	for _, t := range c.rec.Reverse(a) {
		target := t.Service + "." + t.Namespace + ".svc." + c.zone
		if t.Hostname != "" {
			target = t.Hostname + "." + target
		}
		out = append(out, &dns.PTR{Hdr: c.hdr(qname, dns.TypePTR, c.ttl), Ptr: target})
	}
	return out
}
