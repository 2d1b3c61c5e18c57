package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/weftnet/weft/agent"
)

func newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "NetworkPolicy enforcement on this node"}
	var socket string
	show := &cobra.Command{
		Use:   "show",
		Short: "print the compiled NetworkPolicy ruleset (nft syntax) and what is not enforced exactly",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := fetch(cmd.Context(), socket)
			if err != nil {
				return err
			}
			if st.Policy == nil {
				return fmt.Errorf("the agent does not enforce NetworkPolicy (Kubernetes mode off, or policy.enabled: false)")
			}
			b, err := os.ReadFile(st.Policy.RulesetFile)
			if err != nil {
				return fmt.Errorf("failed to read the ruleset the agent wrote: %w", err)
			}
			printPolicyStatus(cmd.OutOrStdout(), st.Policy)
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	show.Flags().StringVar(&socket, "socket", agent.DefaultStatusSocket, "agent status socket")
	cmd.AddCommand(show)
	return cmd
}

// printPolicyStatus is the policy part of `weft status`.
func printPolicyStatus(w io.Writer, p *agent.PolicyStatus) {
	if p == nil {
		return
	}
	if !p.Synced {
		fmt.Fprintf(w, "  policy: waiting for the first list of Pods, Namespaces and NetworkPolicies\n")
	} else {
		fmt.Fprintf(w, "  policy: policies %d, pods %d enforced (%d policies in the cluster), %d packets dropped\n",
			p.Policies, p.Pods, p.ClusterPolicies, p.DroppedPackets)
	}
	for _, d := range p.TopDrops {
		fmt.Fprintf(w, "    %s %s: %d dropped\n", d.Pod, d.Direction, d.Packets)
	}
	if p.LastError != "" {
		fmt.Fprintf(w, "  policy error: %s\n", p.LastError)
	}
	for _, pr := range p.Problems {
		fmt.Fprintf(w, "  policy not enforced exactly: %s\n", pr)
	}
}
