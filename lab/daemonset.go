package lab

// --agents daemonset: weft installed as users install it. The kubelets run
// the DaemonSet of deploy/kubernetes (daemonset.yaml, unchanged) from an
// image the lab builds (WeftImage: weft and weft-cni on a busybox layer);
// its init container installs weft-cni and the conflist on the node. The
// lab writes what an operator writes for a cluster: the ConfigMap (this
// lab's CIDRs, lease grace and resync), the gossip key Secret and the
// weft-apiserver ConfigMap (no kube-proxy: the agent reaches the API server
// by its address).
//
// Every node's runtime runs in a mount namespace of its own, where the
// node's directories are bound on the host paths the DaemonSet's hostPath
// volumes and weft-cni name (daemonSetBinds), so each node keeps its own
// /run/weft, /var/lib/weft, /etc/cni/net.d and /opt/cni/bin.

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/weftnet/weft/lab/image"
	"github.com/weftnet/weft/lab/kube"
	"github.com/weftnet/weft/lab/kubelet"
)

// WeftImage is the DaemonSet's image, weft:dev, as containerd names it.
const WeftImage = "docker.io/library/weft:dev"

// The host paths of a node that the DaemonSet and its conflist name.
const (
	hostRunWeft    = "/run/weft"
	hostVarLibWeft = "/var/lib/weft"
	hostWireGuard  = "/run/wireguard"
	hostCNIConf    = "/etc/cni/net.d"
	hostCNIBin     = "/opt/cni/bin"
	hostCNIData    = "/var/lib/cni/weft"
	// where the DaemonSet mounts the weft-config volume
	podConfigDir = "/etc/weft"
)

// The objects the lab writes beside the DaemonSet.
const (
	daemonSetManifest      = "daemonset.yaml"
	weftConfigMap          = "weft-config"
	weftAPIServerConfigMap = "weft-apiserver"
	weftGossipSecret       = "weft-gossip-key"
	// AgentPodSelector selects the agents' pods (daemonset.yaml's selector).
	AgentPodSelector = "app.kubernetes.io/name=weft,app.kubernetes.io/component=agent"
)

// daemonSetReadyTimeout bounds the wait for the DaemonSet's pods to be
// Ready on every node: image already imported, so seconds are enough.
const daemonSetReadyTimeout = 2 * time.Minute

// daemonSetBinds are node n's directories on the host paths the
// DaemonSet's pod and weft-cni use. node.json and weft.sock (/run/weft),
// lease.json and wireguard.key (/var/lib/weft) are the same files a
// process agent of the lab writes, so every lab command reads them alike.
func daemonSetBinds(n NodePaths) []kubelet.Bind {
	return []kubelet.Bind{
		{Src: n.Dir, Dst: hostRunWeft},
		{Src: n.Dir, Dst: hostVarLibWeft},
		{Src: n.WireGuardDir, Dst: hostWireGuard},
		{Src: n.CRIConfDir, Dst: hostCNIConf},
		{Src: n.CRIBinDir, Dst: hostCNIBin},
		{Src: n.CNIDataDir, Dst: hostCNIData},
	}
}

// DaemonSetAgentConfig is the agent.yaml of the DaemonSet's ConfigMap: the
// lab's agent settings with the paths of deploy/kubernetes. The node's
// name and underlay address come from the DaemonSet's flags, the API
// server from the in-cluster configuration.
func DaemonSetAgentConfig(l Layout, s Spec) AgentConfigFile {
	c := AgentConfig(l, s, NodePlan{}, nil)
	c.NodeName = ""
	c.Underlay = agentUnderlay{}
	c.Gossip.KeyFile = filepath.Join(podConfigDir, "gossip.key")
	c.Gossip.LeaseFile = filepath.Join(hostVarLibWeft, "lease.json")
	if c.Tunnel.KeyFile != "" {
		c.Tunnel.KeyFile = filepath.Join(hostVarLibWeft, "wireguard.key")
	}
	c.StateFile = filepath.Join(hostRunWeft, "node.json")
	c.StatusSocket = filepath.Join(hostRunWeft, "weft.sock")
	c.Kubernetes.Kubeconfig = ""
	return c
}

// daemonSetConfList is the conflist the init container installs: the
// paths of deploy/kubernetes, portmap chained for hostPorts.
func daemonSetConfList() ([]byte, error) {
	return criConfList(NodePaths{StateFile: filepath.Join(hostRunWeft, "node.json"), CNIDataDir: hostCNIData})
}

