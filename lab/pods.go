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

// PodOptions are the Kubernetes side of a pod (--kube labs only).
type PodOptions struct {
	// Namespace of the Pod object; default "default", created if new.
	Namespace string
	// Labels of the Pod object.
	Labels map[string]string
	// Ports are named container ports the Pod declares.
	Ports []PodPort
}

// AddPod creates pod on node: a netns wired by CNI ADD through libcni. In
// a --kube lab it also registers the Pod object (bound to node, Running
// and Ready with the pod's IP); when the API server is unavailable the pod
// is recorded as not registered, and `weft lab kube sync` (or `kube start`)
// registers it later. In a --kubelets lab it is a real Pod the node's
// kubelet runs (see addRealPod), and the API server must be up.
func (lb *Lab) AddPod(ctx context.Context, node, pod string, o PodOptions) (PodState, error) {
	st, unlock, err := lb.openState()
	if err != nil {
		return PodState{}, err
	}
	defer unlock()
	return lb.addPodLocked(ctx, st, node, pod, o)
}

func (lb *Lab) addPodLocked(ctx context.Context, st *State, node, pod string, o PodOptions) (p PodState, err error) {
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
	if !st.Spec.Kube && (o.Namespace != "" || len(o.Labels) > 0 || len(o.Ports) > 0) {
		return p, fmt.Errorf("--namespace, --labels and --ports: %w", ErrNotKube)
	}
	if st.Spec.Kube {
		if o.Namespace == "" {
			o.Namespace = DefaultPodNamespace
		}
		if err := ValidateNamespace(o.Namespace); err != nil {
			return p, err
		}
		if _, ok := st.podByObject(o.Namespace, pod); ok {
			return p, fmt.Errorf("namespace %s already has a pod %q (a Pod's name is unique in its namespace)", o.Namespace, pod)
		}
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
	if st.Spec.Kubelets {
		p, err = lb.addRealPod(ctx, st, PodState{Name: pod, Node: node, NetNS: nsName, Namespace: o.Namespace, Labels: o.Labels, Ports: o.Ports})
		if err != nil {
			return p, err
		}
		st.Pods = append(st.Pods, p)
		lb.opts.Log.Info("pod added", "pod", p.Namespace+"/"+pod, "node", node, "netns", nsName, "ip", p.IP)
		return p, saveState(lb.layout, st)
	}
	if err := runAll(ctx, lb.opts.Runner, PodNSCmds(lb.layout, nsName)); err != nil {
		_ = DeleteNS(ctx, lb.opts.Runner, nsName)
		return p, fmt.Errorf("pod %s/%s: failed to create netns: %w", node, pod, err)
	}
	if st.Spec.Kube {
		if err := writePodResolvConf(nsName, o.Namespace); err != nil {
			_ = DeleteNS(ctx, lb.opts.Runner, nsName)
			return p, fmt.Errorf("pod %s/%s: %w", node, pod, err)
		}
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
	p = PodState{Name: pod, Node: node, NetNS: nsName, ContainerID: req.ContainerID, Namespace: o.Namespace, Labels: o.Labels, Ports: o.Ports}
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
	if !st.Spec.Kube {
		return p, nil
	}
	a, err := lb.api(ctx, st.Spec)
	if errors.Is(err, ErrAPIUnavailable) {
		lb.opts.Log.Warn("Pod not registered: the API server is unavailable; `weft lab kube sync` registers it later",
			"pod", p.Namespace+"/"+p.Name, "err", err)
		return p, nil
	}
	if err == nil {
		err = lb.syncLocked(ctx, st, a) // registers this pod, and anything pending
	}
	if err != nil {
		return p, fmt.Errorf("pod %s/%s is wired but its Pod object is not registered (`weft lab kube sync` retries): %w", node, pod, err)
	}
	i, _ := st.pod(node, pod)
	return st.Pods[i], nil
}

// LabelPod changes the labels of the Pod object namespace/name and records
// them in the lab's state.
func (lb *Lab) LabelPod(ctx context.Context, namespace, name string, c LabelChange) (PodState, error) {
	st, unlock, err := lb.openState()
	if err != nil {
		return PodState{}, err
	}
	defer unlock()
	if !st.Spec.Kube {
		return PodState{}, ErrNotKube
	}
	i, ok := st.podByObject(namespace, name)
	if !ok {
		return PodState{}, fmt.Errorf("lab %s has no pod %s/%s", lb.layout.Name, namespace, name)
	}
	a, err := lb.api(ctx, st.Spec)
	if err != nil {
		return PodState{}, err
	}
	if err := lb.syncLocked(ctx, st, a); err != nil {
		return PodState{}, err
	}
	if err := a.labelPod(ctx, st.Pods[i], c); err != nil {
		return PodState{}, err
	}
	st.Pods[i].Labels = c.Apply(st.Pods[i].Labels)
	if err := saveState(lb.layout, st); err != nil {
		return PodState{}, err
	}
	lb.opts.Log.Info("pod labelled", "pod", namespace+"/"+name, "labels", st.Pods[i].Labels)
	return st.Pods[i], nil
}

// DeletePod runs CNI DEL for pod on node and deletes its netns (and, in a
// --kube lab, its Pod object).
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
	// A real Pod's sandbox is the kubelet's to unwire; the lab only named
	// its namespace.
	if _, err := os.Lstat(NetNSPath(n.NetNS)); err == nil && !st.Spec.Kubelets {
		if _, err := lb.cniExec(ctx, n, lb.cniRequest(n, "del", p.NetNS)); err != nil {
			return fmt.Errorf("pod %s/%s: %w", node, pod, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := DeleteNS(ctx, lb.opts.Runner, p.NetNS); err != nil {
		return fmt.Errorf("pod %s/%s: %w", node, pod, err)
	}
	if st.Spec.Kube && p.Registered {
		a, err := lb.api(ctx, st.Spec)
		if err == nil {
			err = a.deletePod(ctx, p)
		}
		if err != nil {
			// The pod is gone; its object is not. Say so and go on.
			lb.opts.Log.Warn("pod deleted but not its Pod object", "pod", p.Namespace+"/"+p.Name, "err", err)
		}
	}
	st.Pods = append(st.Pods[:i], st.Pods[i+1:]...)
	lb.opts.Log.Info("pod deleted", "pod", pod, "node", node)
	return saveState(lb.layout, st)
}
