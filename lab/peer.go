package lab

// `weft lab peer A B` joins two labs as peered clusters: a WAN segment (a
// bridge in its own namespace, WANSubnet) gets a leg in every
// gateway-eligible node of both labs, and each lab's peering file lists
// the other's bundle, as `weft peering export` would print it. The agents
// read their peering file every resync and take it from there.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/weftnet/weft/peering"
	"github.com/weftnet/weft/tunnel/wireguard"
)

// Lab settings of peering.
const (
	// LabPeeringPort is every lab gateway's peering WireGuard port (the
	// agent's default).
	LabPeeringPort = 51821
	// LabPeeringKeepalive is short, so that a failover is noticed on the
	// other side within seconds.
	LabPeeringKeepalive = "5s"
	wanPrefix           = "weftwan-"
	wanBridge           = "br0"
	wanOwnerMark        = "weft-lab-wan"
)

// WANNS is the namespace of the WAN segment between labs a and b.
func WANNS(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return wanPrefix + a + "-" + b
}

// wanIf is the WAN interface, in a gateway node of one lab, that leads to
// the other lab.
func wanIf(other string) string {
	if len(other) > 13 {
		other = other[:13]
	}
	return "w-" + other
}

// ClusterID is the clusterID the agents of lab name run with.
func ClusterID(name string) string { return "lab-" + name }

// Bundle is lab st's peering bundle, with its gateways' endpoints on the
// WAN segment to a peer (second: this lab is the second of the pair).
func (l Layout) Bundle(st *State, second bool) (peering.Bundle, error) {
	b := peering.Bundle{
		Name:         l.Name,
		ID:           ClusterID(l.Name),
		PodCIDRs:     []string{st.Spec.ClusterCIDR},
		ServiceCIDRs: []string{st.Spec.ServiceCIDR},
	}
	for _, n := range st.Nodes {
		if n.Index > st.Spec.Gateways {
			continue
		}
		key, err := wireguard.LoadOrCreateKey(l.Node(n.Name).PeeringKey)
		if err != nil {
			return b, fmt.Errorf("node %s: %w", n.Name, err)
		}
		addr, err := WANAddr(second, n.Index)
		if err != nil {
			return b, err
		}
		b.Gateways = append(b.Gateways, peering.Gateway{
			Node:      n.Name,
			Endpoint:  netip.AddrPortFrom(addr, LabPeeringPort).String(),
			PublicKey: key.PublicKey().String(),
		})
	}
	if len(b.Gateways) == 0 {
		return b, fmt.Errorf("lab %s has no gateway-eligible node (create it with --gateways N)", l.Name)
	}
	return b, nil
}

// Peer joins this lab and other: the WAN segment, each gateway's leg on
// it, and each lab's peering file listing the other. Running it again
// repairs what is missing and rewrites the peering entries.
func (lb *Lab) Peer(ctx context.Context, other *Lab) error {
	a, b := lb, other
	if a.layout.Name == b.layout.Name {
		return fmt.Errorf("a lab cannot peer with itself (%s)", a.layout.Name)
	}
	if b.layout.Name < a.layout.Name {
		a, b = b, a
	}
	var states [2]*State
	for i, x := range []*Lab{a, b} {
		st, unlock, err := x.openState()
		if err != nil {
			return err
		}
		defer unlock()
		if st.Spec.Gateways == 0 {
			return fmt.Errorf("lab %s has no gateway-eligible node (create it with --gateways N)", x.layout.Name)
		}
		states[i] = st
	}
	var bundles [2]peering.Bundle
	for i, x := range []*Lab{a, b} {
		bd, err := x.layout.Bundle(states[i], i == 1)
		if err != nil {
			return err
		}
		bundles[i] = bd
	}
	// Each side checks the other's bundle as its agents will, before
	// anything is created.
	files := [2][]byte{}
	for i, x := range []*Lab{a, b} {
		f, err := x.peeringFileWith(states[i], bundles[1-i])
		if err != nil {
			return err
		}
		files[i] = f
	}
	wan := WANNS(a.layout.Name, b.layout.Name)
	if err := lb.createWAN(ctx, wan, states[0].Spec.MTU); err != nil {
		return err
	}
	for i, x := range []*Lab{a, b} {
		otherName := []*Lab{a, b}[1-i].layout.Name
		for _, n := range states[i].Nodes {
			if n.Index > states[i].Spec.Gateways {
				continue
			}
			if err := lb.plugWAN(ctx, wan, n, i == 1, wanIf(otherName), states[i].Spec.MTU); err != nil {
				return fmt.Errorf("lab %s node %s: %w", x.layout.Name, n.Name, err)
			}
		}
	}
	for i, x := range []*Lab{a, b} {
		if err := writeFileAtomic(x.layout.PeeringFile(), files[i], 0o644); err != nil {
			return err
		}
		lb.opts.Log.Info("peering file written", "lab", x.layout.Name, "peer", bundles[1-i].Name, "file", x.layout.PeeringFile())
	}
	return nil
}

