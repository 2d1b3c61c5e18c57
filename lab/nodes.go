package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/weftnet/weft/lab/kubelet"
)

// openState takes the lab's lock and loads its state. The caller runs the
// returned unlock.
func (lb *Lab) openState() (*State, func(), error) {
	unlock, err := lock(lb.layout)
	if err != nil {
		return nil, nil, err
	}
	st, err := loadState(lb.layout)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return st, unlock, nil
}

func (lb *Lab) nodePlan(st *State, name string) (*NodeState, NodePlan, error) {
	ns, ok := st.node(name)
	if !ok {
		return nil, NodePlan{}, fmt.Errorf("lab %s has no node %q", lb.layout.Name, name)
	}
	p, err := lb.layout.PlanNode(ns.Name, ns.Index)
	return ns, p, err
}

// running returns the plans and pids of the nodes whose agents run.
func (lb *Lab) running(st *State) ([]NodePlan, map[string]int, error) {
	plans, err := st.plans(lb.layout)
	if err != nil {
		return nil, nil, err
	}
	var run []NodePlan
	pids := map[string]int{}
	for i, n := range plans {
		if pid := st.Nodes[i].PID; agentRunning(pid, n.Paths.Config) {
			run = append(run, n)
			pids[n.Name] = pid
		}
	}
	return run, pids, nil
}

// AddNode adds a node (named n<index> when name is empty), starts its agent
// and waits until every running node sees every other. It returns the
// node's name.
func (lb *Lab) AddNode(ctx context.Context, name string) (string, error) {
	st, unlock, err := lb.openState()
	if err != nil {
		return "", err
	}
	defer unlock()
	used := make([]int, 0, len(st.Nodes))
	taken := map[string]bool{}
	for _, n := range st.Nodes {
		used = append(used, n.Index)
		taken[n.Name] = true
	}
	idx, err := FreeIndex(used)
	if err != nil {
		return "", err
	}
	if name == "" {
		name = DefaultNodeName(idx, taken)
	}
	if taken[name] {
		return "", fmt.Errorf("lab %s already has a node %q", lb.layout.Name, name)
	}
	n, err := lb.layout.PlanNode(name, idx)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(NetNSPath(n.NetNS)); err == nil {
		return "", fmt.Errorf("netns %s exists already (left over?); `weft lab down --name %s` clears the lab", n.NetNS, lb.layout.Name)
	}
	existing, err := st.plans(lb.layout)
	if err != nil {
		return "", err
	}
	seeds := Seeds(n.Name, append(existing, n))
	var api *kubeAPI
	if st.Spec.Kube {
		// With the API server up, the Node is registered before the agent
		// starts, and the agent seeds gossip from the other Nodes. Without
		// it the node joins by gossip alone, seeded from the lab's nodes,
		// and its Node is registered once the API is back.
		api, err = lb.api(ctx, st.Spec)
		switch {
		case errors.Is(err, ErrAPIUnavailable):
			lb.opts.Log.Warn("the API server is unavailable: node "+name+" joins by gossip now; its Node is registered by `weft lab kube start kube-apiserver` or `weft lab kube sync`", "err", err)
		case err != nil:
			return "", err
		default:
			seeds = nil
		}
	}
	if err := lb.createNode(ctx, st, n, seeds); err != nil {
		return "", err
	}
	timeout := podCIDRTimeout
	if st.Spec.Kubelets {
		// The kubelet registers the Node, now or once the API is back.
		if err := lb.startNodeRuntime(st.Spec, n); err != nil {
			return "", err
		}
		rec, _ := st.node(n.Name)
		rec.Registered = true
		if err := saveState(lb.layout, st); err != nil {
			return "", err
		}
		timeout = kubeletRegisterTimeout
	}
	if api != nil {
		if err := lb.syncLocked(ctx, st, api); err != nil {
			return "", err
		}
		cidr, err := api.waitPodCIDR(ctx, n.Name, timeout)
		if err != nil {
			return "", err
		}
		if err := lb.routeFromCP(ctx, st.Spec, n, cidr); err != nil {
			return "", err
		}
		lb.opts.Log.Info("Node registered", "node", n.Name, "podCIDR", cidr)
	}
	if st.Spec.DaemonSet() {
		// The DaemonSet's controller gives the new Node its agent pod.
		if api == nil {
			lb.opts.Log.Warn("the API server is unavailable: node " + name + " gets its agent pod once it is back")
			return name, nil
		}
		plans, err := st.plans(lb.layout)
		if err != nil {
			return "", err
		}
		return name, lb.waitDaemonSet(ctx, api, plans)
	}
	if err := lb.startLocked(ctx, st, n); err != nil {
		return "", err
	}
	return name, nil
}

// startLocked starts n's agent, records its pid and waits for readiness of
// every running node.
func (lb *Lab) startLocked(ctx context.Context, st *State, n NodePlan) error {
	pid, err := startAgent(lb.opts.Weft, n)
	if err != nil {
		return err
	}
	rec, _ := st.node(n.Name)
	rec.PID = pid
	if err := saveState(lb.layout, st); err != nil {
		return err
	}
	lb.opts.Log.Info("agent started", "node", n.Name, "pid", pid, "log", n.Paths.Log)
	run, pids, err := lb.running(st)
	if err != nil {
		return err
	}
	// n may be caught mid-exec by running's command-line check; wait for
	// it regardless.
	run = slices.DeleteFunc(run, func(p NodePlan) bool { return p.Name == n.Name })
	run = append(run, n)
	pids[n.Name] = pid
	return waitReady(ctx, lb.opts.Runner, lb.opts.Weft, run, pids, names(run), lb.opts.ReadyTimeout)
}

