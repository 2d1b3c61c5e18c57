package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/peering"
)

// Defaults of `weft peering export` for the gateway it reads from the agent.
const (
	defaultPeeringKeyFile = "/var/lib/weft/peering.key"
	defaultPeeringPort    = 51821
)

func newPeeringCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "peering", Short: "peer this cluster with others from a peering file"}
	cmd.AddCommand(newPeeringExportCommand(), newPeeringCheckCommand())
	return cmd
}

type exportFlags struct {
	name, id, zone, socket, keyFile string
	podCIDRs, serviceCIDRs          []string
	gateways                        []string
	port                            int
}

func newPeeringExportCommand() *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "export",
		Short: "print this cluster's peering bundle (YAML) for another cluster's peering file",
		Long: `Print this cluster's peering bundle. The other cluster lists it under
peers: in its peering file.

Without --id or without --gateway, the agent on this node is asked (over
--socket) for the cluster id and this node's name and underlay address; this
node becomes the one gateway, at underlay:--port, with the public key of the
WireGuard private key in --key-file. Pass --id and --gateway (repeatable, one
per gateway-eligible node) to export offline. --pod-cidr is always required:
it is the cluster's whole pod network, not one node's block.`,
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
	fl.StringVar(&f.name, "name", "", "cluster name, a DNS label (default: the cluster id)")
	fl.StringVar(&f.id, "id", "", "cluster id, a DNS label (default: the agent's clusterID)")
	fl.StringSliceVar(&f.podCIDRs, "pod-cidr", nil, "the cluster's pod CIDR (repeatable; required)")
	fl.StringSliceVar(&f.serviceCIDRs, "service-cidr", nil, "the cluster's service CIDR (repeatable)")
	fl.StringVar(&f.zone, "zone", peering.DefaultZone, "the cluster's DNS zone")
	fl.StringArrayVar(&f.gateways, "gateway", nil, "a gateway as node=ip:port,publickey (repeatable; default: this node, from the agent)")
	fl.StringVar(&f.socket, "socket", agent.DefaultStatusSocket, "agent status socket")
	fl.StringVar(&f.keyFile, "key-file", defaultPeeringKeyFile, "peering WireGuard private key of this node (when the gateway comes from the agent)")
	fl.IntVar(&f.port, "port", defaultPeeringPort, "peering WireGuard port of this node (when the gateway comes from the agent)")
	return cmd
}

// bundle assembles the bundle from the flags, asking the agent (status)
// only for what the flags leave out.
func (f exportFlags) bundle(status func() (agent.Status, error)) (peering.Bundle, error) {
	b := peering.Bundle{Name: f.name, ID: f.id, PodCIDRs: f.podCIDRs, ServiceCIDRs: f.serviceCIDRs, Zone: f.zone}
	if len(b.PodCIDRs) == 0 {
		return b, errors.New("--pod-cidr is required: the cluster's pod network (the agent's clusterCIDR)")
	}
	for i, s := range f.gateways {
		g, err := parseGatewayFlag(s)
		if err != nil {
			return b, fmt.Errorf("--gateway #%d: %w", i+1, err)
		}
		b.Gateways = append(b.Gateways, g)
	}
	if b.ID == "" || len(b.Gateways) == 0 {
		st, err := status()
		if err != nil {
			return b, fmt.Errorf("%w (or pass --id and --gateway to export offline)", err)
		}
		if b.ID == "" {
			b.ID = st.ClusterID
		}
		if len(b.Gateways) == 0 {
			g, err := agentGateway(st, f.keyFile, f.port)
			if err != nil {
				return b, err
			}
			b.Gateways = []peering.Gateway{g}
		}
	}
	if b.Name == "" {
		b.Name = b.ID
	}
	if b.Zone == peering.DefaultZone {
		b.Zone = "" // the default is not written
	}
	return b, nil
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

// agentGateway is this node as a gateway: its name and underlay address
// from the agent, the public key of the private key in keyFile.
func agentGateway(st agent.Status, keyFile string, port int) (peering.Gateway, error) {
	ip, err := netip.ParseAddr(st.UnderlayIP)
	if err != nil {
		return peering.Gateway{}, fmt.Errorf("the agent reports no underlay address yet (%q); pass --gateway", st.UnderlayIP)
	}
	if port < 1 || port > 65535 {
		return peering.Gateway{}, fmt.Errorf("--port: %d is out of range 1-65535", port)
	}
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		return peering.Gateway{}, fmt.Errorf("failed to read the peering key (--key-file): %w", err)
	}
	priv, err := wgtypes.ParseKey(strings.TrimSpace(string(raw)))
	if err != nil {
		return peering.Gateway{}, fmt.Errorf("--key-file %s holds no WireGuard private key: %w", keyFile, err)
	}
	return peering.Gateway{
		Node:      st.Node,
		Endpoint:  netip.AddrPortFrom(ip, uint16(port)).String(),
		PublicKey: priv.PublicKey().String(),
	}, nil
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
