package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/weftnet/weft/lab/kube"
	"github.com/weftnet/weft/tunnel/wireguard"
)

// Options configure a Lab handle. The zero value of a field means the
// default written beside it.
type Options struct {
	// Root holds the state directories of all labs. Default DefaultRoot.
	Root string
	// Weft is the weft binary: it runs the agents, `weft status` and the
	// cni-exec helper. Default: this process's executable.
	Weft string
	// BinDir is where weft-cni lives. Default: the directory of Weft.
	BinDir string
	// Runner runs commands. Default ExecRunner.
	Runner Runner
	// Log receives progress. Default: discard.
	Log *slog.Logger
	// ReadyTimeout bounds the wait for agents. Default 60s.
	ReadyTimeout time.Duration
}

// DefaultReadyTimeout bounds how long up, node add and node start wait.
const DefaultReadyTimeout = 60 * time.Second

// Lab is a handle on one named lab; it holds no state of its own beyond
// its options: every call re-reads state.json under the lab's lock.
type Lab struct {
	layout Layout
	opts   Options
}

// New returns a handle on lab name.
func New(name string, o Options) (*Lab, error) {
	if err := ValidateLabName(name); err != nil {
		return nil, err
	}
	if o.Root == "" {
		o.Root = DefaultRoot
	}
	if o.Weft == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("failed to find the weft executable: %w", err)
		}
		o.Weft = exe
	}
	if o.BinDir == "" {
		o.BinDir = filepath.Dir(o.Weft)
	}
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	return &Lab{layout: Layout{Root: o.Root, Name: name}, opts: o}, nil
}

// Layout returns the names and paths of the lab.
func (lb *Lab) Layout() Layout { return lb.layout }

func (lb *Lab) leftForInspection(err error) error {
	return fmt.Errorf("%w\n(the lab is left as it is for inspection; `weft lab down --name %s` removes it)", err, lb.layout.Name)
}