// peeringFileWith returns this lab's peering file with remote listed
// (replacing an entry of the same name), validated as the agents will.
func (lb *Lab) peeringFileWith(st *State, remote peering.Bundle) ([]byte, error) {
	var f peering.File
	if b, err := os.ReadFile(lb.layout.PeeringFile()); err == nil {
		if f, err = peering.ParseFile(b); err != nil {
			return nil, fmt.Errorf("lab %s: %s: %w", lb.layout.Name, lb.layout.PeeringFile(), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	entry := peering.PeerEntry{Bundle: remote, PersistentKeepalive: LabPeeringKeepalive}
	replaced := false
	for i := range f.Peers {
		if f.Peers[i].Name == remote.Name {
			f.Peers[i], replaced = entry, true
		}
	}
	if !replaced {
		f.Peers = append(f.Peers, entry)
	}
	out, err := yaml.Marshal(struct {
		Peers []peering.PeerEntry `yaml:"peers"`
	}{f.Peers})
	if err != nil {
		return nil, fmt.Errorf("failed to encode the peering file: %w", err)
	}
	out = append([]byte("# written by weft lab peer\n"), out...)
	local := peering.Local{Name: lb.layout.Name, ID: ClusterID(lb.layout.Name)}
	for _, s := range []string{st.Spec.ClusterCIDR} {
		local.PodCIDRs = append(local.PodCIDRs, netip.MustParsePrefix(s))
	}
	local.ServiceCIDRs = []netip.Prefix{netip.MustParsePrefix(st.Spec.ServiceCIDR)}
	if _, err := peering.Next(nil, out, local); err != nil {
		return nil, fmt.Errorf("lab %s would refuse the peering: %w", lb.layout.Name, err)
	}
	return out, nil
}

// createWAN creates the WAN namespace and its bridge unless they exist.
func (lb *Lab) createWAN(ctx context.Context, wan string, mtu int) error {
	if _, err := os.Lstat(NetNSPath(wan)); err == nil {
		return nil
	}
	m := strconv.Itoa(mtu)
	return runAll(ctx, lb.opts.Runner, []Cmd{
		{"ip", "netns", "add", wan},
		ipn(wan, "link", "set", "lo", "alias", wanOwnerMark),
		ipn(wan, "link", "set", "lo", "up"),
		// The segment carries IPv4 only, so that a capture on it shows
		// nothing but the gateways' WireGuard (and ARP).
		{"ip", "netns", "exec", wan, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"},
		ipn(wan, "link", "add", wanBridge, "mtu", m, "type", "bridge"),
		ipn(wan, "link", "set", wanBridge, "up"),
	})
}

// plugWAN gives gateway node n a leg on the WAN unless it has one.
func (lb *Lab) plugWAN(ctx context.Context, wan string, n NodeState, second bool, ifname string, mtu int) error {
	if _, err := lb.opts.Runner.Run(ctx, "ip", "-n", n.NetNS, "link", "show", ifname); err == nil {
		return nil
	}
	addr, err := WANAddr(second, n.Index)
	if err != nil {
		return err
	}
	port := "a" + strconv.Itoa(n.Index)
	if second {
		port = "b" + strconv.Itoa(n.Index)
	}
	m := strconv.Itoa(mtu)
	return runAll(ctx, lb.opts.Runner, []Cmd{
		ipn(wan, "link", "add", port, "mtu", m, "type", "veth", "peer", "name", ifname, "mtu", m, "netns", n.NetNS),
		ipn(wan, "link", "set", port, "master", wanBridge, "up"),
		{"ip", "netns", "exec", n.NetNS, "sysctl", "-qw", "net.ipv6.conf." + ifname + ".disable_ipv6=1"},
		ipn(n.NetNS, "addr", "add", fmt.Sprintf("%s/%d", addr, WANSubnet.Bits()), "dev", ifname),
		ipn(n.NetNS, "link", "set", ifname, "up"),
	})
}

// deleteWANs deletes the WAN segments of lab name: its legs in the other
// labs' gateways go with them.
func deleteWANs(ctx context.Context, r Runner, name string) error {
	found, err := Namespaces(wanPrefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range found {
		parts := strings.Split(strings.TrimPrefix(ns, wanPrefix), "-")
		if len(parts) == 2 && (parts[0] == name || parts[1] == name) {
			if err := DeleteNS(ctx, r, ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
