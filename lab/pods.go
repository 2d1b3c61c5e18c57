package lab

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/weftnet/weft/nodestate"
)

func (lb *Lab) cniRequest(n NodePlan, action, podNS string) CNIRequest {
	return CNIRequest{
		Action:      action,
		BinDir:      lb.opts.BinDir,
		CacheDir:    n.Paths.CNICacheDir,
		ConfList:    n.Paths.CNIConfList,
		ContainerID: podNS,
		NetNS:       NetNSPath(podNS),
		IfName:      PodIfName,
	}
}

// cniExec runs `weft lab cni-exec` inside the node's netns, the way a
// container runtime on that node calls its plugins.
func (lb *Lab) cniExec(ctx context.Context, n NodePlan, req CNIRequest) (CNIResult, error) {
	argv := append([]string{"ip", "netns", "exec", n.NetNS, lb.opts.Weft, "lab", "cni-exec"}, req.Args()...)
	out, err := lb.opts.Runner.Run(ctx, argv...)
	if err != nil {
		return CNIResult{}, err
	}
	if req.Action != "add" {
		return CNIResult{}, nil
	}
	return parseCNIResult(out)
}

// AddPod creates pod on node: a netns wired by CNI ADD through libcni.
func (lb *Lab) AddPod(ctx context.Context, node, pod string) (PodState, error) {
	st, unlock, err := lb.openState()
	if err != nil {
		return PodState{}, err
	}
	defer unlock()
	return lb.addPodLocked(ctx, st, node, pod)
}

func (lb *Lab) addPodLocked(ctx context.Context, st *State, node, pod string) (p PodState, err error) {
	if err := ValidatePodName(pod); err != nil {
		return p, err
	}
	_, n, err := lb.nodePlan(st, node)
	if err != nil {
		return p, err
	}
	if _, ok := st.pod(node, pod); ok {
		return p, fmt.Errorf("node %s already has a pod %q", node, pod)
	}
	if err := lb.checkCNIPlugin(); err != nil {
		return p, err
	}
	if _, err := nodestate.Read(n.Paths.StateFile); err != nil {
		return p, fmt.Errorf("node %s is not ready for pods: %w", node, err)
	}
	nsName := lb.layout.PodNS(node, pod)
	if _, err := os.Lstat(NetNSPath(nsName)); err == nil {
		return p, fmt.Errorf("netns %s exists already", nsName)
	}
	if err := runAll(ctx, lb.opts.Runner, PodNSCmds(lb.layout, nsName)); err != nil {
		_ = DeleteNS(ctx, lb.opts.Runner, nsName)
		return p, fmt.Errorf("pod %s/%s: failed to create netns: %w", node, pod, err)
	}
	req := lb.cniRequest(n, "add", nsName)
	res, err := lb.cniExec(ctx, n, req)
	if err != nil {
		// Undo what ADD may have done half-way, as a runtime would.
		req.Action = "del"
		_, _ = lb.cniExec(ctx, n, req)
		_ = DeleteNS(ctx, lb.opts.Runner, nsName)
		return p, fmt.Errorf("pod %s/%s: %w", node, pod, err)
	}
	p = PodState{Name: pod, Node: node, NetNS: nsName, ContainerID: req.ContainerID}
	for _, ip := range res.IPs {
		if ip.Addr().Is4() {
			p.IP = ip.Addr()
			break
		}
	}
	st.Pods = append(st.Pods, p)
	if err := saveState(lb.layout, st); err != nil {
		return p, err
	}
	lb.opts.Log.Info("pod added", "pod", pod, "node", node, "netns", nsName, "ip", p.IP)
	return p, nil
}

// DeletePod runs CNI DEL for pod on node and deletes its netns.
func (lb *Lab) DeletePod(ctx context.Context, node, pod string) error {
	st, unlock, err := lb.openState()
	if err != nil {
		return err
	}
	defer unlock()
	i, ok := st.pod(node, pod)
	if !ok {
		return fmt.Errorf("node %s has no pod %q", node, pod)
	}
	p := st.Pods[i]
	_, n, err := lb.nodePlan(st, node)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(NetNSPath(n.NetNS)); err == nil {
		if _, err := lb.cniExec(ctx, n, lb.cniRequest(n, "del", p.NetNS)); err != nil {
			return fmt.Errorf("pod %s/%s: %w", node, pod, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := DeleteNS(ctx, lb.opts.Runner, p.NetNS); err != nil {
		return fmt.Errorf("pod %s/%s: %w", node, pod, err)
	}
	st.Pods = append(st.Pods[:i], st.Pods[i+1:]...)
	lb.opts.Log.Info("pod deleted", "pod", pod, "node", node)
	return saveState(lb.layout, st)
}
