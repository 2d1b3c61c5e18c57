package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/internal/memory"
)

func newAgentCommand() *cobra.Command {
	var (
		configPath string
		over       agent.Config
		seeds      []string
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "run the weft node agent",
		Long: `Run the weft node agent: join the gossip cluster, lease a pod CIDR, keep
tunnels to every other node, and publish the node state for weft-cni.
Flags override the config file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			heapProfileRate := setHeapProfiling(os.Getenv("GODEBUG"))
			var cfg agent.Config
			if configPath != "" {
				c, err := agent.LoadConfig(configPath)
				if err != nil {
					return err
				}
				cfg = c
			}
			f := cmd.Flags()
			if f.Changed("node-name") {
				cfg.NodeName = over.NodeName
			}
			if f.Changed("backend") {
				cfg.Tunnel.Backend = over.Tunnel.Backend
			}
			if f.Changed("cluster-cidr") {
				cfg.ClusterCIDR = over.ClusterCIDR
			}
			if f.Changed("underlay-address") {
				cfg.Underlay.Address = over.Underlay.Address
			}
			if f.Changed("gossip-key-file") {
				cfg.Gossip.KeyFile = over.Gossip.KeyFile
			}
			if f.Changed("seed") {
				cfg.Gossip.Seeds = seeds
			}
			if f.Changed("kubernetes") {
				cfg.Kubernetes.Enabled = over.Kubernetes.Enabled
			}
			if f.Changed("kubeconfig") {
				cfg.Kubernetes.Enabled = true
				cfg.Kubernetes.Kubeconfig = over.Kubernetes.Kubeconfig
			}
			if f.Changed("log-level") {
				cfg.LogLevel = over.LogLevel
			}
			if err := cfg.Complete(); err != nil {
				return fmt.Errorf("invalid configuration: %w", err)
			}
			log := newLogger(cfg.LogLevel)
			a, err := agent.New(cfg, log)
			if err != nil {
				return err
			}
			a.SetProcess(agentProcess(cfg, log))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log.Info("weft agent starting", "version", version, "node", cfg.NodeName, "backend", cfg.Tunnel.Backend,
				"heapProfileRate", heapProfileRate)
			return a.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML config file")
	f.StringVar(&over.NodeName, "node-name", "", "node name (default: $NODE_NAME, else the host name)")
	f.StringVar(&over.Tunnel.Backend, "backend", "", "tunnel backend: wireguard or vxlan")
	f.StringVar(&over.ClusterCIDR, "cluster-cidr", "", "pod network CIDR")
	f.StringVar(&over.Underlay.Address, "underlay-address", "", "this node's underlay address")
	f.StringVar(&over.Gossip.KeyFile, "gossip-key-file", "", "gossip encryption key file")
	f.StringSliceVar(&seeds, "seed", nil, "gossip seed ip[:port] (repeatable)")
	f.StringVar(&over.LogLevel, "log-level", "", "debug, info, warn or error")
	f.BoolVar(&over.Kubernetes.Enabled, "kubernetes", false, "Kubernetes mode with the in-cluster ServiceAccount")
	f.StringVar(&over.Kubernetes.Kubeconfig, "kubeconfig", "", "Kubernetes mode with this kubeconfig")
	return cmd
}

// agentProcess is the agent's say over the process's memory. Start-up (the
// join's state exchange, programming every peer) leaves garbage several
// times the agent's steady heap, returned to the OS once it is done; with
// the embedded wireguard-go device, package memory then keeps the process
// small. The kernel WireGuard and VXLAN backends hold no device memory in
// the process and are left to the runtime's defaults (and GOMEMLIMIT).
func agentProcess(cfg agent.Config, log *slog.Logger) agent.Process {
	return agent.Process{
		Started: func(ctx context.Context, embeddedDevice bool) {
			if !embeddedDevice {
				debug.FreeOSMemory()
				return
			}
			memory.Settle(ctx, log.With("component", "memory"), cfg.MemoryLimit, cfg.Tunnel.Interface)
		},
		Memory: memory.Device{},
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
