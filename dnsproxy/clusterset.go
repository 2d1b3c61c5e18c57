package dnsproxy

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The clusterset zone, per the Multi-Cluster Services DNS specification
// (KEP-1645, "Kubernetes DNS-Based Multicluster Service Discovery"): the
// Services exported by any cluster of the clusterset, this one included,
// under <service>.<ns>.svc.clusterset.local.
//
// A Service with ClusterIPs answers its one clusterset IP, a virtual
// address of this cluster that weft's Service proxy spreads over every
// exporting cluster's endpoints (SetRecords.ClustersetIP). Until the
// active gateway has given it one (or where its range is full), the
// answer holds the ClusterIP of each exporting cluster instead (the
// peers' service networks are routed through the gateways): those of
// clusters with a ready endpoint, or all of them when none has one.
//
// Where clusters export a Service of the same name with different types
// (headless in one, with ClusterIPs in another), the type of the lowest
// cluster id wins and the other clusters' parts are left out, so that
// every cluster answers alike.

// ClustersetZone is the clusterset's domain; the specification fixes it.
const ClustersetZone = "clusterset.local."

// ClustersetSchemaVersion is the version of the multicluster DNS
// specification the zone implements, served as dns-version TXT.
const ClustersetSchemaVersion = "1.0.0"

// ClustersetConfig configures the clusterset zone.
type ClustersetConfig struct {
	// TTL of every record answered. Default 5s.
	TTL time.Duration
	// NegativeTTL is the SOA minimum. Default 5s.
	NegativeTTL time.Duration
	// Ready reports whether the records hold the cluster's state yet;
	// until then the zone answers SERVFAIL. Nil means always ready.
	Ready func() bool
}

// Clusterset answers the clusterset zone and the PTR names of the other
// clusters' exported addresses; every other query goes to next. Put it
// after the cluster zone, which answers the PTR names of this cluster's
// addresses first (the specification asks for a clusterset PTR only where
// an address has none).
type Clusterset struct {
	rrs   *Cluster // the record builders for clusterset.local; its Records are never read
	rec   SetRecords
	next  Handler
	ready func() bool
}

// NewClusterset makes the clusterset zone handler.
func NewClusterset(cfg ClustersetConfig, rec SetRecords, next Handler) *Clusterset {
	rrs, err := NewCluster(ZoneConfig{Zone: ClustersetZone, TTL: cfg.TTL, NegativeTTL: cfg.NegativeTTL}, nil, nil)
	if err != nil {
		panic(err) // a constant zone
	}
	return &Clusterset{rrs: rrs, rec: rec, next: next, ready: cfg.Ready}
}

// ServeDNS answers clusterset.local and the other clusters' reverse
// names; anything else goes to the next handler.
func (c *Clusterset) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	labels, ok := inZone(name, ClustersetZone)
	if c.ready != nil && !c.ready() && ok {
		reply(w, r, dns.RcodeServerFailure)
		return
	}
	if !ok {
		if rrs := reversePTR(q, name, c.ptr); len(rrs) > 0 {
			c.rrs.write(w, r, answer{answer: rrs})
			return
		}
		c.next.ServeDNS(ctx, w, r)
		return
	}
	c.rrs.write(w, r, c.resolve(q.Name, q.Qtype, labels))
}

// resolve answers qname (as asked) of type qtype whose labels above the
// zone are labels (lower case).
func (c *Clusterset) resolve(qname string, qtype uint16, labels []string) answer {
	n := len(labels)
	switch {
	case n == 0:
		return c.rrs.apexRecords(qname, qtype)
	case n == 1 && labels[0] == "dns-version":
		return c.rrs.txtAnswer(qname, qtype, ClustersetSchemaVersion)
	case n == 1 && labels[0] == "svc":
		return nodata
	case labels[n-1] != "svc":
		return nxdomain
	}
	l := labels[:n-1]
	switch len(l) {
	case 1: // <ns>.svc
		if c.rec.Namespace(l[0]) {
			return nodata
		}
		return nxdomain
	case 2: // <service>.<ns>.svc
		parts := c.parts(l[1], l[0])
		if len(parts) == 0 {
			return nxdomain
		}
		return c.serviceRecords(qname, qtype, c.addrs(l[1], l[0], parts))
	case 3: // _<proto>.<service> or <clusterid>.<service>: empty non-terminals
		parts := c.parts(l[2], l[1])
		if len(parts) == 0 {
			return nxdomain
		}
		if strings.HasPrefix(l[0], "_") {
			proto := l[0][1:]
			for _, p := range parts {
				if slices.ContainsFunc(p.Ports, func(q Port) bool { return q.Protocol == proto }) {
					return nodata
				}
			}
			return nxdomain
		}
		// <clusterid>.<service> exists only as the parent of a headless
		// Service's per-cluster hostnames; it has no records of its own.
		if i := slices.IndexFunc(parts, func(p ClusterExport) bool { return p.Cluster == l[0] }); i >= 0 && parts[i].Headless && len(parts[i].Endpoints) > 0 {
			return nodata
		}
		return nxdomain
	case 4:
		parts := c.parts(l[3], l[2])
		if len(parts) == 0 {
			return nxdomain
		}
		if strings.HasPrefix(l[0], "_") && strings.HasPrefix(l[1], "_") { // _<port>._<proto>.<service>
			return c.srvRecords(qname, qtype, parts, l[0][1:], l[1][1:], l[2]+"."+l[3], c.addrs(l[3], l[2], parts))
		}
		return c.endpointRecords(qname, qtype, parts, l[1], l[0]) // <hostname>.<clusterid>.<service>
	}
	return nxdomain
}

