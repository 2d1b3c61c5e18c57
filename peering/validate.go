package peering

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// DefaultPersistentKeepalive is a peer's keepalive when the file sets none.
const DefaultPersistentKeepalive = 25 * time.Second

// clustersetZone is the multi-cluster services zone; no cluster may claim it.
const clustersetZone = "clusterset.local"

// Local is this cluster as validation and planning need it.
type Local struct {
	// Name and ID are this cluster's own; a peer may use neither.
	Name string
	ID   string
	// PodCIDRs and ServiceCIDRs are this cluster's networks; no peer's may
	// overlap them.
	PodCIDRs     []netip.Prefix
	ServiceCIDRs []netip.Prefix
}

// Peer is a validated remote cluster.
type Peer struct {
	Name         string
	ID           string
	PodCIDRs     []netip.Prefix
	ServiceCIDRs []netip.Prefix
	Zone         string
	// Gateways are in bundle order; the order is the remote side's
	// preference when no handshake tells which gateway is active.
	Gateways []RemoteGateway
	// PersistentKeepalive is 0 when off.
	PersistentKeepalive time.Duration
}

// CIDRs returns the peer's pod CIDRs then its service CIDRs: the only
// sources accepted from it.
func (p Peer) CIDRs() []netip.Prefix {
	return append(slices.Clone(p.PodCIDRs), p.ServiceCIDRs...)
}

// RemoteGateway is a validated gateway of a remote cluster.
type RemoteGateway struct {
	Node      string
	Endpoint  netip.AddrPort
	PublicKey wgtypes.Key
}

// Validate checks the file against itself and the local cluster and
// returns the peers, sorted by name. On any problem it returns no peers
// and a Problems error listing every problem, in file order. A file with
// no peers is valid.
func (f File) Validate(local Local) ([]Peer, error) {
	v := validator{file: f, local: local}
	peers := v.run()
	if len(v.probs) > 0 {
		return nil, v.probs.sort()
	}
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return peers, nil
}

// validator collects problems over one file; the maps find collisions
// between peers.
type validator struct {
	file  File
	local Local
	probs Problems

	names     map[string]int // peer name -> index of its first entry
	ids       map[string]int // cluster id -> index of its first entry
	keys      map[wgtypes.Key]keyOwner
	cidrs     []cidr // the local cluster's first, then in file order
	endpoints []endpoint
}

// entry is the peer being validated, for field paths and messages.
type entry struct {
	index int
	base  string // "peers[1]"
	name  string
	label string // `cluster "west"`, or "peers[1] (no name)"
}

// keyOwner is the gateway that first used a public key.
type keyOwner struct {
	cluster string
	what    string // `gateway "gw-1" of cluster "west" (peers[0].gateways[0])`
}

// cidr is one declared network, for the overlap check.
type cidr struct {
	cluster string
	field   string
	prefix  netip.Prefix
	what    string // for messages: `pod CIDR 10.1.0.0/16 of cluster "west" (peers[0].podCIDRs[0])`
}

// endpoint is one gateway endpoint, for the check against the networks.
type endpoint struct {
	cluster, field, label string
	addr                  netip.AddrPort
}

func (v *validator) add(field string, clusters []string, format string, args ...any) {
	cs := slices.DeleteFunc(slices.Clone(clusters), func(s string) bool { return s == "" })
	slices.Sort(cs)
	v.probs = append(v.probs, Problem{
		Field:    field,
		Line:     v.file.index.Line(field),
		Clusters: slices.Compact(cs),
		Message:  fmt.Sprintf(format, args...),
	})
}

