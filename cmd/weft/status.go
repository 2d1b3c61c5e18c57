package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftnet/weft/agent"
)

func newStatusCommand() *cobra.Command {
	var socket string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show this node's lease and tunnel peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := fetch(cmd.Context(), socket)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(os.Stdout, st)
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", agent.DefaultStatusSocket, "agent status socket")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newPeersCommand() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "list tunnel peers with handshakes and byte counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := fetch(cmd.Context(), socket)
			if err != nil {
				return err
			}
			printPeers(os.Stdout, st)
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", agent.DefaultStatusSocket, "agent status socket")
	return cmd
}

func fetch(ctx context.Context, socket string) (agent.Status, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return agent.FetchStatus(ctx, socket)
}

func printStatus(w io.Writer, st agent.Status) {
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	fmt.Fprintf(w, "node %s (cluster %s): %s\n", st.Node, st.ClusterID, ready)
	fmt.Fprintf(w, "  lease %s  underlay %s  %s on %s  mtu %d  gossip members %d\n",
		orDash(st.PodCIDR), st.UnderlayIP, st.Backend, st.Interface, st.MTU, st.Members)
	if st.Kubernetes != "" {
		fmt.Fprintf(w, "  kubernetes: %s\n", st.Kubernetes)
	}
	printPolicyStatus(w, st.Policy)
	printDNSStatus(w, st.DNS)
	printServicesStatus(w, st.Services)
	printPeeringStatus(w, st.Peering)
	if st.LastError != "" {
		fmt.Fprintf(w, "  last error: %s\n", st.LastError)
	}
	printPeers(w, st)
	for _, s := range st.Skipped {
		fmt.Fprintf(w, "  skipped %s: %s\n", s.Name, s.Reason)
	}
}

func printPeers(w io.Writer, st agent.Status) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PEER\tENDPOINT\tPOD CIDR\tHANDSHAKE\tRX\tTX")
	for _, p := range st.Peers {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Endpoint, p.PodCIDR,
			handshakeAge(p.LastHandshake, st.Backend), bytesHuman(p.RxBytes), bytesHuman(p.TxBytes))
	}
	tw.Flush()
}

func handshakeAge(t time.Time, backend string) string {
	if backend != "wireguard" {
		return "n/a"
	}
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