// StopNode kills node name's agent with SIGKILL, as a crash would. The
// node's namespace and whatever data plane outlives the process stay.
func (lb *Lab) StopNode(ctx context.Context, name string) error {
	st, unlock, err := lb.openState()
	if err != nil {
		return err
	}
	defer unlock()
	rec, n, err := lb.nodePlan(st, name)
	if err != nil {
		return err
	}
	if st.Spec.DaemonSet() {
		return errDaemonSetAgent(name)
	}
	if err := killAgent(rec.PID, n.Paths.Config); err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	rec.PID = 0
	lb.opts.Log.Info("agent killed", "node", name)
	return saveState(lb.layout, st)
}

// StartNode restarts node name's agent with its existing config and files
// and waits until every running node sees every other.
func (lb *Lab) StartNode(ctx context.Context, name string) error {
	return lb.StartNodes(ctx, true, name)
}

// StartNodes starts the agents of the named nodes together: every process
// is spawned before any is waited for, so their joins and claims race as
// they would in a DaemonSet rollout. It returns once every running node
// sees every other, or at once without wait (a node started during a
// partition cannot see every other).
func (lb *Lab) StartNodes(ctx context.Context, wait bool, nodes ...string) error {
	st, unlock, err := lb.openState()
	if err != nil {
		return err
	}
	defer unlock()
	if st.Spec.DaemonSet() {
		return errDaemonSetAgent(nodes[0])
	}
	var plans []NodePlan
	for _, name := range nodes {
		rec, n, err := lb.nodePlan(st, name)
		if err != nil {
			return err
		}
		if agentRunning(rec.PID, n.Paths.Config) {
			return fmt.Errorf("the agent of node %s is running already (pid %d)", name, rec.PID)
		}
		if err := prepareNodeView(n); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		plans = append(plans, n)
	}
	if len(plans) == 1 && wait {
		return lb.startLocked(ctx, st, plans[0])
	}
	started := map[string]int{}
	first := time.Now()
	for _, n := range plans {
		pid, err := startAgent(lb.opts.Weft, n)
		if err != nil {
			return err
		}
		rec, _ := st.node(n.Name)
		rec.PID, started[n.Name] = pid, pid
	}
	spread := time.Since(first)
	if err := saveState(lb.layout, st); err != nil {
		return err
	}
	lb.opts.Log.Info("agents started", "nodes", len(plans), "spread", spread)
	if !wait {
		return nil
	}
	run, pids, err := lb.running(st)
	if err != nil {
		return err
	}
	// A new agent may be caught mid-exec by running's command-line check;
	// wait for every one regardless.
	run = slices.DeleteFunc(run, func(p NodePlan) bool { _, ok := started[p.Name]; return ok })
	run = append(run, plans...)
	maps.Copy(pids, started)
	return waitReady(ctx, lb.opts.Runner, lb.opts.Weft, run, pids, names(run), lb.opts.ReadyTimeout)
}

// DeleteNode takes node name away: deletes its Node object and its Pods (in
// a --kube lab), kills its agent and deletes its pods' and its own
// namespace and files.
func (lb *Lab) DeleteNode(ctx context.Context, name string) error {
	st, unlock, err := lb.openState()
	if err != nil {
		return err
	}
	defer unlock()
	rec, n, err := lb.nodePlan(st, name)
	if err != nil {
		return err
	}
	if st.Spec.Kube && rec.Registered {
		// The Node goes first, as when a cluster operator removes a node:
		// the other agents withdraw its peer and routes.
		a, err := lb.api(ctx, st.Spec)
		if err == nil {
			err = a.deleteNode(ctx, st, name)
		}
		if err != nil {
			lb.opts.Log.Warn("the Node object stays (`weft lab kube sync` removes it later)", "node", name, "err", err)
		}
	}
	if st.Spec.Kubelets {
		c := lb.runtimeConfig(st.Spec, n)
		if err := kubelet.Stop(c.Dir, c.CgroupName()); err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
	}
	if err := killAgent(rec.PID, n.Paths.Config); err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	rec.PID = 0
	// Pods first (recorded or not: every netns under the node's prefix),
	// then the node; its veth to the bridge goes with its namespace.
	var recorded []string
	for _, p := range st.Pods {
		if p.Node == name {
			recorded = append(recorded, p.NetNS)
		}
	}
	if err := DeleteNamespaces(ctx, lb.opts.Runner, lb.layout, n.NetNS+"-", recorded); err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	if err := DeleteNS(ctx, lb.opts.Runner, n.NetNS); err != nil {
		return fmt.Errorf("node %s: %w", name, err)
	}
	pods := st.Pods[:0]
	for _, p := range st.Pods {
		if p.Node != name {
			pods = append(pods, p)
		}
	}
	st.Pods = pods
	nodes := st.Nodes[:0]
	for _, x := range st.Nodes {
		if x.Name != name {
			nodes = append(nodes, x)
		}
	}
	st.Nodes = nodes
	if err := os.RemoveAll(n.Paths.Dir); err != nil {
		return fmt.Errorf("node %s: failed to remove %s: %w", name, n.Paths.Dir, err)
	}
	lb.opts.Log.Info("node deleted", "node", name)
	return saveState(lb.layout, st)
}