func (v *validator) run() []Peer {
	v.names, v.ids, v.keys = map[string]int{}, map[string]int{}, map[wgtypes.Key]keyOwner{}
	self := "this cluster's"
	if v.local.Name != "" {
		self = fmt.Sprintf("this cluster's (%q)", v.local.Name)
	}
	for i, p := range v.local.PodCIDRs {
		v.cidrs = append(v.cidrs, cidr{cluster: v.local.Name, field: fmt.Sprintf("local.podCIDRs[%d]", i), prefix: p,
			what: fmt.Sprintf("%s pod CIDR %s", self, p)})
	}
	for i, p := range v.local.ServiceCIDRs {
		v.cidrs = append(v.cidrs, cidr{cluster: v.local.Name, field: fmt.Sprintf("local.serviceCIDRs[%d]", i), prefix: p,
			what: fmt.Sprintf("%s service CIDR %s", self, p)})
	}

	var peers []Peer
	for i, e := range v.file.Peers {
		c := entry{index: i, base: fmt.Sprintf("peers[%d]", i), name: e.Name, label: fmt.Sprintf("cluster %q", e.Name)}
		if e.Name == "" {
			c.label = c.base + " (no name)"
		}
		v.identity(c, e.ID)
		if len(e.PodCIDRs) == 0 {
			v.add(c.base+".podCIDRs", []string{c.name}, "%s declares no pod CIDR", c.label)
		}
		if len(e.Gateways) == 0 {
			v.add(c.base+".gateways", []string{c.name}, "%s lists no gateway", c.label)
		}
		p := Peer{
			Name:                e.Name,
			ID:                  e.ID,
			PodCIDRs:            v.networks(c, e.PodCIDRs, "podCIDRs", "pod CIDR"),
			ServiceCIDRs:        v.networks(c, e.ServiceCIDRs, "serviceCIDRs", "service CIDR"),
			Zone:                v.zone(c, e.Zone),
			PersistentKeepalive: v.keepalive(c, e.PersistentKeepalive),
		}
		nodes := map[string]int{}
		for j, g := range e.Gateways {
			if gw, ok := v.gateway(c, j, g, nodes); ok {
				p.Gateways = append(p.Gateways, gw)
			}
		}
		peers = append(peers, p)
	}
	v.overlaps()
	return peers
}

// identity checks a peer's name and id, alone and against the others.
func (v *validator) identity(c entry, id string) {
	switch {
	case c.name == "":
		v.add(c.base+".name", nil, "required")
	case !IsDNSLabel(c.name):
		v.add(c.base+".name", []string{c.name}, "%s: not a DNS label (lowercase letters, digits and '-', at most 63)", c.label)
	case c.name == v.local.Name:
		v.add(c.base+".name", []string{c.name}, "%s has this cluster's own name", c.label)
	default:
		if j, ok := v.names[c.name]; ok {
			v.add(c.base+".name", []string{c.name}, "%s is listed twice (also peers[%d])", c.label, j)
		} else {
			v.names[c.name] = c.index
		}
	}
	switch {
	case id == "":
		v.add(c.base+".id", []string{c.name}, "%s: required", c.label)
	case !IsDNSLabel(id):
		v.add(c.base+".id", []string{c.name}, "%s: id %q is not a DNS label (lowercase letters, digits and '-', at most 63)", c.label, id)
	case v.local.ID != "" && id == v.local.ID:
		v.add(c.base+".id", []string{c.name, v.local.Name}, "%s has this cluster's own id %q", c.label, id)
	default:
		if j, ok := v.ids[id]; ok {
			other := v.file.Peers[j].Name
			v.add(c.base+".id", []string{c.name, other}, "%s: id %q is also the id of cluster %q (peers[%d])", c.label, id, other, j)
		} else {
			v.ids[id] = c.index
		}
	}
}

// networks parses a peer's list of CIDRs (key is its field name, kind its
// name in messages) and records them for the overlap check.
func (v *validator) networks(c entry, list []string, key, kind string) []netip.Prefix {
	var out []netip.Prefix
	for k, s := range list {
		field := fmt.Sprintf("%s.%s[%d]", c.base, key, k)
		pfx, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			v.add(field, []string{c.name}, "%s: %q is not a CIDR", c.label, s)
			continue
		case pfx.Masked() != pfx:
			v.add(field, []string{c.name}, "%s: %s has host bits set (did you mean %s?)", c.label, pfx, pfx.Masked())
			continue
		case pfx.Overlaps(TunnelPrefix):
			v.add(field, []string{c.name}, "%s: %s overlaps %s, which holds the gateways' tunnel addresses", c.label, pfx, TunnelPrefix)
			continue
		}
		out = append(out, pfx)
		v.cidrs = append(v.cidrs, cidr{cluster: c.name, field: field, prefix: pfx,
			what: fmt.Sprintf("%s %s of %s (%s)", kind, pfx, c.label, field)})
	}
	return out
}

// zone normalises and checks a peer's DNS zone.
func (v *validator) zone(c entry, raw string) string {
	z := strings.ToLower(strings.TrimSuffix(raw, "."))
	if z == "" {
		z = DefaultZone
	}
	switch {
	case !isDNSName(z):
		v.add(c.base+".zone", []string{c.name}, "%s: zone %q is not a DNS name", c.label, raw)
	case z == clustersetZone || strings.HasSuffix(z, "."+clustersetZone):
		v.add(c.base+".zone", []string{c.name}, "%s: zone %q lies in the %s zone, which is shared by all clusters", c.label, raw, clustersetZone)
	}
	return z
}