// WeftImageOf is the DaemonSet's image: weft and weft-cni in
// /usr/local/bin, and the busybox applets its init container runs.
func WeftImageOf(weft, weftCNI, busybox string) image.Image {
	layer := []image.Entry{
		{Path: "usr/local/bin/weft", Src: weft},
		{Path: "usr/local/bin/" + CNIPluginType, Src: weftCNI},
		{Path: "bin/busybox", Src: busybox},
		{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\n")},
		{Path: "etc/group", Data: []byte("root:x:0:\n")},
		{Path: "tmp", Dir: true}, {Path: "proc", Dir: true}, {Path: "sys", Dir: true}, {Path: "dev", Dir: true},
		{Path: "root", Dir: true}, {Path: "run", Dir: true}, {Path: "var/lib", Dir: true},
		// as on Debian: wireguard-go's UAPI socket is /var/run/wireguard,
		// the DaemonSet mounts the host's /run/wireguard
		{Path: "var/run", Link: "/run"},
	}
	for _, a := range []string{"sh", "cp", "mv", "chmod", "echo", "cat", "ls", "rm", "mkdir"} {
		layer = append(layer, image.Entry{Path: "bin/" + a, Link: "busybox"})
	}
	return image.Image{
		Ref: WeftImage, Entrypoint: []string{"/usr/local/bin/weft"}, Cmd: []string{"version"},
		Env:   []string{"PATH=/usr/local/bin:/bin"},
		Layer: layer,
	}
}

// prepareDaemonSetNode fills node n's /opt/cni/bin with the plugins a
// node's OS brings (loopback, portmap); weft-cni comes from the init
// container.
func prepareDaemonSetNode(n NodePaths) error {
	for _, d := range []string{n.CRIBinDir, n.CRIConfDir, n.CNIDataDir, n.WireGuardDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return linkCNIPlugins(n.CRIBinDir, map[string]string{
		"loopback":    loopbackPlugin,
		portmapPlugin: filepath.Join(filepath.Dir(loopbackPlugin), portmapPlugin),
	})
}

// toManifest turns a typed object into a Manifest for applyManifests.
func toManifest(obj runtime.Object, source string) (Manifest, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return Manifest{}, err
	}
	return Manifest{Source: source, Object: &unstructured.Unstructured{Object: m}}, nil
}

// daemonSetObjects are what the lab applies for the DaemonSet: the key
// Secret and the two ConfigMaps, then daemonset.yaml itself.
func (lb *Lab) daemonSetObjects(spec Spec) ([]Manifest, error) {
	l := lb.layout
	key, err := os.ReadFile(l.GossipKeyFile())
	if err != nil {
		return nil, err
	}
	agentYAML, err := DaemonSetAgentConfig(l, spec).render("# written by weft lab for the weft DaemonSet; the node's name and address come from its flags\n")
	if err != nil {
		return nil, err
	}
	cl, err := daemonSetConfList()
	if err != nil {
		return nil, err
	}
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: WeftNamespace, Labels: map[string]string{"app.kubernetes.io/name": "weft", "app.kubernetes.io/part-of": "weft", LabelLab: l.Name}}
	}
	cmType := metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
	objs := []runtime.Object{
		&corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: meta(weftGossipSecret),
			Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"key": key}},
		&corev1.ConfigMap{TypeMeta: cmType, ObjectMeta: meta(weftAPIServerConfigMap), Data: map[string]string{
			"KUBERNETES_SERVICE_HOST": CPAddr.String(),
			"KUBERNETES_SERVICE_PORT": fmt.Sprint(kube.APIServerPort),
		}},
		&corev1.ConfigMap{TypeMeta: cmType, ObjectMeta: meta(weftConfigMap), Data: map[string]string{
			"agent.yaml":       string(agentYAML),
			"10-weft.conflist": string(cl),
			"peering.yaml":     "peers: []\n",
		}},
	}
	var ms []Manifest
	for _, o := range objs {
		m, err := toManifest(o, "weft lab")
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	ds, err := ReadManifests([]string{filepath.Join(spec.Manifests, daemonSetManifest)}, nil)
	if err != nil {
		return nil, err
	}
	return append(ms, ds...), nil
}

