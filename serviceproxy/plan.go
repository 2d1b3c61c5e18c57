package serviceproxy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"
)

// Plan is the desired service table: one ServicePlan per Service, each
// computed from that Service and its EndpointSlices alone (so a change
// replans one Service), then checked together for addresses two Services
// both claim.
type Plan struct {
	Services map[string]*ServicePlan // by "namespace/name"
	// Conflicts say which entries were left out because an earlier
	// Service (by key) had them.
	Conflicts []string
}

// ServicePlan is what one Service puts in the table.
type ServicePlan struct {
	Chains   []Chain
	Affinity []AffinitySet
	// ServiceIPs: address . protocol . port → verdict (cluster, external,
	// load-balancer addresses).
	ServiceIPs []IPEntry
	// NodePorts: protocol . port → verdict, on the node's own addresses.
	NodePorts []PortEntry
	// NoEndpoints are entries whose traffic is refused (no endpoint at
	// all: ICMP port unreachable, TCP reset) or dropped (endpoints exist,
	// none that the traffic policy allows here), before any NAT.
	NoEndpoints         []IPEntry
	NoEndpointNodePorts []PortEntry
	// ClusterIPs are refused on ports the Service does not have.
	ClusterIPs  []netip.Addr
	HealthCheck *HealthCheck
	// Announce are the Service's load-balancer addresses, for the node
	// that answers for them on the underlay.
	Announce []Announce
	// Endpoints counts the endpoints in use, for status.
	Endpoints int
	// UDPEndpoints are the UDP endpoints in use: conntrack entries to one
	// that goes away are deleted, or its flows would keep going there.
	UDPEndpoints []netip.AddrPort
}

// IPEntry is one element of the address maps.
type IPEntry struct {
	Addr    netip.Addr
	Proto   Protocol
	Port    uint16
	Verdict Verdict
}

// PortEntry is one element of the node-port maps.
type PortEntry struct {
	Proto   Protocol
	Port    uint16
	Verdict Verdict
}

// Verdict is a map element's value: goto Chain, or Reject, or Drop.
type Verdict struct {
	Chain  string
	Reject bool
	Drop   bool
}

func (v Verdict) String() string {
	switch {
	case v.Reject:
		return "reject"
	case v.Drop:
		return "drop"
	}
	return "goto " + v.Chain
}

// Chain is a regular chain of the table and its rules.
type Chain struct {
	Name  string
	Rules []Rule
}

// RuleKind says what a Rule does.
type RuleKind uint8

// The rules the planner uses; render.go turns each into expressions.
const (
	// MasqueradeUnlessFrom: ip saddr != Prefix jump mark-for-masquerade.
	MasqueradeUnlessFrom RuleKind = iota + 1
	// MasqueradeFrom: ip saddr == Addr jump mark-for-masquerade (hairpin).
	MasqueradeFrom
	// MasqueradeAll: jump mark-for-masquerade.
	MasqueradeAll
	// MasqueradeFromLocal: fib saddr type local jump mark-for-masquerade.
	MasqueradeFromLocal
	// GotoFrom: ip saddr in Prefix goto Target.
	GotoFrom
	// GotoFromLocal: fib saddr type local goto Target.
	GotoFromLocal
	// Sticky: ip saddr @Set goto Target (a remembered client).
	Sticky
	// Spread: numgen random mod len(Targets) vmap { i: goto Targets[i] }.
	Spread
	// Remember: update @Set { ip saddr } (with the set's timeout).
	Remember
	// DNAT: dnat to Addr:Port.
	DNAT
	// Goto: goto Target.
	Goto
	// Drop: drop.
	Drop
)

// Rule is one rule of a Chain; which fields matter depends on Kind.
type Rule struct {
	Kind    RuleKind
	Prefix  netip.Prefix
	Addr    netip.Addr
	Port    uint16
	Set     string
	Target  string
	Targets []string
}

