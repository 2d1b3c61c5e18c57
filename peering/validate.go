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

type validator struct {
	file  File
	local Local
	probs Problems
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

// cidr is one declared network, for the overlap check.
type cidr struct {
	cluster string
	field   string
	prefix  netip.Prefix
	what    string // for messages: `pod CIDR 10.1.0.0/16 of cluster "west" (peers[0].podCIDRs[0])`
}

func (v *validator) run() []Peer {
	var cidrs []cidr
	self := "this cluster's"
	if v.local.Name != "" {
		self = fmt.Sprintf("this cluster's (%q)", v.local.Name)
	}
	for i, p := range v.local.PodCIDRs {
		cidrs = append(cidrs, cidr{cluster: v.local.Name, field: fmt.Sprintf("local.podCIDRs[%d]", i), prefix: p,
			what: fmt.Sprintf("%s pod CIDR %s", self, p)})
	}
	for i, p := range v.local.ServiceCIDRs {
		cidrs = append(cidrs, cidr{cluster: v.local.Name, field: fmt.Sprintf("local.serviceCIDRs[%d]", i), prefix: p,
			what: fmt.Sprintf("%s service CIDR %s", self, p)})
	}
	names := map[string]int{}
	ids := map[string]int{}
	keys := map[wgtypes.Key]string{} // key -> "gateway X of cluster Y (field)"
	keyCluster := map[wgtypes.Key]string{}
	var endpoints []endpoint

	var peers []Peer
	for i, e := range v.file.Peers {
		base := fmt.Sprintf("peers[%d]", i)
		name := e.Name
		label := fmt.Sprintf("cluster %q", name)
		if name == "" {
			label = base + " (no name)"
		}
		p := Peer{Name: name, ID: e.ID}

		switch {
		case name == "":
			v.add(base+".name", nil, "required")
		case !IsDNSLabel(name):
			v.add(base+".name", []string{name}, "%s: not a DNS label (lowercase letters, digits and '-', at most 63)", label)
		case name == v.local.Name:
			v.add(base+".name", []string{name}, "%s has this cluster's own name", label)
		default:
			if j, ok := names[name]; ok {
				v.add(base+".name", []string{name}, "%s is listed twice (also peers[%d])", label, j)
			} else {
				names[name] = i
			}
		}
		switch {
		case e.ID == "":
			v.add(base+".id", []string{name}, "%s: required", label)
		case !IsDNSLabel(e.ID):
			v.add(base+".id", []string{name}, "%s: id %q is not a DNS label (lowercase letters, digits and '-', at most 63)", label, e.ID)
		case v.local.ID != "" && e.ID == v.local.ID:
			v.add(base+".id", []string{name, v.local.Name}, "%s has this cluster's own id %q", label, e.ID)
		default:
			if j, ok := ids[e.ID]; ok {
				v.add(base+".id", []string{name, v.file.Peers[j].Name}, "%s: id %q is also the id of cluster %q (peers[%d])", label, e.ID, v.file.Peers[j].Name, j)
			} else {
				ids[e.ID] = i
			}
		}

		if len(e.PodCIDRs) == 0 {
			v.add(base+".podCIDRs", []string{name}, "%s declares no pod CIDR", label)
		}
		parse := func(list []string, key, kind string) []netip.Prefix {
			var out []netip.Prefix
			for k, s := range list {
				field := fmt.Sprintf("%s.%s[%d]", base, key, k)
				pfx, err := netip.ParsePrefix(s)
				switch {
				case err != nil:
					v.add(field, []string{name}, "%s: %q is not a CIDR", label, s)
					continue
				case pfx.Masked() != pfx:
					v.add(field, []string{name}, "%s: %s has host bits set (did you mean %s?)", label, pfx, pfx.Masked())
					continue
				}
				out = append(out, pfx)
				cidrs = append(cidrs, cidr{cluster: name, field: field, prefix: pfx,
					what: fmt.Sprintf("%s %s of %s (%s)", kind, pfx, label, field)})
			}
			return out
		}
		p.PodCIDRs = parse(e.PodCIDRs, "podCIDRs", "pod CIDR")
		p.ServiceCIDRs = parse(e.ServiceCIDRs, "serviceCIDRs", "service CIDR")

		p.Zone = strings.ToLower(strings.TrimSuffix(e.Zone, "."))
		if p.Zone == "" {
			p.Zone = DefaultZone
		}
		switch {
		case !isDNSName(p.Zone):
			v.add(base+".zone", []string{name}, "%s: zone %q is not a DNS name", label, e.Zone)
		case p.Zone == clustersetZone || strings.HasSuffix(p.Zone, "."+clustersetZone):
			v.add(base+".zone", []string{name}, "%s: zone %q lies in the %s zone, which is shared by all clusters", label, e.Zone, clustersetZone)
		}

		if len(e.Gateways) == 0 {
			v.add(base+".gateways", []string{name}, "%s lists no gateway", label)
		}
		nodes := map[string]int{}
		for j, g := range e.Gateways {
			gbase := fmt.Sprintf("%s.gateways[%d]", base, j)
			gw := RemoteGateway{Node: g.Node}
			ok := true
			switch {
			case g.Node == "":
				v.add(gbase+".node", []string{name}, "%s: gateway node name required", label)
				ok = false
			case !isDNSName(g.Node) || strings.ToLower(g.Node) != g.Node:
				v.add(gbase+".node", []string{name}, "%s: %q is not a node name", label, g.Node)
				ok = false
			default:
				if k, dup := nodes[g.Node]; dup {
					v.add(gbase+".node", []string{name}, "%s: gateway %q is listed twice (also gateways[%d])", label, g.Node, k)
					ok = false
				}
				nodes[g.Node] = j
			}
			gwLabel := fmt.Sprintf("%s, gateway %q", label, g.Node)
			ep, err := netip.ParseAddrPort(g.Endpoint)
			switch {
			case g.Endpoint == "":
				v.add(gbase+".endpoint", []string{name}, "%s: endpoint required (ip:port)", gwLabel)
				ok = false
			case err != nil:
				v.add(gbase+".endpoint", []string{name}, "%s: endpoint %q is not ip:port (host names are not resolved)", gwLabel, g.Endpoint)
				ok = false
			case ep.Port() == 0:
				v.add(gbase+".endpoint", []string{name}, "%s: endpoint %s has port 0", gwLabel, ep)
				ok = false
			case ep.Addr().IsUnspecified() || ep.Addr().IsMulticast():
				v.add(gbase+".endpoint", []string{name}, "%s: endpoint %s is not a unicast address", gwLabel, ep)
				ok = false
			}
			gw.Endpoint = netip.AddrPortFrom(ep.Addr().Unmap(), ep.Port())
			if err == nil {
				endpoints = append(endpoints, endpoint{cluster: name, field: gbase + ".endpoint", addr: gw.Endpoint, label: gwLabel})
			}
			key, err := wgtypes.ParseKey(g.PublicKey)
			switch {
			case g.PublicKey == "":
				v.add(gbase+".publicKey", []string{name}, "%s: public key required", gwLabel)
				ok = false
			case err != nil:
				v.add(gbase+".publicKey", []string{name}, "%s: not a WireGuard public key (32 bytes, base64): %v", gwLabel, err)
				ok = false
			case key == wgtypes.Key{}:
				v.add(gbase+".publicKey", []string{name}, "%s: the all-zero key is not a public key", gwLabel)
				ok = false
			default:
				if other, dup := keys[key]; dup {
					v.add(gbase+".publicKey", []string{name, keyCluster[key]}, "%s: public key is also that of %s", gwLabel, other)
					ok = false
				} else {
					keys[key] = fmt.Sprintf("gateway %q of %s (%s)", g.Node, label, gbase)
					keyCluster[key] = name
				}
			}
			gw.PublicKey = key
			if ok {
				p.Gateways = append(p.Gateways, gw)
			}
		}

		switch ka := e.PersistentKeepalive; ka {
		case "":
			p.PersistentKeepalive = DefaultPersistentKeepalive
		case "off":
		default:
			d, err := time.ParseDuration(ka)
			switch {
			case err != nil:
				v.add(base+".persistentKeepalive", []string{name}, "%s: %q is not a duration (e.g. 25s) or \"off\"", label, ka)
			case d < time.Second || d > 65535*time.Second || d%time.Second != 0:
				v.add(base+".persistentKeepalive", []string{name}, "%s: %s is not a whole number of seconds from 1s to 65535s", label, d)
			default:
				p.PersistentKeepalive = d
			}
		}
		peers = append(peers, p)
	}

	// Overlaps: each pair once, reported on the later-declared field
	// (local networks come first, so a peer is always the one reported).
	for j := range cidrs {
		for i := range j {
			a, b := cidrs[i], cidrs[j]
			if strings.HasPrefix(b.field, "local.") || !a.prefix.Overlaps(b.prefix) {
				continue
			}
			v.add(b.field, []string{a.cluster, b.cluster}, "%s overlaps %s", b.what, a.what)
		}
	}
	// A gateway reached through an address that the peering itself
	// routes elsewhere would send the tunnel into the tunnel.
	for _, e := range endpoints {
		for _, c := range cidrs {
			if c.prefix.Contains(e.addr.Addr()) {
				v.add(e.field, []string{e.cluster, c.cluster}, "%s: endpoint %s lies inside %s; the tunnel would be routed into itself", e.label, e.addr, c.what)
			}
		}
	}
	return peers
}

// endpoint is one gateway endpoint, for the check against the networks.
type endpoint struct {
	cluster, field, label string
	addr                  netip.AddrPort
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
