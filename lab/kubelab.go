package lab

// The Kubernetes side of a --kube lab.
//
// A real etcd, kube-apiserver and kube-controller-manager (lab/kube) run in
// the namespace <name>-cp at CPAddr on the underlay. The lab plays the part
// of the kubelets and the scheduler: it registers a Node per node (the
// controller manager assigns its podCIDR) and a Pod per pod (bound to its
// node, with a Running and Ready status), and the agents run in Kubernetes
// mode with a TokenRequest token of the weft ServiceAccount, so they get
// exactly the RBAC of deploy/kubernetes.
//
// Every lab command is a short-lived process: it reattaches to the control
// plane by its pid files (kube.Load). When the API server is unavailable a
// command that would register an object records it as not registered and
// goes on; `weft lab kube start` and `weft lab kube sync` register what is
// pending.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/weftnet/weft/lab/kube"
)

// ErrAPIUnavailable means the lab's API server cannot be reached now.
var ErrAPIUnavailable = errors.New("the lab's API server is unavailable")

// ErrNotKube means the command needs a lab started with --kube.
var ErrNotKube = errors.New("this needs a lab started with `weft lab up --kube`")

// Durations of the Kubernetes side.
const (
	// agentTokenTTL is the lifetime of the agents' ServiceAccount token.
	agentTokenTTL = 7 * 24 * time.Hour
	// podCIDRTimeout bounds the wait for kube-controller-manager to give
	// a new Node its podCIDR.
	podCIDRTimeout = 30 * time.Second
	// kubeletRegisterTimeout bounds the wait for a kubelet to start and
	// register its Node, and the podCIDR after.
	kubeletRegisterTimeout = 90 * time.Second
	// apiProbeTimeout bounds the check that the API server answers.
	apiProbeTimeout = 3 * time.Second
	// apiRequestTimeout bounds every request the lab makes.
	apiRequestTimeout = 15 * time.Second
)

// rbacManifests are the files of deploy/kubernetes that `up --kube`
// applies: the agents' namespace, identity and permissions.
var rbacManifests = []string{"namespace.yaml", "serviceaccount.yaml", "rbac.yaml"}

// ManifestDirFor finds deploy/kubernetes for a weft binary: in the working
// directory, or beside the binary's bin/ directory in a checkout.
func ManifestDirFor(weft string) (string, error) {
	var tried []string
	for _, d := range []string{"deploy/kubernetes", filepath.Join(filepath.Dir(weft), "..", "deploy", "kubernetes")} {
		abs, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		if slices.Contains(tried, abs) {
			continue
		}
		tried = append(tried, abs)
		if _, err := os.Stat(filepath.Join(abs, "rbac.yaml")); err == nil {
			return abs, nil
		}
	}
	return "", fmt.Errorf("manifests: deploy/kubernetes not found (tried %v); pass --manifests DIR", tried)
}

// kubeConfig is the control plane of a --kube lab with spec.
func (lb *Lab) kubeConfig(spec Spec) kube.Config {
	cidr, _ := netip.ParsePrefix(spec.ClusterCIDR)
	svc, _ := netip.ParsePrefix(spec.ServiceCIDR) // zero before Complete: kube's default
	return kube.Config{
		ServiceCIDR:      svc,
		Dir:              lb.layout.KubeDir(),
		NetNS:            lb.layout.CPNS(),
		Address:          CPAddr,
		BinDir:           spec.KubeBinDir,
		ClusterCIDR:      cidr,
		NodeCIDRMaskSize: 24, // the agents' default blockSize
		Kubelets:         spec.Kubelets,
		Logger:           lb.opts.Log.With("component", "kube"),
	}
}

// completeKubeSpec fills and checks the --kube parts of spec before
// anything is created: binaries built, manifests found.
func (lb *Lab) completeKubeSpec(spec *Spec) error {
	if !spec.Kube {
		return nil
	}
	if spec.KubeBinDir == "" {
		spec.KubeBinDir = lb.opts.BinDir
	}
	abs, err := filepath.Abs(spec.KubeBinDir)
	if err != nil {
		return fmt.Errorf("kube-bin-dir: %w", err)
	}
	spec.KubeBinDir = abs
	if err := kube.BinariesBuilt(abs); err != nil {
		return fmt.Errorf("--kube: %w; `make controlplane` does the same, --kube-bin-dir says where they are", err)
	}
	if spec.Manifests == "" {
		if spec.Manifests, err = ManifestDirFor(lb.opts.Weft); err != nil {
			return err
		}
	}
	if spec.Kubelets {
		if err := checkKubelets(*spec); err != nil {
			return err
		}
	}
	for _, f := range rbacManifests {
		if _, err := os.Stat(filepath.Join(spec.Manifests, f)); err != nil {
			return fmt.Errorf("manifests: %w", err)
		}
	}
	if spec.Manifests, err = filepath.Abs(spec.Manifests); err != nil {
		return fmt.Errorf("manifests: %w", err)
	}
	return nil
}

