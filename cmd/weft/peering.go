package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/peering"
)

func newPeeringCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "peering", Short: "peer this cluster with others from a peering file"}
	cmd.AddCommand(newPeeringExportCommand(), newPeeringCheckCommand())
	return cmd
}

type exportFlags struct {
	name, id, zone, socket string
	podCIDRs, serviceCIDRs []string
	gateways               []string
}

func newPeeringExportCommand() *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "export",
		Short: "print this cluster's peering bundle (YAML) for another cluster's peering file",
		Long: `Print this cluster's peering bundle. The other cluster lists it under
peers: in its peering file.

Run on a gateway-eligible node (peering.gateway: true in the agent config),
it asks the agent (over --socket) for everything: the cluster's name, id,
pod and service CIDRs and zone from the agent's peering: section, and this
node as the gateway (its name, underlay address, peering port and public
key). Flags override what the agent says; with --id, --pod-cidr and one
--gateway per gateway-eligible node the agent is not asked at all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := f.bundle(func() (agent.Status, error) { return fetch(cmd.Context(), f.socket) })
			if err != nil {
				return err
			}
			if err := checkBundle(b); err != nil {
				return err
			}
			out, err := b.Marshal()
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "cluster name, a DNS label (default: the agent's peering.clusterName, else the id)")
	fl.StringVar(&f.id, "id", "", "cluster id, a DNS label (default: the agent's clusterID)")
	fl.StringSliceVar(&f.podCIDRs, "pod-cidr", nil, "the cluster's pod CIDR (repeatable; default: the agent's clusterCIDR)")
	fl.StringSliceVar(&f.serviceCIDRs, "service-cidr", nil, "the cluster's service CIDR (repeatable; default: the agent's peering.serviceCIDRs)")
	fl.StringVar(&f.zone, "zone", "", "the cluster's DNS zone (default: the agent's, else cluster.local)")
	fl.StringArrayVar(&f.gateways, "gateway", nil, "a gateway as node=ip:port,publickey (repeatable; default: this node, from the agent)")
	fl.StringVar(&f.socket, "socket", agent.DefaultStatusSocket, "agent status socket")
	return cmd
}

// bundle assembles the bundle from the flags, asking the agent (status)
// only when the flags leave something out.
func (f exportFlags) bundle(status func() (agent.Status, error)) (peering.Bundle, error) {
	b := peering.Bundle{Name: f.name, ID: f.id, PodCIDRs: f.podCIDRs, ServiceCIDRs: f.serviceCIDRs, Zone: f.zone}
	for i, s := range f.gateways {
		g, err := parseGatewayFlag(s)
		if err != nil {
			return b, fmt.Errorf("--gateway #%d: %w", i+1, err)
		}
		b.Gateways = append(b.Gateways, g)
	}
	if b.ID == "" || len(b.PodCIDRs) == 0 || len(b.Gateways) == 0 {
		st, err := status()
		if err != nil {
			return b, fmt.Errorf("%w (or pass --id, --pod-cidr and --gateway to export offline)", err)
		}
		p := st.Peering
		if p == nil {
			return b, errors.New("the agent has no peering: section in its config; add one (see docs/peering.md), or pass --id, --pod-cidr and --gateway")
		}
		setDefault(&b.Name, p.ClusterName)
		setDefault(&b.ID, p.ClusterID)
		setDefault(&b.Zone, p.Zone)
		if len(b.PodCIDRs) == 0 {
			b.PodCIDRs = p.PodCIDRs
		}
		if len(b.ServiceCIDRs) == 0 {
			b.ServiceCIDRs = p.ServiceCIDRs
		}
		if len(b.Gateways) == 0 {
			g, err := agentGateway(st)
			if err != nil {
				return b, err
			}
			b.Gateways = []peering.Gateway{g}
		}
	}
	setDefault(&b.Name, b.ID)
	if b.Zone == peering.DefaultZone {
		b.Zone = "" // the default is not written
	}
	return b, nil
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// parseGatewayFlag parses node=ip:port,publickey.
func parseGatewayFlag(s string) (peering.Gateway, error) {
	node, rest, ok := strings.Cut(s, "=")
	ep, key, ok2 := strings.Cut(rest, ",")
	if !ok || !ok2 || node == "" || ep == "" || key == "" {
		return peering.Gateway{}, fmt.Errorf("%q is not node=ip:port,publickey", s)
	}
	return peering.Gateway{Node: node, Endpoint: ep, PublicKey: key}, nil
}

// agentGateway is the agent's node as a gateway.
func agentGateway(st agent.Status) (peering.Gateway, error) {
	p := st.Peering
	if !p.Gateway || p.PublicKey == "" {
		return peering.Gateway{}, fmt.Errorf("node %s is not gateway-eligible (neither peering.gateway: true nor the Node label weft.dev/peering-gateway=true); run export on an eligible node, or pass --gateway", st.Node)
	}
	ip, err := netip.ParseAddr(st.UnderlayIP)
	if err != nil {
		return peering.Gateway{}, fmt.Errorf("the agent reports no underlay address yet (%q); pass --gateway", st.UnderlayIP)
	}
	return peering.Gateway{
		Node:      st.Node,
		Endpoint:  netip.AddrPortFrom(ip, uint16(p.Port)).String(),
		PublicKey: p.PublicKey,
	}, nil
}

// printPeeringStatus is the peering part of `weft status`.
func printPeeringStatus(w io.Writer, p *agent.PeeringStatus) {
	if p == nil {
		return
	}
	role := "not gateway-eligible"
	if p.Gateway {
		role = fmt.Sprintf("gateway-eligible (port %d, key %s)", p.Port, p.PublicKey)
	}
	peers := strings.Join(p.Peers, ", ")
	if peers == "" {
		peers = "none"
	}
	active := p.ActiveGateway
	if active == "" {
		active = "none (no live eligible node)"
	}
	fmt.Fprintf(w, "  peering: cluster %s (id %s), this node %s; active gateway %s; peers in force: %s\n", p.ClusterName, p.ClusterID, role, active, peers)
	for _, r := range p.Remotes {
		switch {
		case r.Unreachable != "":
			fmt.Fprintf(w, "    %-12s unreachable: %s\n", r.Name, r.Unreachable)
		case r.Gateway == "":
			fmt.Fprintf(w, "    %-12s through gateway %s\n", r.Name, active)
		default:
			hs := "never"
			if !r.LastHandshake.IsZero() {
				hs = time.Since(r.LastHandshake).Round(time.Second).String() + " ago"
			}
			fmt.Fprintf(w, "    %-12s gateway %s (%s), handshake %s, rx %d B, tx %d B\n", r.Name, r.Gateway, r.Endpoint, hs, r.RxBytes, r.TxBytes)
		}
	}
	if cs := p.Clusterset; cs != nil {
		var imports []string
		for _, r := range p.Remotes {
			imports = append(imports, fmt.Sprintf("%s %d", r.Name, cs.Imported[r.Name]))
		}
		pulled := "never"
		if !cs.LastPull.IsZero() {
			pulled = time.Since(cs.LastPull).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(w, "  clusterset: %d service(s) exported; imported: %s (pulled %s)\n", cs.Exported, strings.Join(imports, ", "), pulled)
		if cs.PullError != "" {
			fmt.Fprintf(w, "  clusterset pull failed, imports kept: %s\n", cs.PullError)
		}
		switch {
		case cs.IPsOff != "":
			fmt.Fprintf(w, "  clusterset IPs off: %s\n", cs.IPsOff)
		case cs.IPRange != "":
			fmt.Fprintf(w, "  clusterset IPs: %d of %s\n", cs.IPs, cs.IPRange)
		}
		if cs.IPError != "" {
			fmt.Fprintf(w, "  clusterset IP problem: %s\n", cs.IPError)
		}
	}
	if p.LastError != "" {
		fmt.Fprintf(w, "  peering file refused, previous peers kept: %s\n", strings.ReplaceAll(p.LastError, "\n", "\n    "))
	}
}

// checkBundle validates b as the one peer of a file and names the bundle's
// own fields in the errors.
func checkBundle(b peering.Bundle) error {
	_, err := peering.File{Peers: []peering.PeerEntry{{Bundle: b}}}.Validate(peering.Local{})
	var probs peering.Problems
	if !errors.As(err, &probs) {
		return err
	}
	lines := make([]string, len(probs))
	for i, p := range probs {
		lines[i] = strings.TrimPrefix(p.String(), "peers[0].")
	}
	return fmt.Errorf("the bundle would be refused:\n  %s", strings.Join(lines, "\n  "))
}

type checkFlags struct {
	name, id               string
	podCIDRs, serviceCIDRs []string
}

func newPeeringCheckCommand() *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "validate a peering file, printing every problem; exits non-zero when there is one",
		Long: `Validate a peering file as the agent would, printing every problem with