// parts are the clusters' exports of namespace/name that answer: those of
// the type of the lowest cluster id.
func (c *Clusterset) parts(namespace, name string) []ClusterExport {
	all := c.rec.Exports(namespace, name)
	if len(all) == 0 {
		return nil
	}
	headless := all[0].Headless
	return slices.DeleteFunc(all, func(p ClusterExport) bool { return p.Headless != headless })
}

// addrs are what <service>.<ns>.svc answers: the clusterset IP of a
// Service with ClusterIPs when it has one, otherwise serviceAddrs.
func (c *Clusterset) addrs(namespace, name string, parts []ClusterExport) []netip.Addr {
	if !parts[0].Headless {
		if ip, ok := c.rec.ClustersetIP(namespace, name); ok {
			return []netip.Addr{ip}
		}
	}
	return serviceAddrs(parts)
}

// serviceAddrs are what <service>.<ns>.svc answers without a clusterset
// IP: a headless Service's
// ready endpoints in every cluster; otherwise the ClusterIPs of the
// clusters with a ready endpoint, or of all when none has one.
func serviceAddrs(parts []ClusterExport) []netip.Addr {
	var addrs, ready []netip.Addr
	for _, p := range parts {
		if p.Headless {
			for _, ep := range p.Endpoints {
				addrs = append(addrs, ep.Addrs...)
			}
			continue
		}
		addrs = append(addrs, p.ClusterIPs...)
		if p.Ready {
			ready = append(ready, p.ClusterIPs...)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return addrs
}

// serviceRecords answers <service>.<ns>.svc.clusterset.local.
func (c *Clusterset) serviceRecords(qname string, qtype uint16, addrs []netip.Addr) answer {
	if len(addrs) == 0 {
		// As in the cluster zone: a headless Service without ready
		// endpoints is NXDOMAIN.
		return nxdomain
	}
	return c.rrs.addrAnswer(qname, qtype, addrs)
}

// hostOf is an endpoint address's hostname: its own, or the dashed
// address.
func hostOf(ep Endpoint, a netip.Addr) string {
	if ep.Hostname != "" {
		return ep.Hostname
	}
	return dashed(a)
}

// endpointRecords answers <hostname>.<clusterid>.<service>.<ns>.svc of a
// headless Service.
func (c *Clusterset) endpointRecords(qname string, qtype uint16, parts []ClusterExport, cluster, host string) answer {
	var addrs []netip.Addr
	for _, p := range parts {
		if p.Cluster != cluster || !p.Headless {
			continue
		}
		for _, ep := range p.Endpoints {
			for _, a := range ep.Addrs {
				if hostOf(ep, a) == host {
					addrs = append(addrs, a)
				}
			}
		}
	}
	if len(addrs) == 0 {
		return nxdomain
	}
	return c.rrs.addrAnswer(qname, qtype, addrs)
}

// srvRecords answers _<port>._<proto>.<service>.<ns>.svc: for a Service
// with ClusterIPs one record per distinct port number among the clusters,
// targeting the Service's name; for a headless Service one record per
// endpoint of every cluster, targeting its per-cluster hostname.
func (c *Clusterset) srvRecords(qname string, qtype uint16, parts []ClusterExport, port, proto, svcNs string, addrs []netip.Addr) answer {
	if port == "" {
		return nxdomain
	}
	svcName := svcNs + ".svc." + ClustersetZone
	var srv, extra []dns.RR
	var numbers []uint16
	for _, p := range parts {
		i := slices.IndexFunc(p.Ports, func(q Port) bool { return q.Name == port && q.Protocol == proto })
		if i < 0 {
			continue
		}
		number := p.Ports[i].Port
		if !p.Headless {
			if !slices.Contains(numbers, number) {
				numbers = append(numbers, number)
				srv = append(srv, &dns.SRV{Hdr: c.rrs.hdr(qname, dns.TypeSRV, c.rrs.ttl), Weight: 100, Port: number, Target: svcName})
			}
			continue
		}
		hosts := map[string][]netip.Addr{}
		var order []string
		for _, ep := range p.Endpoints {
			for _, a := range ep.Addrs {
				h := hostOf(ep, a)
				if _, seen := hosts[h]; !seen {
					order = append(order, h)
				}
				hosts[h] = append(hosts[h], a)
			}
		}
		for _, h := range order {
			target := h + "." + p.Cluster + "." + svcName
			srv = append(srv, &dns.SRV{Hdr: c.rrs.hdr(qname, dns.TypeSRV, c.rrs.ttl), Weight: 100, Port: number, Target: target})
			extra = append(extra, c.rrs.addrRRs(target, hosts[h], dns.TypeA, dns.TypeAAAA)...)
		}
	}
	if len(srv) == 0 {
		return nxdomain
	}
	if qtype != dns.TypeSRV {
		return nodata
	}
	if len(numbers) > 0 {
		extra = c.rrs.addrRRs(svcName, addrs, dns.TypeA, dns.TypeAAAA)
	}
	return answer{answer: srv, extra: extra}
}

// ptr is the PTR answer for another cluster's exported address a.
func (c *Clusterset) ptr(qname string, a netip.Addr) []dns.RR {
	var out []dns.RR
	for _, t := range c.rec.ReverseSet(a) {
		target := t.Service + "." + t.Namespace + ".svc." + ClustersetZone
		if t.Hostname != "" {
			target = t.Hostname + "." + t.Cluster + "." + target
		}
		out = append(out, &dns.PTR{Hdr: c.rrs.hdr(qname, dns.TypePTR, c.rrs.ttl), Ptr: target})
	}
	return out
}
