// Command weft is the weft node agent and its command-line tools.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	root := &cobra.Command{
		Use:           "weft",
		Short:         "weft: an encrypted Kubernetes pod network",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newAgentCommand(),
		newStatusCommand(),
		newPeersCommand(),
		newPolicyCommand(),
		newPeeringCommand(),
		newLeaveCommand(),
		newKeygenCommand(),
		newVersionCommand(),
		newLabCommand(),
	)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "weft:", err)
		os.Exit(1)
	}
}