func (r Rule) String() string {
	switch r.Kind {
	case MasqueradeUnlessFrom:
		return "ip saddr != " + r.Prefix.String() + " jump " + markChain
	case MasqueradeFrom:
		return "ip saddr " + r.Addr.String() + " jump " + markChain
	case MasqueradeAll:
		return "jump " + markChain
	case MasqueradeFromLocal:
		return "fib saddr type local jump " + markChain
	case GotoFrom:
		return "ip saddr " + r.Prefix.String() + " goto " + r.Target
	case GotoFromLocal:
		return "fib saddr type local goto " + r.Target
	case Sticky:
		return "ip saddr @" + r.Set + " goto " + r.Target
	case Spread:
		s := "numgen random mod " + strconv.Itoa(len(r.Targets)) + " vmap {"
		for i, t := range r.Targets {
			if i > 0 {
				s += ","
			}
			s += " " + strconv.Itoa(i) + " : goto " + t
		}
		return s + " }"
	case Remember:
		return "update @" + r.Set + " { ip saddr }"
	case DNAT:
		return "dnat to " + netip.AddrPortFrom(r.Addr, r.Port).String()
	case Goto:
		return "goto " + r.Target
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("rule kind %d", r.Kind)
}

// AffinitySet remembers, per endpoint, the clients sent to it.
type AffinitySet struct {
	Name    string
	Timeout time.Duration
}

// Announce is a load-balancer address and the nodes that may announce it:
// with externalTrafficPolicy Local only those with a usable endpoint
// (Nodes, sorted; empty means none can), otherwise any (Any).
type Announce struct {
	Addr  netip.Addr
	Any   bool
	Nodes []string
}

// HealthCheck is a healthCheckNodePort this node answers.
type HealthCheck struct {
	Port           uint16
	Service        string
	LocalEndpoints int
}

// Context is what planning needs to know of the node.
type Context struct {
	// Node is this node's name: endpoints on it are local.
	Node string
	// ClusterCIDR is the pod network. Traffic to a cluster address from
	// outside it (the node itself) is masqueraded so that replies return
	// through this node; invalid means masquerade none of it.
	ClusterCIDR netip.Prefix
}

// Names of the table's fixed chains that rules refer to.
const (
	markChain = "mark-for-masquerade"
)

// PlanService plans one Service from its EndpointSlices. It is pure.
func PlanService(ctx Context, s Service, sl []Slice) *ServicePlan {
	sp := &ServicePlan{}
	for _, a := range s.ClusterIPs {
		if a.Is4() {
			sp.ClusterIPs = append(sp.ClusterIPs, a)
		}
	}
	if len(sp.ClusterIPs) == 0 {
		return sp
	}
	external := only4(append(slices.Clone(s.ExternalIPs), s.LoadBalancerIPs...))
	hasExternal := len(external) > 0
	localTotal := 0
	for _, p := range s.Ports {
		if p.NodePort != 0 {
			hasExternal = true
		}
		id := portID(s, p)
		all := endpointsFor(p, sl)
		usable := usableEndpoints(all, "")
		local := usableEndpoints(all, ctx.Node)
		localTotal += len(local)
		cluster := usable
		switch {
		case s.InternalLocal:
			cluster = local
		case s.PreferClose && len(local) > 0:
			cluster = local
		}
		svcChain := "service-" + id
		extChain := "external-" + id
		epChains := map[netip.AddrPort]string{}
		chainFor := func(ep netip.AddrPort) string {
			if c, ok := epChains[ep]; ok {
				return c
			}
			c := "endpoint-" + id + "/" + ep.String()
			epChains[ep] = c
			return c
		}
		addEntries := func(addrs []netip.Addr, v Verdict, noEP bool) {
			for _, a := range addrs {
				e := IPEntry{Addr: a, Proto: p.Protocol, Port: p.Port, Verdict: v}
				if noEP {
					sp.NoEndpoints = append(sp.NoEndpoints, e)
				} else {
					sp.ServiceIPs = append(sp.ServiceIPs, e)
				}
			}
		}
		// Cluster traffic.
		switch {
		case len(usable) == 0:
			addEntries(sp.ClusterIPs, Verdict{Reject: true}, true)
		case len(cluster) == 0:
			addEntries(sp.ClusterIPs, Verdict{Drop: true}, true)
		default:
			var rules []Rule
			if ctx.ClusterCIDR.IsValid() {
				rules = append(rules, Rule{Kind: MasqueradeUnlessFrom, Prefix: ctx.ClusterCIDR})
			}
			rules = append(rules, spread(s, cluster, chainFor)...)
			sp.Chains = append(sp.Chains, Chain{Name: svcChain, Rules: rules})
			addEntries(sp.ClusterIPs, Verdict{Chain: svcChain}, false)
		}
		// External traffic: node ports, external and load-balancer addresses.
		if hasExternal {
			var v Verdict
			noEP := false
			switch {
			case len(usable) == 0:
				v, noEP = Verdict{Reject: true}, true
			case !s.ExternalLocal && len(cluster) == 0:
				v, noEP = Verdict{Drop: true}, true
			case !s.ExternalLocal:
				sp.Chains = append(sp.Chains, Chain{Name: extChain, Rules: []Rule{
					{Kind: MasqueradeAll},
					{Kind: Goto, Target: svcChain},
				}})
				v = Verdict{Chain: extChain}
			default:
				// Pods and the node itself reaching an external address
				// take the cluster path (with the node masqueraded);
				// traffic from outside keeps its source and goes only to
				// endpoints on this node.
				var rules []Rule
				if len(cluster) > 0 {
					if ctx.ClusterCIDR.IsValid() {
						rules = append(rules, Rule{Kind: GotoFrom, Prefix: ctx.ClusterCIDR, Target: svcChain})
					}
					rules = append(rules, Rule{Kind: MasqueradeFromLocal}, Rule{Kind: GotoFromLocal, Target: svcChain})
				}
				if len(local) == 0 {
					rules = append(rules, Rule{Kind: Drop})
				} else {
					rules = append(rules, spread(s, local, chainFor)...)
				}
				sp.Chains = append(sp.Chains, Chain{Name: extChain, Rules: rules})
				v = Verdict{Chain: extChain}
			}
			addEntries(external, v, noEP)
			if p.NodePort != 0 {
				e := PortEntry{Proto: p.Protocol, Port: p.NodePort, Verdict: v}
				if noEP {
					sp.NoEndpointNodePorts = append(sp.NoEndpointNodePorts, e)
				} else {
					sp.NodePorts = append(sp.NodePorts, e)
				}
			}
		}
		// Endpoint chains, in a stable order.
		eps := make([]netip.AddrPort, 0, len(epChains))
		for ep := range epChains {
			eps = append(eps, ep)
		}
		slices.SortFunc(eps, netip.AddrPort.Compare)
		for _, ep := range eps {
			name := epChains[ep]
			rules := []Rule{{Kind: MasqueradeFrom, Addr: ep.Addr()}}
			if s.Affinity > 0 {
				set := affinitySet(name, s.Affinity)
				sp.Affinity = append(sp.Affinity, AffinitySet{Name: set, Timeout: s.Affinity})
				rules = append(rules, Rule{Kind: Remember, Set: set})
			}
			rules = append(rules, Rule{Kind: DNAT, Addr: ep.Addr(), Port: ep.Port()})
			sp.Chains = append(sp.Chains, Chain{Name: name, Rules: rules})
		}
		sp.Endpoints += len(eps)
		if p.Protocol == UDP {
			sp.UDPEndpoints = append(sp.UDPEndpoints, eps...)
		}
	}
	sp.Announce = announce(s, sl)
	if s.ExternalLocal && s.HealthCheckNodePort != 0 {
		sp.HealthCheck = &HealthCheck{Port: s.HealthCheckNodePort, Service: s.Key(), LocalEndpoints: localTotal}
	}
	return sp
}

// announce lists s's load-balancer addresses with the nodes that may
// answer for them.
func announce(s Service, sl []Slice) []Announce {
	lbs := only4(slices.Clone(s.LoadBalancerIPs))
	if len(lbs) == 0 {
		return nil
	}
	var nodes []string
	if s.ExternalLocal {
		seen := map[string]bool{}
		for _, p := range s.Ports {
			for _, e := range endpointsFor(p, sl) {
				if e.node != "" && !seen[e.node] && (e.ready || (e.serving && e.terminating)) {
					seen[e.node] = true
					nodes = append(nodes, e.node)
				}
			}
		}
		slices.Sort(nodes)
	}
	out := make([]Announce, len(lbs))
	for i, a := range lbs {
		out[i] = Announce{Addr: a, Any: !s.ExternalLocal, Nodes: nodes}
	}
	return out
}

// spread sends traffic to one of eps at random, remembered clients first.
func spread(s Service, eps []netip.AddrPort, chainFor func(netip.AddrPort) string) []Rule {
	var rules []Rule
	targets := make([]string, 0, len(eps))
	for _, ep := range eps {
		t := chainFor(ep)
		if s.Affinity > 0 {
			rules = append(rules, Rule{Kind: Sticky, Set: affinitySet(t, s.Affinity), Target: t})
		}
		for range max(1, s.Weights[ep.Addr()]) {
			targets = append(targets, t)
		}
	}
	if len(eps) == 1 {
		return append(rules, Rule{Kind: Goto, Target: targets[0]})
	}
	return append(rules, Rule{Kind: Spread, Targets: targets})
}

// affinitySet names the set of clients remembered for an endpoint chain.
// The name carries the timeout, so a changed timeout is a new set.
func affinitySet(endpointChain string, timeout time.Duration) string {
	return "affinity-" + endpointChain[len("endpoint-"):] + "/" + strconv.Itoa(int(timeout/time.Second)) + "s"
}

// An endpoint of one Service port, with its conditions.
type portEndpoint struct {
	netip.AddrPort
	node                        string
	ready, serving, terminating bool
}

// endpointsFor lists the endpoints of Service port p: the endpoints of
// every slice that has a port of p's name and protocol, at that slice's
// port number. An address in two slices (a slice being replaced) counts
// once, as its readiest copy.
func endpointsFor(p ServicePort, sl []Slice) []portEndpoint {
	var out []portEndpoint
	idx := map[netip.AddrPort]int{}
	for _, s := range sl {
		var num uint16
		for _, sp := range s.Ports {
			if sp.Name == p.Name && sp.Protocol == p.Protocol {
				num = sp.Port
				break
			}
		}
		if num == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			pe := portEndpoint{AddrPort: netip.AddrPortFrom(e.Addr, num), node: e.Node, ready: e.Ready, serving: e.Serving, terminating: e.Terminating}
			if i, ok := idx[pe.AddrPort]; ok {
				if pe.ready && !out[i].ready {
					out[i] = pe
				}
				continue
			}
			idx[pe.AddrPort] = len(out)
			out = append(out, pe)
		}
	}
	slices.SortFunc(out, func(a, b portEndpoint) int { return a.AddrPort.Compare(b.AddrPort) })
	return out
}

