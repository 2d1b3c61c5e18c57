package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/weftnet/weft/gossip"
)

func newKeygenCommand() *cobra.Command {
	var gossipKey string
	cmd := &cobra.Command{
		Use:   "keygen --gossip FILE",
		Short: "generate the cluster's gossip encryption key (0600)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if gossipKey == "" {
				return errors.New("--gossip FILE is required")
			}
			if err := gossip.GenerateKeyFile(gossipKey); err != nil {
				return err
			}
			fmt.Println("wrote", gossipKey)
			return nil
		},
	}
	cmd.Flags().StringVar(&gossipKey, "gossip", "", "where to write the gossip key")
	return cmd
}