// keepalive parses a peer's persistentKeepalive.
func (v *validator) keepalive(c entry, raw string) time.Duration {
	switch raw {
	case "":
		return DefaultPersistentKeepalive
	case "off":
		return 0
	}
	d, err := time.ParseDuration(raw)
	switch {
	case err != nil:
		v.add(c.base+".persistentKeepalive", []string{c.name}, "%s: %q is not a duration (e.g. 25s) or \"off\"", c.label, raw)
	case d < time.Second || d > 65535*time.Second || d%time.Second != 0:
		v.add(c.base+".persistentKeepalive", []string{c.name}, "%s: %s is not a whole number of seconds from 1s to 65535s", c.label, d)
	default:
		return d
	}
	return 0
}

// gateway checks the j-th gateway of a peer; nodes holds the peer's
// gateway names seen so far. ok is false when anything is wrong with it.
func (v *validator) gateway(c entry, j int, g Gateway, nodes map[string]int) (gw RemoteGateway, ok bool) {
	base := fmt.Sprintf("%s.gateways[%d]", c.base, j)
	ok = true
	bad := func(field, format string, args ...any) {
		v.add(base+"."+field, []string{c.name}, format, args...)
		ok = false
	}
	switch {
	case g.Node == "":
		bad("node", "%s: gateway node name required", c.label)
	case !isDNSName(g.Node) || strings.ToLower(g.Node) != g.Node:
		bad("node", "%s: %q is not a node name", c.label, g.Node)
	default:
		if k, dup := nodes[g.Node]; dup {
			bad("node", "%s: gateway %q is listed twice (also gateways[%d])", c.label, g.Node, k)
		}
		nodes[g.Node] = j
	}

	label := fmt.Sprintf("%s, gateway %q", c.label, g.Node)
	ep, err := netip.ParseAddrPort(g.Endpoint)
	switch {
	case g.Endpoint == "":
		bad("endpoint", "%s: endpoint required (ip:port)", label)
	case err != nil:
		bad("endpoint", "%s: endpoint %q is not ip:port (host names are not resolved)", label, g.Endpoint)
	case ep.Port() == 0:
		bad("endpoint", "%s: endpoint %s has port 0", label, ep)
	case ep.Addr().IsUnspecified() || ep.Addr().IsMulticast():
		bad("endpoint", "%s: endpoint %s is not a unicast address", label, ep)
	}
	if err == nil {
		ep = netip.AddrPortFrom(ep.Addr().Unmap(), ep.Port())
		v.endpoints = append(v.endpoints, endpoint{cluster: c.name, field: base + ".endpoint", addr: ep, label: label})
	}

	key, err := wgtypes.ParseKey(g.PublicKey)
	switch {
	case g.PublicKey == "":
		bad("publicKey", "%s: public key required", label)
	case err != nil:
		bad("publicKey", "%s: not a WireGuard public key (32 bytes, base64): %v", label, err)
	case key == wgtypes.Key{}:
		bad("publicKey", "%s: the all-zero key is not a public key", label)
	default:
		if owner, dup := v.keys[key]; dup {
			v.add(base+".publicKey", []string{c.name, owner.cluster}, "%s: public key is also that of %s", label, owner.what)
			ok = false
		} else {
			v.keys[key] = keyOwner{cluster: c.name, what: fmt.Sprintf("gateway %q of %s (%s)", g.Node, c.label, base)}
		}
	}
	return RemoteGateway{Node: g.Node, Endpoint: ep, PublicKey: key}, ok
}

// overlaps reports every pair of overlapping networks once, on the
// later-declared field (local networks come first, so a peer's is always
// the one reported), and every gateway endpoint inside a declared network:
// the tunnel to it would be routed into the tunnel.
func (v *validator) overlaps() {
	for j, b := range v.cidrs {
		if strings.HasPrefix(b.field, "local.") {
			continue
		}
		for _, a := range v.cidrs[:j] {
			if a.prefix.Overlaps(b.prefix) {
				v.add(b.field, []string{a.cluster, b.cluster}, "%s overlaps %s", b.what, a.what)
			}
		}
	}
	for _, e := range v.endpoints {
		for _, c := range v.cidrs {
			if c.prefix.Contains(e.addr.Addr()) {
				v.add(e.field, []string{e.cluster, c.cluster}, "%s: endpoint %s lies inside %s; the tunnel would be routed into itself", e.label, e.addr, c.what)
			}
		}
	}
}

// IsDNSLabel reports whether s is an RFC 1123 label, as cluster names and
// ids must be: lowercase letters, digits and '-', not starting or ending
// with '-', 1 to 63 characters.
func IsDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// isDNSName reports whether s is dot-separated DNS labels, at most 253
// characters, without a trailing dot. Case is not checked.
func isDNSName(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !IsDNSLabel(strings.ToLower(l)) {
			return false
		}
	}
	return true
}