its field, line and the clusters involved. Give this cluster's identity and
networks (--name, --id, --pod-cidr, --service-cidr) to check the peers
against it too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			local, err := f.local()
			if err != nil {
				return err
			}
			return checkPeeringFile(cmd.OutOrStdout(), args[0], local)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.name, "name", "", "this cluster's name")
	fl.StringVar(&f.id, "id", "", "this cluster's id")
	fl.StringSliceVar(&f.podCIDRs, "pod-cidr", nil, "this cluster's pod CIDR (repeatable)")
	fl.StringSliceVar(&f.serviceCIDRs, "service-cidr", nil, "this cluster's service CIDR (repeatable)")
	return cmd
}

func (f checkFlags) local() (peering.Local, error) {
	l := peering.Local{Name: f.name, ID: f.id}
	parse := func(flag string, in []string) ([]netip.Prefix, error) {
		var out []netip.Prefix
		for _, s := range in {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("--%s: %q is not a CIDR", flag, s)
			}
			out = append(out, p.Masked())
		}
		return out, nil
	}
	var err error
	if l.PodCIDRs, err = parse("pod-cidr", f.podCIDRs); err != nil {
		return l, err
	}
	l.ServiceCIDRs, err = parse("service-cidr", f.serviceCIDRs)
	return l, err
}

// checkPeeringFile prints each problem of the file at path on its own line
// and returns an error when there is any, or prints a summary.
func checkPeeringFile(w io.Writer, path string, local peering.Local) error {
	f, err := peering.ReadFile(path)
	if err != nil {
		return err
	}
	peers, err := f.Validate(local)
	var probs peering.Problems
	if errors.As(err, &probs) {
		for _, p := range probs {
			fmt.Fprintln(w, path+": "+p.String())
		}
		return fmt.Errorf("%s: %d problem(s); the agent keeps its previous peerings while the file has any", path, len(probs))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s: ok, %d peer(s)\n", path, len(peers))
	for _, p := range peers {
		gws := make([]string, len(p.Gateways))
		for i, g := range p.Gateways {
			gws[i] = g.Node + " " + g.Endpoint.String()
		}
		fmt.Fprintf(w, "  %s (id %s, zone %s): %s; gateways %s\n", p.Name, p.ID, p.Zone,
			joinPrefixes(p.CIDRs()), strings.Join(gws, ", "))
	}
	return nil
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}