// installDaemonSet applies the DaemonSet and what it needs, then waits
// until its pod is Ready on every node of plans and every agent sees the
// others.
func (lb *Lab) installDaemonSet(ctx context.Context, st *State, plans []NodePlan) error {
	a, err := lb.api(ctx, st.Spec)
	if err != nil {
		return err
	}
	ms, err := lb.daemonSetObjects(st.Spec)
	if err != nil {
		return err
	}
	res, err := applyManifests(ctx, a.rc, ms, false)
	if err != nil {
		return fmt.Errorf("failed to install the weft DaemonSet: %w", err)
	}
	for _, r := range res {
		lb.opts.Log.Info("applied", "object", r.Object)
	}
	return lb.waitDaemonSet(ctx, a, plans)
}

// waitDaemonSet waits until the DaemonSet's pod is Ready on every node of
// plans, then until every agent of the lab sees every other.
func (lb *Lab) waitDaemonSet(ctx context.Context, a *kubeAPI, plans []NodePlan) error {
	t := time.Now()
	want := names(plans)
	var last map[string]string
	err := poll(ctx, daemonSetReadyTimeout, func(ctx context.Context) error {
		var err error
		got, err := agentPods(ctx, a)
		if err != nil {
			return err
		}
		last = got
		var pending []string
		for _, n := range want {
			if last[n] != "Ready" {
				pending = append(pending, n)
			}
		}
		if len(pending) > 0 {
			return fmt.Errorf("no Ready agent pod on %s", strings.Join(pending, ", "))
		}
		return nil
	})
	if err != nil {
		var b strings.Builder
		for _, n := range want {
			fmt.Fprintf(&b, "\n  node %s: %s", n, cmp.Or(last[n], "no pod"))
		}
		return fmt.Errorf("the weft DaemonSet: %w%s", err, b.String())
	}
	lb.opts.Log.Info("weft DaemonSet ready", "nodes", len(want), "took", time.Since(t).Round(time.Millisecond))
	return waitReady(ctx, lb.opts.Runner, lb.opts.Weft, plans, nil, want, lb.opts.ReadyTimeout)
}

// agentPods maps each node to the state of its agent pod: "Ready", or what
// keeps it from being Ready (a waiting reason and message, the last exit,
// the tail of the agent's log).
func agentPods(ctx context.Context, a *kubeAPI) (map[string]string, error) {
	pods, err := a.cs.CoreV1().Pods(WeftNamespace).List(ctx, metav1.ListOptions{LabelSelector: AgentPodSelector})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			continue
		}
		out[p.Spec.NodeName] = podState(ctx, a, &p)
	}
	return out, nil
}

func podState(ctx context.Context, a *kubeAPI, p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return "Ready"
		}
	}
	why := []string{fmt.Sprintf("pod %s %s", p.Name, p.Status.Phase)}
	for _, cs := range slices.Concat(p.Status.InitContainerStatuses, p.Status.ContainerStatuses) {
		switch {
		case cs.State.Waiting != nil:
			why = append(why, fmt.Sprintf("%s waiting: %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message))
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
			why = append(why, fmt.Sprintf("%s exited %d", cs.Name, cs.State.Terminated.ExitCode))
		}
		if cs.RestartCount > 0 {
			why = append(why, fmt.Sprintf("%s restarted %d times", cs.Name, cs.RestartCount))
			tail := int64(8)
			if b, err := a.cs.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: cs.Name, Previous: true, TailLines: &tail}).DoRaw(ctx); err == nil {
				why = append(why, "last lines:\n    "+strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    "))
			}
		}
	}
	return strings.Join(why, "; ")
}

// errDaemonSetAgent is what the commands that start and stop the lab's own
// agent processes say in a DaemonSet lab.
func errDaemonSetAgent(node string) error {
	return fmt.Errorf("node %s: the agent runs as the weft DaemonSet's pod; restart it with `kubectl --kubeconfig $(weft lab kubeconfig) -n %s delete pod -l %s --field-selector spec.nodeName=%s`",
		node, WeftNamespace, AgentPodSelector, node)
}

// daemonSetAgentReady reports whether node n's agent answers /readyz with
// 200 (a DaemonSet lab has no agent pid to look at).
func daemonSetAgentReady(n NodePaths, netns string) bool {
	if _, err := os.Stat(n.StatusSocket); err != nil {
		return false
	}
	code, err := readyz(netns)
	return err == nil && code == http.StatusOK
}