// Up creates the lab: underlay, internet, spec.Nodes nodes with one agent
// each, and spec.PodsPerNode pods per node. It returns once every agent is
// ready and sees every other node as a peer; the agents keep running.
func (lb *Lab) Up(ctx context.Context, spec Spec) error {
	spec.Name = lb.layout.Name
	if err := spec.Complete(); err != nil {
		return err
	}
	if err := lb.completeKubeSpec(&spec); err != nil {
		return err
	}
	unlock, err := lock(lb.layout)
	if err != nil {
		return err
	}
	defer unlock()
	l := lb.layout
	if err := lb.ensureAbsent(); err != nil {
		return err
	}
	if _, err := os.Stat(lb.opts.Weft); err != nil {
		return fmt.Errorf("weft binary: %w", err)
	}
	if spec.PodsPerNode > 0 {
		if err := lb.checkCNIPlugin(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(l.Dir(), 0o755); err != nil {
		return fmt.Errorf("failed to create lab directory: %w", err)
	}
	st := &State{Spec: spec}
	if err := saveState(l, st); err != nil {
		return err
	}
	if err := writeGossipKey(l.GossipKeyFile()); err != nil {
		return lb.leftForInspection(err)
	}
	if spec.Gateways > 0 {
		if err := writeFileAtomic(l.PeeringFile(), []byte("# no peers until `weft lab peer`\npeers: []\n"), 0o644); err != nil {
			return lb.leftForInspection(err)
		}
	}
	if err := CreateUnderlay(ctx, lb.opts.Runner, l, spec.MTU); err != nil {
		return lb.leftForInspection(err)
	}
	lb.opts.Log.Info("underlay up", "lab", l.Name, "bridge", l.UnderlayNS(), "inet", l.InetNS(), "mtu", spec.MTU)
	if spec.Kube {
		if err := lb.startControlPlane(ctx, spec); err != nil {
			return lb.leftForInspection(err)
		}
		if spec.Kubelets {
			if err := lb.prepareKubelets(spec); err != nil {
				return lb.leftForInspection(err)
			}
		}
	}
	plans, err := l.PlanNodes(spec.Nodes)
	if err != nil {
		return lb.leftForInspection(err)
	}
	for _, n := range plans {
		// In Kubernetes mode the agents seed gossip from the Nodes.
		var seeds []netip.Addr
		if !spec.Kube {
			seeds = Seeds(n.Name, plans)
		}
		if err := lb.createNode(ctx, st, n, seeds); err != nil {
			return lb.leftForInspection(err)
		}
	}
	if spec.Kube {
		if err := lb.registerNodes(ctx, st, plans); err != nil {
			return lb.leftForInspection(err)
		}
	}
	if spec.DaemonSet() {
		if err := lb.installDaemonSet(ctx, st, plans); err != nil {
			return lb.leftForInspection(err)
		}
		return lb.addUpPods(ctx, st, plans)
	}
	if spec.NoAgents {
		lb.opts.Log.Info("lab up without agents; start them with `weft lab node start`", "lab", l.Name, "nodes", len(plans))
		return nil
	}
	pids := map[string]int{}
	for i, n := range plans {
		if n.Index <= spec.Gateways {
			// The gateway's peering key exists before its agent starts,
			// so `weft lab peer` never races the agent to create it.
			if _, err := wireguard.LoadOrCreateKey(n.Paths.PeeringKey); err != nil {
				return lb.leftForInspection(fmt.Errorf("node %s: %w", n.Name, err))
			}
		}
		pid, err := startAgent(lb.opts.Weft, n)
		if err != nil {
			return lb.leftForInspection(err)
		}
		st.Nodes[i].PID, pids[n.Name] = pid, pid
		lb.opts.Log.Info("agent started", "node", n.Name, "pid", pid, "log", n.Paths.Log)
	}
	if err := saveState(l, st); err != nil {
		return lb.leftForInspection(err)
	}
	lb.opts.Log.Info("waiting for agents", "nodes", len(plans), "timeout", lb.opts.ReadyTimeout)
	if err := waitReady(ctx, lb.opts.Runner, lb.opts.Weft, plans, pids, names(plans), lb.opts.ReadyTimeout); err != nil {
		return lb.leftForInspection(err)
	}
	return lb.addUpPods(ctx, st, plans)
}

// addUpPods adds the pods `up` was asked for to every node.
func (lb *Lab) addUpPods(ctx context.Context, st *State, plans []NodePlan) error {
	for _, n := range plans {
		for k := 1; k <= st.Spec.PodsPerNode; k++ {
			if _, err := lb.addPodLocked(ctx, st, n.Name, upPodName(st.Spec, n.Name, k), PodOptions{}); err != nil {
				return lb.leftForInspection(err)
			}
		}
	}
	lb.opts.Log.Info("lab up", "lab", lb.layout.Name, "nodes", len(plans), "pods", len(st.Pods))
	return nil
}

// upPodName names the k-th pod `up` adds to node: p<k>, or <node>-p<k> in
// a --kube lab, where a Pod's name must be unique in its namespace.
func upPodName(spec Spec, node string, k int) string {
	if spec.Kube {
		return fmt.Sprintf("%s-p%d", node, k)
	}
	return fmt.Sprintf("p%d", k)
}

// registerNodes registers a Node for each of plans (with kubelets: starts
// each node's runtime, whose kubelet registers it) and waits until
// kube-controller-manager has given each its podCIDR.
func (lb *Lab) registerNodes(ctx context.Context, st *State, plans []NodePlan) error {
	a, err := lb.api(ctx, st.Spec)
	if err != nil {
		return err
	}
	timeout := podCIDRTimeout
	for _, n := range plans {
		if st.Spec.Kubelets {
			if err := lb.startNodeRuntime(st.Spec, n); err != nil {
				return err
			}
			timeout = kubeletRegisterTimeout
		} else if err := a.registerNode(ctx, lb.layout.Name, n); err != nil {
			return err
		}
		rec, _ := st.node(n.Name)
		rec.Registered = true
	}
	if err := saveState(lb.layout, st); err != nil {
		return err
	}
	for _, n := range plans {
		cidr, err := a.waitPodCIDR(ctx, n.Name, timeout)
		if err != nil {
			return err
		}
		if err := lb.routeFromCP(ctx, st.Spec, n, cidr); err != nil {
			return err
		}
		lb.opts.Log.Info("Node registered", "node", n.Name, "podCIDR", cidr)
	}
	return nil
}

// ensureAbsent fails when anything of the lab exists already.
func (lb *Lab) ensureAbsent() error {
	l := lb.layout
	var what string
	if _, err := os.Stat(l.Dir()); err == nil {
		what = l.Dir()
	} else if nss, err := Namespaces(l.Prefix()); err != nil {
		return err
	} else {
		for _, ns := range nss {
			if Owned(context.Background(), lb.opts.Runner, l, ns) {
				what = "netns " + ns
				break
			}
		}
	}
	if what != "" {
		return fmt.Errorf("lab %q already exists (%s); run `weft lab down --name %s` first", l.Name, what, l.Name)
	}
	return nil
}

// createNode creates node n's namespace and files and records it in st.
func (lb *Lab) createNode(ctx context.Context, st *State, n NodePlan, seeds []netip.Addr) error {
	l := lb.layout
	if err := os.MkdirAll(n.Paths.Dir, 0o755); err != nil {
		return fmt.Errorf("node %s: failed to create %s: %w", n.Name, n.Paths.Dir, err)
	}
	cfg, err := AgentConfig(l, st.Spec, n, seeds).Render()
	if err != nil {
		return err
	}
	if err := os.WriteFile(n.Paths.Config, cfg, 0o644); err != nil {
		return fmt.Errorf("node %s: failed to write agent config: %w", n.Name, err)
	}
	cl, err := ConfList(n.Paths)
	if err != nil {
		return err
	}
	if err := os.WriteFile(n.Paths.CNIConfList, cl, 0o644); err != nil {
		return fmt.Errorf("node %s: failed to write conflist: %w", n.Name, err)
	}
	// Record before creating, so that a failure half-way is still torn
	// down by name.
	st.Nodes = append(st.Nodes, NodeState{Name: n.Name, Index: n.Index, NetNS: n.NetNS, UnderlayIP: n.UnderlayIP})
	if err := saveState(l, st); err != nil {
		return err
	}
	if err := CreateNode(ctx, lb.opts.Runner, l, n, st.Spec.MTU); err != nil {
		return err
	}
	lb.opts.Log.Info("node created", "node", n.Name, "netns", n.NetNS, "underlayIP", n.UnderlayIP)
	return nil
}

// Down removes the lab: kills its agents (only processes that are weft
// agents with a config inside the lab's directory), stops its control plane
// (by pid file, only processes that are its components), deletes every namespace
// with the lab's prefix, and removes the state directory. It is idempotent
// and needs no intact state.json.
func (lb *Lab) Down(ctx context.Context) error {
	unlock, err := lock(lb.layout)
	if err != nil {
		return err
	}
	defer unlock()
	l := lb.layout
	var errs []error
	// Real nodes first: their containers hold the pods' addresses.
	if err := lb.stopNodeRuntimes(); err != nil {
		errs = append(errs, err)
	}
	recorded := []string{l.InetNS(), l.UnderlayNS()}
	if st, err := loadState(l); err == nil {
		recorded = st.namespaces(l)
		for _, n := range st.Nodes {
			if err := killAgent(n.PID, l.Node(n.Name).Config); err != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
			}
		}
	}
	for _, pid := range findAgents(l.Dir()) {
		if err := killAgent(pid, filepath.Clean(l.Dir())+"/"); err != nil {
			errs = append(errs, err)
		}
	}
	// The control plane of a --kube lab, by its pid files: this works
	// after a crash too, and is a no-op for a lab without one.
	if err := kube.Stop(l.KubeDir()); err != nil {
		errs = append(errs, fmt.Errorf("control plane: %w", err))
	}
	if err := DeleteNamespaces(ctx, lb.opts.Runner, l, l.Prefix(), recorded); err != nil {
		errs = append(errs, err)
	}
	if err := deleteWANs(ctx, lb.opts.Runner, l.Name); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab %s: down incomplete, state kept in %s: %w", l.Name, l.Dir(), errors.Join(errs...))
	}
	if err := os.RemoveAll(l.Dir()); err != nil {
		return fmt.Errorf("failed to remove %s: %w", l.Dir(), err)
	}
	_ = os.Remove(l.LockFile())
	lb.opts.Log.Info("lab down", "lab", l.Name)
	return nil
}

// writeGossipKey writes 32 random bytes, base64, mode 0600.
func writeGossipKey(path string) error {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return fmt.Errorf("failed to generate gossip key: %w", err)
	}
	if err := writeFileAtomic(path, []byte(base64.StdEncoding.EncodeToString(k)), 0o600); err != nil {
		return fmt.Errorf("failed to write gossip key: %w", err)
	}
	return nil
}

func (lb *Lab) checkCNIPlugin() error {
	p := filepath.Join(lb.opts.BinDir, CNIPluginType)
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("CNI plugin %s not found (build it next to weft with `go build -o bin/ ./cmd/weft-cni`, or pass --bin-dir): %w", p, err)
	}
	return nil
}

func names(nodes []NodePlan) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}