// usableEndpoints picks, among eps on node (every node when node is ""),
// the ready ones, or when none is ready the serving ones that are
// terminating, so that connections drain to them rather than fail (as
// kube-proxy does).
func usableEndpoints(eps []portEndpoint, node string) []netip.AddrPort {
	var ready, draining []netip.AddrPort
	for _, e := range eps {
		if node != "" && e.node != node {
			continue
		}
		switch {
		case e.ready:
			ready = append(ready, e.AddrPort)
		case e.serving && e.terminating:
			draining = append(draining, e.AddrPort)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return draining
}

func only4(as []netip.Addr) []netip.Addr {
	out := as[:0]
	for _, a := range as {
		if a.Is4() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Resolve checks the Services' plans together: an address-port or node
// port that two Services claim goes to the first by key, and the other's
// entry is left out and reported. A plan that loses an entry is replaced
// by a copy, so plans cached by the caller are never changed.
func (p *Plan) Resolve() {
	p.Conflicts = nil
	ips := map[ipKey]string{}
	ports := map[portKey]string{}
	for _, k := range sortedKeys(p.Services) {
		sp := p.Services[k]
		var lost bool
		keepIP := func(es []IPEntry) []IPEntry {
			var out []IPEntry
			for i, e := range es {
				key := ipKey{e.Addr, e.Proto, e.Port}
				if owner, ok := ips[key]; ok && owner != k {
					p.Conflicts = append(p.Conflicts, fmt.Sprintf("%s: %s %s/%d is %s's", k, e.Addr, e.Proto, e.Port, owner))
					if out == nil {
						out = append(make([]IPEntry, 0, len(es)), es[:i]...)
					}
					lost = true
					continue
				}
				ips[key] = k
				if out != nil {
					out = append(out, e)
				}
			}
			if out == nil {
				return es
			}
			return out
		}
		keepPort := func(es []PortEntry) []PortEntry {
			var out []PortEntry
			for i, e := range es {
				key := portKey{e.Proto, e.Port}
				if owner, ok := ports[key]; ok && owner != k {
					p.Conflicts = append(p.Conflicts, fmt.Sprintf("%s: node port %s/%d is %s's", k, e.Proto, e.Port, owner))
					if out == nil {
						out = append(make([]PortEntry, 0, len(es)), es[:i]...)
					}
					lost = true
					continue
				}
				ports[key] = k
				if out != nil {
					out = append(out, e)
				}
			}
			if out == nil {
				return es
			}
			return out
		}
		c := *sp
		c.ServiceIPs = keepIP(sp.ServiceIPs)
		c.NoEndpoints = keepIP(sp.NoEndpoints)
		c.NodePorts = keepPort(sp.NodePorts)
		c.NoEndpointNodePorts = keepPort(sp.NoEndpointNodePorts)
		if lost {
			p.Services[k] = &c
		}
	}
}

type ipKey struct {
	addr  netip.Addr
	proto Protocol
	port  uint16
}

type portKey struct {
	proto Protocol
	port  uint16
}
