package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftnet/weft/lab"
	"github.com/weftnet/weft/lab/kubelet"
	"github.com/weftnet/weft/lab/probe"
)

// labFlags are the flags every `weft lab` subcommand shares.
type labFlags struct {
	name    string
	binDir  string
	root    string
	timeout time.Duration
	quiet   bool
}

func (f *labFlags) open() (*lab.Lab, error) {
	level := slog.LevelInfo
	if f.quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return lab.New(f.name, lab.Options{
		Root:         f.root,
		BinDir:       f.binDir,
		Log:          log.With("component", "lab"),
		ReadyTimeout: f.timeout,
	})
}

// newLabCommand is `weft lab`: a weft cluster in network namespaces on this
// machine.
func newLabCommand() *cobra.Command {
	f := &labFlags{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "a weft cluster in network namespaces on this machine",
		Long: `weft lab runs a multi-node weft cluster in network namespaces on this
machine without touching the host's interfaces, routes or firewall: an
underlay bridge, one namespace per node with its own agent, pods wired by
weft-cni, and an "internet" namespace at 192.168.77.254 / 203.0.113.1.
With --kube, a real etcd, kube-apiserver and kube-controller-manager run in
<name>-cp at 192.168.77.2 and the agents run in Kubernetes mode.
State lives in /run/weft-lab/<name>/; see docs/lab.md.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.name, "name", lab.DefaultName, "lab name (lower-case letters and digits); prefixes every namespace")
	pf.StringVar(&f.binDir, "bin-dir", "", "directory holding weft-cni (default: the directory of this weft binary)")
	pf.StringVar(&f.root, "state-root", lab.DefaultRoot, "directory holding the state of all labs")
	pf.DurationVar(&f.timeout, "timeout", lab.DefaultReadyTimeout, "how long to wait for agents to become ready")
	pf.BoolVarP(&f.quiet, "quiet", "q", false, "print warnings and errors only")
	_ = pf.MarkHidden("state-root")
	cmd.AddCommand(
		newLabUpCommand(f),
		newLabDownCommand(f),
		newLabPeerCommand(f),
		newLabNodeCommand(f),
		newLabPodCommand(f),
		newLabExecCommand(f),
		newLabStatusCommand(f),
		newLabCheckCommand(f),
		newLabApplyCommand(f),
		newLabKubeconfigCommand(f),
		newLabKubeCommand(f),
		newLabCNIExecCommand(),
		newLabNodeRuntimeCommand(),
		newLabServeCommand(),
	)
	return cmd
}

// newLabServeCommand serves the lab's probe answer ("seen CLIENT at
// SERVER") on TCP and UDP until interrupted, in the current netns; run it
// in a pod with `weft lab exec NODE/POD -- weft lab serve ADDR:PORT`.
func newLabServeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "serve ADDR:PORT",
		Short: "answer every connection with the address it came from and the address it reached (run it in a pod with exec)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ap, err := netip.ParseAddrPort(args[0])
			if err != nil {
				return fmt.Errorf("serve: %q is not ADDR:PORT: %w", args[0], err)
			}
			s, err := probe.Serve("", ap)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx, cancel := signalContext()
			defer cancel()
			<-ctx.Done()
			return nil
		},
	}
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// labRun adapts fn into a cobra RunE: it opens the lab named by the flags
// and runs fn with a context that ends on SIGINT or SIGTERM.
func (f *labFlags) labRun(fn func(ctx context.Context, cmd *cobra.Command, l *lab.Lab, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		l, err := f.open()
		if err != nil {
			return err
		}
		ctx, cancel := signalContext()
		defer cancel()
		return fn(ctx, cmd, l, args)
	}
}

func newLabUpCommand(f *labFlags) *cobra.Command {
	var spec lab.Spec
	cmd := &cobra.Command{
		Use:   "up",
		Short: "create the lab and start one agent per node; returns when all are ready",
		Args:  cobra.NoArgs,
		RunE: f.labRun(func(ctx context.Context, cmd *cobra.Command, l *lab.Lab, _ []string) error {
			if !cmd.Flags().Changed("kubelets") {
				spec.Kubelets = spec.Kube // real nodes unless asked otherwise
			}
			if err := l.Up(ctx, spec); err != nil {
				return err
			}
			st, err := l.Status()
			if err != nil {
				return err
			}
			return st.WriteTable(cmd.OutOrStdout())
		}),
	}
	fl := cmd.Flags()
	fl.IntVar(&spec.Nodes, "nodes", lab.DefaultNodes, "number of nodes")
	fl.StringVar(&spec.Backend, "backend", lab.DefaultBackend, "tunnel backend: wireguard or vxlan")
	fl.IntVar(&spec.MTU, "mtu", lab.DefaultMTU, "MTU of every underlay link")
	fl.IntVar(&spec.PodsPerNode, "pods-per-node", 0, "pods p1..pK to add to every node")
	fl.StringVar(&spec.ClusterCIDR, "cluster-cidr", lab.DefaultClusterCIDR, "pod network")
	fl.StringVar(&spec.ServiceCIDR, "service-cidr", lab.DefaultServiceCIDR, "service network (the API server's ClusterIP range with --kube; declared to peered labs)")
	fl.IntVar(&spec.Gateways, "gateways", 0, "make the first N nodes gateway-eligible and turn multi-cluster peering on (see `weft lab peer`)")
	fl.BoolVar(&spec.Kube, "kube", false, "run a real Kubernetes control plane in <name>-cp and the agents in Kubernetes mode")
	fl.BoolVar(&spec.Kubelets, "kubelets", false, "run containerd and a real kubelet on every node, and kube-scheduler (the default with --kube; --kubelets=false: the lab registers Nodes and Pods itself, faster; see docs/lab.md)")
	fl.StringVar(&spec.Agents, "agents", lab.AgentsProcess, "how the agents run: process (started by the lab) or daemonset (with --kubelets: deploy/kubernetes's DaemonSet from a locally built image, as users install weft)")
	fl.StringVar(&spec.KubeBinDir, "kube-bin-dir", "", "directory holding kube-apiserver and kube-controller-manager (default: --bin-dir)")
	fl.StringVar(&spec.DNSUpstream, "dns-upstream", "", "resolver (ip or ip:port) the agents' DNS proxies forward other names to (--kube; default: the host's resolv.conf)")
	fl.StringVar(&spec.LeaseGrace, "lease-grace", "", "how long agents hold a failed node's block before reuse (default "+lab.LabLeaseGrace.String()+")")
	fl.BoolVar(&spec.NoAgents, "no-agents", false, "create the nodes but start no agent; start them together with `weft lab node start N1 N2 ...`")
	fl.StringVar(&spec.Manifests, "manifests", "", "deploy/kubernetes, whose RBAC --kube applies (default: found from the working directory or this binary)")
	return cmd
}

func newLabDownCommand(f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "kill the lab's agents, delete its namespaces and state (idempotent)",
		Args:  cobra.NoArgs,
		RunE: f.labRun(func(ctx context.Context, _ *cobra.Command, l *lab.Lab, _ []string) error {
			return l.Down(ctx)
		}),
	}
}

func newLabPeerCommand(f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "peer LAB LAB",
		Short: "peer two labs created with --gateways: a WAN segment between their gateways, and each lab's peering file listing the other",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var labs [2]*lab.Lab
			for i, name := range args {
				g := *f
				g.name = name
				l, err := g.open()
				if err != nil {
					return err
				}
				labs[i] = l
			}
			ctx, cancel := signalContext()
			defer cancel()
			if err := labs[0].Peer(ctx, labs[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "peered %s and %s over netns %s; the agents pick the peering files up within a resync (`weft lab exec NODE -- weft status`)\n",
				args[0], args[1], lab.WANNS(args[0], args[1]))
			return nil
		},
	}
}

func newLabNodeCommand(f *labFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "node", Short: "add, stop, start or delete nodes"}
	run := func(fn func(context.Context, *lab.Lab, string) error) func(*cobra.Command, []string) error {
		return f.labRun(func(ctx context.Context, _ *cobra.Command, l *lab.Lab, args []string) error {
			name := ""
			if len(args) > 0 {
				name = args[0]
			}
			return fn(ctx, l, name)
		})
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "add [NAME]",
			Short: "add a node (default name n<k>) and start its agent",
			Args:  cobra.MaximumNArgs(1),
			RunE: run(func(ctx context.Context, l *lab.Lab, name string) error {
				got, err := l.AddNode(ctx, name)
				if err == nil {
					fmt.Println(got)
				}
				return err
			}),
		},
		&cobra.Command{
			Use:   "stop NAME",
			Short: "kill the node's agent with SIGKILL (a crash); its netns stays",
			Args:  cobra.ExactArgs(1),
			RunE: run(func(ctx context.Context, l *lab.Lab, name string) error {
				return l.StopNode(ctx, name)
			}),
		},
		newLabNodeStartCommand(f),
		&cobra.Command{
			Use:   "del NAME",
			Short: "take the node away: kill its agent, delete its pods and namespace",
			Args:  cobra.ExactArgs(1),
			RunE: run(func(ctx context.Context, l *lab.Lab, name string) error {
				return l.DeleteNode(ctx, name)
			}),
		},
	)
	return cmd
}

func newLabPodCommand(f *labFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "pod", Short: "add or delete pods"}
	var asJSON bool
	var namespace, labels, ports string
	add := &cobra.Command{
		Use:   "add NODE POD",
		Short: "create a pod netns on NODE and wire it with CNI ADD (with --kube: and register its Pod)",
		Args:  cobra.ExactArgs(2),
		RunE: f.labRun(func(ctx context.Context, cmd *cobra.Command, l *lab.Lab, args []string) error {
			lbls, err := lab.ParseLabels(labels)
			if err != nil {
				return err
			}
			pts, err := lab.ParsePorts(ports)
			if err != nil {
				return err
			}
			p, err := l.AddPod(ctx, args[0], args[1], lab.PodOptions{Namespace: namespace, Labels: lbls, Ports: pts})
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s netns %s ip %s\n", p.Node, p.Name, p.NetNS, p.IP)
			return nil
		}),
	}
	add.Flags().BoolVar(&asJSON, "json", false, "print the pod as JSON")
	add.Flags().StringVarP(&namespace, "namespace", "n", "", "the Pod's namespace, created if new (--kube labs; default \"default\")")
	add.Flags().StringVarP(&labels, "labels", "l", "", "the Pod's labels, k=v,k2=v2 (--kube labs)")
	add.Flags().StringVar(&ports, "ports", "", "the Pod's named container ports, name=80/TCP,dns=53/UDP (--kube labs)")
	del := &cobra.Command{
		Use:   "del NODE POD",
		Short: "run CNI DEL for the pod and delete its netns",
		Args:  cobra.ExactArgs(2),
		RunE: f.labRun(func(ctx context.Context, _ *cobra.Command, l *lab.Lab, args []string) error {
			return l.DeletePod(ctx, args[0], args[1])
		}),
	}
	label := &cobra.Command{
		Use:   "label NAMESPACE/POD KEY=VALUE... [KEY-...]",
		Short: "set (k=v) or remove (k-) labels of a pod's Pod object (--kube labs)",
		Args:  cobra.MinimumNArgs(2),
		RunE: f.labRun(func(ctx context.Context, cmd *cobra.Command, l *lab.Lab, args []string) error {
			ns, name, ok := strings.Cut(args[0], "/")
			if !ok || ns == "" || name == "" {
				return fmt.Errorf("pod label: %q is not NAMESPACE/POD", args[0])
			}
			c, err := lab.ParseLabelChange(args[1:])
			if err != nil {
				return err
			}
			p, err := l.LabelPod(ctx, ns, name, c)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s labels %v\n", p.Namespace, p.Name, p.Labels)
			return nil
		}),
	}
	cmd.AddCommand(add, del, label)
	return cmd
}

func newLabApplyCommand(f *labFlags) *cobra.Command {
	var files []string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|- [-f ...]",
		Short: "apply manifests to the lab's API server (server-side apply, field manager weft-lab; --kube labs)",
		Args:  cobra.NoArgs,
		RunE: f.labRun(func(ctx context.Context, cmd *cobra.Command, l *lab.Lab, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("apply: give at least one -f FILE")
			}
			ms, err := lab.ReadManifests(files, cmd.InOrStdin())
			if err != nil {
				return err
			}
			res, err := l.Apply(ctx, ms, dryRun)
			for _, r := range res {
				suffix := ""
				if dryRun {
					suffix = " (server dry run)"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s serverside-applied%s\n", r.Object, suffix)
			}
			return err
		}),
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "a manifest file (multi-document YAML or JSON), a directory of them, or - for stdin")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "let the server validate and admit the objects without storing them")
	return cmd
}

func newLabKubeconfigCommand(f *labFlags) *cobra.Command {
	var content bool
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "print the path of the lab's admin kubeconfig (--kube labs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := f.open()
			if err != nil {
				return err
			}
			path, err := l.Kubeconfig()
			if err != nil {
				return err
			}
			if !content {
				fmt.Fprintln(cmd.OutOrStdout(), path)
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	cmd.Flags().BoolVar(&content, "content", false, "print the kubeconfig itself, not its path")
	return cmd
}

func newLabKubeCommand(f *labFlags) *cobra.Command {
	cmd := &cobra.Command{Use: "kube", Short: "the control plane of a --kube lab: stop or start a component, sync"}
	component := func(use, short string, fn func(*lab.Lab, context.Context, string) error) *cobra.Command {
		return &cobra.Command{
			Use:       use + " etcd|kube-apiserver|kube-controller-manager",
			Short:     short,
			Args:      cobra.ExactArgs(1),
			ValidArgs: []string{"etcd", "kube-apiserver", "kube-controller-manager"},
			RunE: f.labRun(func(ctx context.Context, _ *cobra.Command, l *lab.Lab, args []string) error {
				return fn(l, ctx, args[0])
			}),
		}
	}
	cmd.AddCommand(
		component("stop", "stop one control-plane component (an outage); the agents and the rest keep running", (*lab.Lab).StopKubeComponent),
		component("start", "start a stopped component, wait until ready, then register Nodes and Pods added meanwhile", (*lab.Lab).StartKubeComponent),
		&cobra.Command{
			Use:   "sync",
			Short: "register Nodes and Pods added while the API server was away; remove objects of deleted nodes and pods",
			Args:  cobra.NoArgs,
			RunE: f.labRun(func(ctx context.Context, _ *cobra.Command, l *lab.Lab, _ []string) error {
				return l.SyncKube(ctx)
			}),
		},
	)
	return cmd
}

func newLabExecCommand(f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NODE[/POD] -- CMD [ARGS...]",
		Short: "run a command in a node (its netns and /run/wireguard) or a pod",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if d := cmd.ArgsLenAtDash(); d != 1 {
				return fmt.Errorf("usage: weft lab exec NODE[/POD] -- CMD [ARGS...]")
			}
			l, err := f.open()
			if err != nil {
				return err
			}
			argv, err := l.ExecArgv(args[0], args[1:])
			if err != nil {
				return err
			}
			path, err := exec.LookPath(argv[0])
			if err != nil {
				return fmt.Errorf("exec: %w", err)
			}
			// Replace this process: stdio, signals and the exit code pass
			// straight through.
			if err := syscall.Exec(path, argv, os.Environ()); err != nil {
				return fmt.Errorf("exec %s: %w", strings.Join(argv, " "), err)
			}
			return nil
		},
	}
}

func newLabStatusCommand(f *labFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the lab's nodes and pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := f.open()
			if err != nil {
				return err
			}
			st, err := l.Status()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return st.WriteTable(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newLabCheckCommand(f *labFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "ping, TCP and UDP between pods on every pair of nodes",
		Args:  cobra.NoArgs,
		RunE: f.labRun(func(ctx context.Context, cmd *cobra.Command, l *lab.Lab, _ []string) error {
			res, err := l.Check(ctx)
			if err != nil {
				return err
			}
			failed := 0
			w := cmd.OutOrStdout()
			for _, r := range res {
				if r.Err != nil {
					failed++
					fmt.Fprintf(w, "FAIL %-4s %s -> %s: %v\n", r.Proto, r.From, r.To, r.Err)
				}
			}
			fmt.Fprintf(w, "%d of %d probes between pods on different nodes passed (icmp, tcp, udp; no NAT)\n", len(res)-failed, len(res))
			if failed > 0 {
				return fmt.Errorf("%d probes failed", failed)
			}
			return nil
		}),
	}
}

// newLabNodeRuntimeCommand is the supervisor of a --kubelets node's
// containerd and kubelet (lab/kubelet.Run); `weft lab up` starts it inside
// the node's netns and a mount namespace of its own.
func newLabNodeRuntimeCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:    "node-runtime",
		Short:  "internal: supervise a lab node's containerd and kubelet",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			var c kubelet.Config
			if err := json.Unmarshal(b, &c); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			ctx, cancel := signalContext()
			defer cancel()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)).With("node", c.Node)
			return kubelet.Run(ctx, c, log)
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "the node runtime's runtime.json")
	return cmd
}

// newLabCNIExecCommand is the helper `weft lab pod` runs under
// `ip netns exec NODE`: it calls libcni as a container runtime would, from
// the node's netns, and prints the result as JSON.
func newLabCNIExecCommand() *cobra.Command {
	var r lab.CNIRequest
	cmd := &cobra.Command{
		Use:    "cni-exec",
		Short:  "internal: run one CNI call through libcni in the current netns",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			res, err := lab.RunCNI(ctx, r)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&r.Action, "action", "", "add, del or check")
	fl.StringVar(&r.BinDir, "bin-dir", "", "CNI plugin directory")
	fl.StringVar(&r.CacheDir, "cache-dir", "", "libcni cache directory")
	fl.StringVar(&r.ConfList, "conflist", "", "network configuration list file")
	fl.StringVar(&r.ContainerID, "container-id", "", "container id")
	fl.StringVar(&r.NetNS, "netns", "", "path of the pod's netns")
	fl.StringVar(&r.IfName, "ifname", lab.PodIfName, "interface name in the pod")
	return cmd
}

func newLabNodeStartCommand(f *labFlags) *cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "start NAME...",
		Short: "start the nodes' agents with their config and files, all at once",
		Args:  cobra.MinimumNArgs(1),
		RunE: f.labRun(func(ctx context.Context, _ *cobra.Command, l *lab.Lab, args []string) error {
			return l.StartNodes(ctx, !noWait, args...)
		}),
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the agents are spawned, without waiting until every node sees every other")
	return cmd
}