// startControlPlane creates the control-plane namespace, starts the
// control plane, applies the agents' RBAC and writes their kubeconfig.
func (lb *Lab) startControlPlane(ctx context.Context, spec Spec) error {
	l := lb.layout
	if err := runAll(ctx, lb.opts.Runner, CPCmds(l, spec.MTU)); err != nil {
		return fmt.Errorf("failed to create the control-plane namespace %s: %w", l.CPNS(), err)
	}
	t := time.Now()
	cp, err := kube.Start(ctx, lb.kubeConfig(spec))
	if err != nil {
		return err
	}
	lb.opts.Log.Info("control plane up", "netns", l.CPNS(), "server", cp.Server(), "took", time.Since(t).Round(time.Millisecond))
	rc := lb.restConfig(cp)
	var paths []string
	for _, f := range rbacManifests {
		paths = append(paths, filepath.Join(spec.Manifests, f))
	}
	ms, err := ReadManifests(paths, nil)
	if err != nil {
		return err
	}
	res, err := applyManifests(ctx, rc, ms, false)
	if err != nil {
		return fmt.Errorf("failed to apply the weft RBAC: %w", err)
	}
	for _, r := range res {
		lb.opts.Log.Info("applied", "object", r.Object)
	}
	if err := waitServiceAccount(ctx, rc); err != nil {
		return err
	}
	return cp.ServiceAccountKubeconfig(ctx, kube.TokenKubeconfig{
		Namespace: WeftNamespace, ServiceAccount: WeftServiceAccount,
		TTL: agentTokenTTL, Out: l.AgentKubeconfig(),
	})
}

// waitServiceAccount waits until the weft ServiceAccount is readable (it
// was just applied; the cache behind TokenRequest may lag a moment).
func waitServiceAccount(ctx context.Context, rc *rest.Config) error {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	return poll(ctx, 10*time.Second, func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts(WeftNamespace).Get(ctx, WeftServiceAccount, metav1.GetOptions{})
		return err
	})
}

func (lb *Lab) restConfig(cp *kube.ControlPlane) *rest.Config {
	rc := cp.AdminRESTConfig()
	rc.Timeout = apiRequestTimeout
	rc.UserAgent = FieldManager
	return rc
}

// kubeAPI is an admin connection to a --kube lab's API server.
type kubeAPI struct {
	rc *rest.Config
	cs kubernetes.Interface
}

// api connects to the lab's API server; ErrAPIUnavailable (wrapped) when a
// component is down or the server does not answer /readyz promptly.
func (lb *Lab) api(ctx context.Context, spec Spec) (*kubeAPI, error) {
	if !spec.Kube {
		return nil, ErrNotKube
	}
	cp, err := kube.Load(lb.kubeConfig(spec))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAPIUnavailable, err)
	}
	rc := lb.restConfig(cp)
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, apiProbeTimeout)
	defer cancel()
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(pctx); err != nil {
		return nil, fmt.Errorf("%w: /readyz: %v", ErrAPIUnavailable, err)
	}
	return &kubeAPI{rc: rc, cs: cs}, nil
}

