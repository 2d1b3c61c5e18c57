package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/weftnet/weft/lab"
	"github.com/weftnet/weft/lab/kube"
	"github.com/weftnet/weft/nodestate"
)

// daemonSetApp is a Service with two backends, for the Service proxy of
// the DaemonSet's agents.
const daemonSetApp = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: netexec
        image: ` + lab.AgnhostImage + `
        imagePullPolicy: IfNotPresent
        args: ["netexec", "--http-port=8080"]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`

// TestDaemonSetInstall installs weft as users do: the kubelets of a
// --kubelets lab run deploy/kubernetes's DaemonSet from the locally built
// weft:dev image; its init container installs weft-cni and the conflist on
// every node. Pods reach each other over WireGuard and Services answer;
// a rolling restart of the DaemonSet keeps every pod's address and the
// nodes' leases; a node added later gets its agent from the DaemonSet; and
// `lab down` leaves nothing mounted on the host.
func TestDaemonSetInstall(t *testing.T) {
	start := time.Now()
	c, cs := newKubeClusterNamed(t, "d", "--kubelets", "--agents", "daemonset", "--nodes", "2", "--pods-per-node", "1", "--timeout", "3m")
	t.Logf("lab up --kube --kubelets --agents daemonset --nodes 2: %s", time.Since(start).Round(100*time.Millisecond))
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.kubectl("-n", lab.WeftNamespace, "get", "pods", "-o", "wide")
			t.Logf("==== agent pods\n%s", out)
			out, _ = c.kubectl("-n", lab.WeftNamespace, "logs", "ds/weft", "-c", "agent", "--tail", "30")
			t.Logf("==== agent log (tail)\n%s", out)
		}
	})
	nodes := []string{"n1", "n2"}

	// The DaemonSet runs one Ready agent per node, from weft:dev, on the
	// node's network.
	agents := agentPodsByNode(t, cs, len(nodes))
	for n, p := range agents {
		if !p.Spec.HostNetwork || p.Spec.Containers[0].Image != "weft:dev" {
			t.Errorf("agent pod %s on %s: hostNetwork %v, image %q", p.Name, n, p.Spec.HostNetwork, p.Spec.Containers[0].Image)
		}
		out, err := c.kubectl("-n", lab.WeftNamespace, "logs", p.Name, "-c", "install-cni")
		if err != nil || !strings.Contains(out, "installed /opt/cni/bin/weft-cni and /etc/cni/net.d/10-weft.conflist") {
			t.Errorf("install-cni on %s: %v: %s", n, err, out)
		}
	}
	for _, s := range c.status().Nodes {
		if !s.Running || s.Agent != lab.AgentsDaemonSet {
			t.Errorf("lab status: node %s agent %q running %v, want a ready DaemonSet pod", s.Name, s.Agent, s.Running)
		}
	}

	// What the init container installed on each node: the image's weft-cni
	// (executable, no temporary file left) and the ConfigMap's conflist.
	cm, err := cs.CoreV1().ConfigMaps(lab.WeftNamespace).Get(ctx, "weft-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantCNI, err := os.ReadFile(filepath.Join(binDir, lab.CNIPluginType))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		p := c.layout.Node(n)
		got, err := os.ReadFile(filepath.Join(p.CRIBinDir, lab.CNIPluginType))
		if err != nil || !bytes.Equal(got, wantCNI) {
			t.Errorf("node %s: /opt/cni/bin/weft-cni is not the lab's weft-cni (%v)", n, err)
		}
		if fi, err := os.Stat(filepath.Join(p.CRIBinDir, lab.CNIPluginType)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("node %s: weft-cni mode: %v %v", n, fi, err)
		}
		cl, err := os.ReadFile(filepath.Join(p.CRIConfDir, "10-weft.conflist"))
		if err != nil || string(cl) != cm.Data["10-weft.conflist"] {
			t.Errorf("node %s: /etc/cni/net.d/10-weft.conflist differs from the ConfigMap's (%v):\n%s", n, err, cl)
		}
		for _, d := range []string{p.CRIBinDir, p.CRIConfDir} {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("node %s: temporary file %s left in %s", n, e.Name(), d)
				}
			}
		}
	}

	// Pods on different nodes reach each other, over encrypted tunnels.
	c.mustWeft("lab", "check", "--name", c.name)
	for k, pc := range tunnelCounters(t, c, nodes) {
		if pc.handshake.IsZero() || pc.rx == 0 {
			t.Errorf("%s: no WireGuard handshake or no bytes received: %+v", k, pc)
		}
	}

	// The agents serve Services and cluster DNS: a lab pod reaches web by
	// name, both backends answering.
	c.applyYAML(t, daemonSetApp)
	backends := map[string]bool{}
	eventually(t, 90*time.Second, "both web backends ready", func() error {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return err
		}
		clear(backends)
		for _, p := range pods.Items {
			if podReady(&p) {
				backends[p.Name] = true
			}
		}
		if len(backends) != 2 {
			return fmt.Errorf("%d of 2 ready", len(backends))
		}
		return nil
	})
	serviceAnswers(t, c, "n1-p1", "web", backends)

	// A rolling restart: every agent replaced, one node at a time; pods
	// keep their addresses, nodes their blocks, and traffic resumes.
	before := map[string]string{} // node -> podCIDR
	for _, n := range nodes {
		st, err := nodestate.Read(c.layout.Node(n).StateFile)
		if err != nil {
			t.Fatal(err)
		}
		before[n] = st.PodCIDR.String()
	}
	podsBefore := c.pods()
	old := map[types.UID]bool{}
	for _, p := range agents {
		old[p.UID] = true
	}
	// Pod-to-pod probes both ways every 100 ms through the restart.
	servers := startPodServers(t, podsBefore)
	defer closeAll(servers)
	streams := []*prober{newProber(podsBefore[0], podsBefore[1]), newProber(podsBefore[1], podsBefore[0])}
	pctx, stopProbes := context.WithCancel(ctx)
	var probing sync.WaitGroup
	for _, s := range streams {
		probing.Add(1)
		go func() { defer probing.Done(); s.run(pctx, 100*time.Millisecond, 300*time.Millisecond) }()
	}
	defer func() { stopProbes(); probing.Wait() }()
	streamsUp := func(since time.Time) func() error {
		return func() error {
			for _, s := range streams {
				if err := s.upSince(since, time.Second); err != nil {
					return err
				}
			}
			return nil
		}
	}
	eventually(t, 20*time.Second, "pod-to-pod probes answering before the restart", streamsUp(time.Now()))
	t0 := time.Now()
	c.mustKubectl(t, "-n", lab.WeftNamespace, "rollout", "restart", "daemonset/weft")
	eventually(t, 3*time.Minute, "every agent pod replaced and Ready", func() error {
		pods, err := cs.CoreV1().Pods(lab.WeftNamespace).List(ctx, metav1.ListOptions{LabelSelector: lab.AgentPodSelector})
		if err != nil {
			return err
		}
		fresh := 0
		for _, p := range pods.Items {
			if old[p.UID] {
				return fmt.Errorf("pod %s (old) still there", p.Name)
			}
			if podReady(&p) {
				fresh++
			}
		}
		if fresh != len(nodes) {
			return fmt.Errorf("%d of %d new agent pods Ready", fresh, len(nodes))
		}
		return nil
	})
	t.Logf("rolling restart of the DaemonSet: every agent replaced and Ready in %s", time.Since(t0).Round(100*time.Millisecond))
	eventually(t, 30*time.Second, "pod-to-pod probes answering after the restart", streamsUp(time.Now()))
	for _, s := range streams {
		t.Logf("rolling restart: longest pod-to-pod gap %s: %.1fs", s.name, s.longestGap(t0.Add(-time.Second), time.Now()).Seconds())
	}
	stopProbes()
	probing.Wait()
	for _, n := range nodes {
		st, err := nodestate.Read(c.layout.Node(n).StateFile)
		if err != nil || st.PodCIDR.String() != before[n] {
			t.Errorf("node %s: block %v after the restart, %s before (%v)", n, st.PodCIDR, before[n], err)
		}
	}
	for i, p := range c.pods() {
		if i < len(podsBefore) && p.IP != podsBefore[i].IP {
			t.Errorf("pod %s: address %s after the restart, %s before", p.Name, p.IP, podsBefore[i].IP)
		}
	}
	eventually(t, 30*time.Second, "pod-to-pod traffic after the restart", func() error {
		_, err := c.weft("lab", "check", "--name", c.name)
		return err
	})
	serviceAnswers(t, c, "n2-p1", "web", backends)

	// A node added later gets its agent from the DaemonSet.
	c.mustWeft("lab", "node", "add", "--name", c.name)
	agentPodsByNode(t, cs, 3)
	c.mustWeft("lab", "check", "--name", c.name)
	if out, err := c.weft("lab", "node", "stop", "--name", c.name, "n3"); err == nil || !strings.Contains(out, "DaemonSet") {
		t.Errorf("lab node stop in a DaemonSet lab: %v: %s", err, out)
	}

	// A node that goes away (its kubelet and containerd killed, as when
	// the machine dies) turns NotReady and is tainted unreachable.
	pid, err := os.ReadFile(filepath.Join(c.layout.Node("n3").RuntimeDir, "runtime.pid"))
	if err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	c.mustRun(t, "kill", "-KILL", strings.TrimSpace(string(pid)))
	eventually(t, kube.NodeMonitorGrace+40*time.Second, "Node n3 NotReady and tainted unreachable", func() error {
		node, err := cs.CoreV1().Nodes().Get(ctx, "n3", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if nodeReady(node) {
			return fmt.Errorf("Node n3 still Ready")
		}
		for _, tn := range node.Spec.Taints {
			if tn.Key == corev1.TaintNodeUnreachable {
				return nil
			}
		}
		return fmt.Errorf("Node n3 taints %v", node.Spec.Taints)
	})
	t.Logf("Node n3 NotReady and tainted %s after its kubelet was killed", time.Since(t0).Round(100*time.Millisecond))

	// Down: the node directories were bound in the runtimes' own mount
	// namespaces only; nothing of them is mounted on the host.
	c.mustWeft("lab", "down", "--name", c.name)
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, c.layout.Dir()) {
			t.Errorf("left mounted on the host: %s", line)
		}
	}
}

// agentPodsByNode waits until n agent pods are Ready, one per node, and
// returns them by node.
func agentPodsByNode(t *testing.T, cs kubernetes.Interface, n int) map[string]corev1.Pod {
	t.Helper()
	out := map[string]corev1.Pod{}
	eventually(t, 2*time.Minute, fmt.Sprintf("%d Ready agent pods, one per node", n), func() error {
		pods, err := cs.CoreV1().Pods(lab.WeftNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: lab.AgentPodSelector})
		if err != nil {
			return err
		}
		clear(out)
		for _, p := range pods.Items {
			if podReady(&p) {
				out[p.Spec.NodeName] = p
			}
		}
		if len(out) != n {
			return fmt.Errorf("Ready on %d of %d nodes", len(out), n)
		}
		return nil
	})
	return out
}

// serviceAnswers checks that every one of backends answers through
// Service svc (port 80), by name, from Pod pod.
func serviceAnswers(t *testing.T, c *cluster, pod, svc string, backends map[string]bool) {
	t.Helper()
	seen := map[string]bool{}
	eventually(t, 30*time.Second, "every backend of "+svc+" from "+pod+" through the Service", func() error {
		out, err := c.kubectl("exec", pod, "--", "sh", "-c",
			`printf 'GET /hostname HTTP/1.0\r\n\r\n' | nc -w 3 `+svc+` 80 | tail -n 1`)
		if err != nil {
			return err
		}
		name := strings.TrimSpace(out)
		if !backends[name] {
			return fmt.Errorf("answer %q is no backend", name)
		}
		seen[name] = true
		if len(seen) < len(backends) {
			return fmt.Errorf("seen %d of %d backends", len(seen), len(backends))
		}
		return nil
	})
}

func (c *cluster) mustRun(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

func (c *cluster) mustKubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
