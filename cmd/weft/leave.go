package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftnet/weft/agent"
)

func newLeaveCommand() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "leave",
		Short: "take this node out of the cluster for good",
		Long: `Ask the local agent to leave the cluster: its pod CIDR lease is freed at
once on every other node, and its tunnel device, routes, masquerade table and
node state file are removed. The agent then exits. Use it when decommissioning
a node; a plain stop or restart keeps the lease reserved instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := agent.RequestLeave(ctx, socket); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "the agent is leaving the cluster")
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", agent.DefaultStatusSocket, "agent status socket")
	return cmd
}