// registerNode creates (or refreshes) node n's Node object.
func (a *kubeAPI) registerNode(ctx context.Context, lab string, n NodePlan) error {
	want := NodeObject(lab, n, time.Now())
	nodes := a.cs.CoreV1().Nodes()
	got, err := nodes.Create(ctx, want, metav1.CreateOptions{FieldManager: FieldManager})
	if apierrors.IsAlreadyExists(err) {
		got, err = nodes.Get(ctx, n.Name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("failed to register Node %s: %w", n.Name, err)
	}
	// kube-controller-manager writes the new Node (its podCIDR) at once:
	// retry a conflicting write on a fresh copy.
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if got == nil {
			if got, err = nodes.Get(ctx, n.Name, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		got.Status.Addresses = want.Status.Addresses
		setNodeCondition(&got.Status, want.Status.Conditions[0])
		_, err := nodes.UpdateStatus(ctx, got, metav1.UpdateOptions{FieldManager: FieldManager})
		got = nil
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to set the status of Node %s: %w", n.Name, err)
	}
	return nil
}

func setNodeCondition(s *corev1.NodeStatus, c corev1.NodeCondition) {
	for i := range s.Conditions {
		if s.Conditions[i].Type == c.Type {
			s.Conditions[i] = c
			return
		}
	}
	s.Conditions = append(s.Conditions, c)
}

// waitPodCIDR waits until kube-controller-manager has given Node name its
// podCIDR, and returns it. With kubelets the wait includes the kubelet's
// start and registration.
func (a *kubeAPI) waitPodCIDR(ctx context.Context, name string, timeout time.Duration) (string, error) {
	var cidr string
	err := poll(ctx, timeout, func(ctx context.Context) error {
		n, err := a.cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Spec.PodCIDR == "" {
			return fmt.Errorf("Node %s has no podCIDR yet", name)
		}
		cidr = n.Spec.PodCIDR
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("kube-controller-manager did not assign a podCIDR: %w", err)
	}
	return cidr, nil
}

// deleteNode deletes Node name and the lab's Pods on it; absent is fine.
func (a *kubeAPI) deleteNode(ctx context.Context, st *State, name string) error {
	for _, p := range st.Pods {
		if p.Node == name && p.Registered {
			if err := a.deletePod(ctx, p); err != nil {
				return err
			}
		}
	}
	err := a.cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete Node %s: %w", name, err)
	}
	return nil
}

// ensureNamespace creates namespace ns if it does not exist.
func (a *kubeAPI) ensureNamespace(ctx context.Context, ns string) error {
	_, err := a.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create namespace %s: %w", ns, err)
	}
	return nil
}

// registerPod creates pod p's Pod object and sets its status through the
// status subresource (the API server ignores a status sent on create).
func (a *kubeAPI) registerPod(ctx context.Context, lab string, p PodState, hostIP netip.Addr) error {
	if err := a.ensureNamespace(ctx, p.Namespace); err != nil {
		return err
	}
	want := PodObject(lab, p, hostIP, time.Now())
	pods := a.cs.CoreV1().Pods(p.Namespace)
	got, err := pods.Create(ctx, want, metav1.CreateOptions{FieldManager: FieldManager})
	if apierrors.IsAlreadyExists(err) {
		got, err = pods.Get(ctx, p.Name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("failed to register Pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	if got.Spec.NodeName != p.Node {
		return fmt.Errorf("Pod %s/%s exists already, on node %q", p.Namespace, p.Name, got.Spec.NodeName)
	}
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if got == nil {
			if got, err = pods.Get(ctx, p.Name, metav1.GetOptions{}); err != nil {
				return err
			}
		}
		got.Status = want.Status
		_, err := pods.UpdateStatus(ctx, got, metav1.UpdateOptions{FieldManager: FieldManager})
		got = nil
		return err
	})
	if err != nil {
		return fmt.Errorf("failed to set the status of Pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// deletePod deletes p's Pod object at once (there is no kubelet to confirm
// a graceful deletion); absent is fine.
func (a *kubeAPI) deletePod(ctx context.Context, p PodState) error {
	err := a.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("failed to delete Pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// labelPod patches p's labels.
func (a *kubeAPI) labelPod(ctx context.Context, p PodState, c LabelChange) error {
	b, err := json.Marshal(c.MergePatch())
	if err != nil {
		return err
	}
	_, err = a.cs.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, b, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		return fmt.Errorf("failed to label Pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// syncLocked makes the API match the lab: registers every node and pod not
// registered yet and deletes the Nodes this lab registered whose node is
// gone. It saves st as it goes.
func (lb *Lab) syncLocked(ctx context.Context, st *State, a *kubeAPI) error {
	l := lb.layout
	for i := range st.Nodes {
		n := &st.Nodes[i]
		if n.Registered || st.Spec.Kubelets { // a kubelet registers its own Node
			continue
		}
		p, err := l.PlanNode(n.Name, n.Index)
		if err != nil {
			return err
		}
		if err := a.registerNode(ctx, l.Name, p); err != nil {
			return err
		}
		n.Registered = true
		lb.opts.Log.Info("Node registered", "node", n.Name)
		if err := saveState(l, st); err != nil {
			return err
		}
	}
	for i := range st.Pods {
		p := &st.Pods[i]
		if p.Registered {
			continue
		}
		n, _ := st.node(p.Node)
		if err := a.registerPod(ctx, l.Name, *p, n.UnderlayIP); err != nil {
			return err
		}
		p.Registered = true
		lb.opts.Log.Info("Pod registered", "pod", p.Namespace+"/"+p.Name, "node", p.Node)
		if err := saveState(l, st); err != nil {
			return err
		}
	}
	nodes, err := a.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: LabelLab + "=" + l.Name})
	if err != nil {
		return fmt.Errorf("failed to list the lab's Nodes: %w", err)
	}
	for _, n := range nodes.Items {
		if _, ok := st.node(n.Name); !ok {
			if err := a.deleteNode(ctx, st, n.Name); err != nil {
				return err
			}
			lb.opts.Log.Info("Node of a deleted lab node removed", "node", n.Name)
		}
	}
	pods, err := a.cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("failed to list Pods: %w", err)
	}
	for _, p := range pods.Items {
		if p.Annotations[LabelLab] != l.Name {
			continue
		}
		if _, ok := st.podByObject(p.Namespace, p.Name); !ok {
			if err := a.deletePod(ctx, PodState{Namespace: p.Namespace, Name: p.Name}); err != nil {
				return err
			}
			lb.opts.Log.Info("Pod of a deleted lab pod removed", "pod", p.Namespace+"/"+p.Name)
		}
	}
	return nil
}

// SyncKube registers pending Nodes and Pods (those added while the API
// server was unavailable) and removes Nodes of deleted lab nodes.
func (lb *Lab) SyncKube(ctx context.Context) error {
	st, unlock, err := lb.openState()
	if err != nil {
		return err
	}
	defer unlock()
	a, err := lb.api(ctx, st.Spec)
	if err != nil {
		return err
	}
	return lb.syncLocked(ctx, st, a)
}

// StopKubeComponent stops one control-plane component (etcd,
// kube-apiserver or kube-controller-manager); the rest keeps running.
func (lb *Lab) StopKubeComponent(_ context.Context, name string) error {
	st, unlock, err := lb.openState()
	if err != nil {
		return err
	}
	defer unlock()
	if !st.Spec.Kube {
		return ErrNotKube
	}
	if err := kube.StopComponent(lb.layout.KubeDir(), name); err != nil {
		return err
	}
	lb.opts.Log.Info("control-plane component stopped", "component", name)
	return nil
}

// StartKubeComponent starts a stopped control-plane component, waits until
// it is ready and, once the API answers, registers what is pending.
func (lb *Lab) StartKubeComponent(ctx context.Context, name string) error {
	st, unlock, err := lb.openState()
	if err != nil {
		return err
	}
	defer unlock()
	if !st.Spec.Kube {
		return ErrNotKube
	}
	if err := kube.StartComponent(ctx, lb.kubeConfig(st.Spec), name); err != nil {
		return err
	}
	a, err := lb.api(ctx, st.Spec)
	if errors.Is(err, ErrAPIUnavailable) {
		lb.opts.Log.Warn("started; the API is still unavailable, so nothing was registered", "component", name, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	return lb.syncLocked(ctx, st, a)
}

// Apply applies manifests to the lab's API server (server-side apply,
// field manager weft-lab); dryRun validates without storing.
func (lb *Lab) Apply(ctx context.Context, ms []Manifest, dryRun bool) ([]ApplyResult, error) {
	st, err := loadState(lb.layout)
	if err != nil {
		return nil, err
	}
	a, err := lb.api(ctx, st.Spec)
	if err != nil {
		return nil, err
	}
	return applyManifests(ctx, a.rc, ms, dryRun)
}

// Kubeconfig returns the path of the lab's admin kubeconfig. Its server,
// https://192.168.77.2:6443, is reachable from the lab's namespaces (and
// `weft lab exec cp -- …`), not from the host.
func (lb *Lab) Kubeconfig() (string, error) {
	st, err := loadState(lb.layout)
	if err != nil {
		return "", err
	}
	if !st.Spec.Kube {
		return "", ErrNotKube
	}
	return lb.layout.AdminKubeconfig(), nil
}

// poll runs f every 200ms until it succeeds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not done after %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}
