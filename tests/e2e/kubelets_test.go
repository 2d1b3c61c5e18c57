package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftnet/weft/cni/ipam"
	"github.com/weftnet/weft/lab"
	"github.com/weftnet/weft/tests/conformance"
)

// kubeletsApp is the tutorial's frontend and backend: three agnhost
// netexec replicas behind a NodePort Service, a busybox frontend, and a
// DaemonSet that must run on every node.
const kubeletsApp = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      containers:
      - name: netexec
        image: ` + lab.AgnhostImage + `
        imagePullPolicy: IfNotPresent
        args: ["netexec", "--http-port=8080"]
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: backend-service, namespace: default}
spec:
  type: NodePort
  selector: {app: backend}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Pod
metadata: {name: frontend, namespace: default}
spec:
  containers:
  - name: shell
    image: ` + lab.BusyboxImage + `
    imagePullPolicy: IfNotPresent
    command: ["sleep", "1000000"]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere, namespace: default}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec:
      containers:
      - name: pause
        image: ` + lab.AgnhostImage + `
        imagePullPolicy: IfNotPresent
        args: ["pause"]
`

// TestKubelets runs a --kubelets lab: real kubelets and containerd on
// every node, kube-scheduler in the control plane, Pods created through
// the API and wired by weft-cni through containerd's CRI.
func TestKubelets(t *testing.T) {
	start := time.Now()
	c, cs := newKubeClusterNamed(t, "k", "--kubelets", "--nodes", "3", "--timeout", "3m")
	t.Logf("lab up --kube --kubelets --nodes 3: %s", time.Since(start).Round(100*time.Millisecond))
	ctx := context.Background()
	nodes := []string{"n1", "n2", "n3"}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				for _, f := range []string{"runtime.log", "kubelet.log", "containerd.log"} {
					out, _ := exec.Command("tail", "-n", "30", filepath.Join(c.layout.Node(n).RuntimeDir, f)).CombinedOutput()
					t.Logf("==== %s %s (tail)\n%s", n, f, out)
				}
			}
		}
	})

	// Every Node registered by its kubelet, Ready, its not-ready taint
	// cleared by the node lifecycle controller, its runtime containerd.
	eventually(t, 60*time.Second, "every Node Ready and untainted", func() error {
		for _, n := range nodes {
			node, err := cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if !nodeReady(node) {
				return fmt.Errorf("Node %s not Ready", n)
			}
			if len(node.Spec.Taints) > 0 {
				return fmt.Errorf("Node %s has taints %v", n, node.Spec.Taints)
			}
			if rt := node.Status.NodeInfo.ContainerRuntimeVersion; !strings.HasPrefix(rt, "containerd://") {
				return fmt.Errorf("Node %s runs %q", n, rt)
			}
		}
		return nil
	})

	c.applyYAML(t, kubeletsApp)
	took := eventually(t, 90*time.Second, "the Deployment available and the DaemonSet on every node", func() error {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := map[string][]string{}
		for _, p := range pods.Items {
			if podReady(&p) {
				ready[p.Labels["app"]] = append(ready[p.Labels["app"]], p.Spec.NodeName)
			}
		}
		if len(ready["backend"]) != 3 {
			return fmt.Errorf("%d of 3 backends ready", len(ready["backend"]))
		}
		if ds := ready["everywhere"]; len(ds) != 3 || len(uniq(ds)) != 3 {
			return fmt.Errorf("DaemonSet pods ready on %v", ds)
		}
		for _, p := range pods.Items {
			if p.Name == "frontend" && !podReady(&p) {
				return fmt.Errorf("frontend not ready")
			}
		}
		return nil
	})
	t.Logf("Deployment, DaemonSet and frontend Running and Ready %s after apply", took.Round(100*time.Millisecond))

	// Every pod has an address in its node's podCIDR, given by weft-cni.
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	backends := map[string]bool{}
	for _, p := range pods.Items {
		node, err := cs.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cidr := netip.MustParsePrefix(node.Spec.PodCIDR)
		if ip, err := netip.ParseAddr(p.Status.PodIP); err != nil || !cidr.Contains(ip) {
			t.Errorf("pod %s on %s has address %q, outside %s", p.Name, p.Spec.NodeName, p.Status.PodIP, cidr)
		}
		if p.Labels["app"] == "backend" {
			backends[p.Name] = true
		}
	}

	// kubectl exec into the frontend: backend-service by name through the
	// search path, every backend answering.
	serviceAnswers(t, c, "frontend", "backend-service", backends)

	// The NodePort from the lab's internet, on every node.
	for i := range nodes {
		ip, err := lab.NodeAddr(i + 1)
		if err != nil {
			t.Fatal(err)
		}
		addr := netip.AddrPortFrom(ip, 30080)
		eventually(t, 10*time.Second, "NodePort "+addr.String()+" from the internet", func() error {
			name, err := httpGet(c.layout.InetNS(), "http://"+addr.String()+"/hostname")
			if err != nil {
				return err
			}
			if !backends[name] {
				return fmt.Errorf("answer %q is no backend", name)
			}
			return nil
		})
	}

	// kubectl logs reaches the kubelet too.
	if out, err := c.kubectl("logs", "deployment/backend", "--tail", "50"); err != nil || !strings.Contains(out, "GET /") {
		t.Errorf("kubectl logs: %v: %s", err, out)
	}

	t.Run("fifty pods at once on one node", func(t *testing.T) { kubeletsChurn(t, c, cs, "n2", 50) })
	t.Run("upstream e2e", func(t *testing.T) { upstreamConformance(t, c, conformanceFocus) })
}

// kubeletsChurn creates n pods on node at once through the API, waits
// until all run with distinct addresses, deletes them all at once, and
// checks that weft-cni leaked neither an address nor a veth.
func kubeletsChurn(t *testing.T, c *cluster, cs kubernetes.Interface, node string, n int) {
	ctx := context.Background()
	before := nodeWiring(t, c, node)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("churn-%d", i), Labels: map[string]string{"app": "churn"}},
				Spec: corev1.PodSpec{
					NodeName:                      node,
					TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{{Name: "pause", Image: lab.AgnhostImage,
						ImagePullPolicy: corev1.PullIfNotPresent, Args: []string{"pause"}}},
				},
			}, metav1.CreateOptions{})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Minute, fmt.Sprintf("%d pods running on %s", n, node), func() error {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=churn"})
		if err != nil {
			return err
		}
		ips := map[string]bool{}
		for _, p := range pods.Items {
			if podReady(&p) && p.Status.PodIP != "" {
				ips[p.Status.PodIP] = true
			}
		}
		if len(ips) != n {
			return fmt.Errorf("%d of %d ready with distinct addresses", len(ips), n)
		}
		return nil
	})
	t.Logf("%d pods created at once on %s, all Ready in %s", n, node, time.Since(start).Round(100*time.Millisecond))
	if got := nodeWiring(t, c, node); got.addrs != before.addrs+n || got.veths != before.veths+n {
		t.Errorf("with %d more pods: %d addresses and %d veths, before %d and %d", n, got.addrs, got.veths, before.addrs, before.veths)
	}

	start = time.Now()
	err := cs.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)},
		metav1.ListOptions{LabelSelector: "app=churn"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Minute, "every churn pod gone and unwired", func() error {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=churn"})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d pods left", len(pods.Items))
		}
		if got := nodeWiring(t, c, node); got != before {
			return fmt.Errorf("%d addresses and %d veths left, %d and %d before", got.addrs, got.veths, before.addrs, before.veths)
		}
		return nil
	})
	t.Logf("%d pods deleted at once, their addresses and veths gone in %s", n, time.Since(start).Round(100*time.Millisecond))
}

// wiring is what weft-cni holds on a node: reserved addresses and veths.
type wiring struct{ addrs, veths int }

func nodeWiring(t *testing.T, c *cluster, node string) wiring {
	t.Helper()
	store, err := ipam.Open(c.layout.Node(node).CNIDataDir)
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := store.List()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "-n", c.layout.NodeNS(node), "-o", "link", "show", "type", "veth").Output()
	if err != nil {
		t.Fatal(err)
	}
	return wiring{addrs: len(allocs), veths: strings.Count(string(out), "\n")}
}

// kubectl runs the control plane's kubectl against the lab as the admin.
func (c *cluster) kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	argv := append([]string{"netns", "exec", c.layout.CPNS(), filepath.Join(repoRoot(), "bin", "kubectl"),
		"--kubeconfig", c.layout.AdminKubeconfig()}, args...)
	out, err := exec.CommandContext(ctx, "ip", argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// httpGet GETs url from the namespace ns and returns the body, trimmed.
func httpGet(ns, url string) (string, error) {
	resp, err := netnsHTTPClient(lab.NetNSPath(ns), 3*time.Second).Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), err
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func uniq(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return slices.Compact(s)
}

// conformanceFocus is the part of the upstream e2e suite CI runs against
// the --kubelets lab, about 7 minutes of it: every DNS and pod-networking
// [Conformance] test, the Service, hostPort and proxy ones that carry
// traffic through weft, and two of the NetworkPolicy suite (each probes a
// 3x3 matrix of pods). `make conformance` runs every sig-network
// [Conformance] test (docs/conformance.md).
const conformanceFocus = `\[sig-network\] (DNS .*|Networking Granular Checks: Pods .*|` +
	`Services should (serve a basic endpoint from pods|be able to create a functioning NodePort service|have session affinity work for service with type clusterIP) .*|` +
	`HostPort .*|Proxy version v1 should proxy through a service and a pod )\[Conformance\]|` +
	`\[sig-network\] Netpol NetworkPolicy between server and client should (support a 'default-deny-ingress' policy|` +
	`enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector) `

// upstreamConformance runs e2e.test (built by `make controlplane` from the
// same module as the control plane) against lab c and fails on any failure
// tests/conformance does not list as known.
func upstreamConformance(t *testing.T, c *cluster, focus string) {
	e2e := filepath.Join(repoRoot(), "bin", "e2e.test")
	if _, err := os.Stat(e2e); err != nil {
		t.Fatalf("the upstream e2e suite is not built (`make controlplane` builds bin/e2e.test): %v", err)
	}
	report := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", c.layout.CPNS(), e2e,
		"--kubeconfig="+c.layout.AdminKubeconfig(), "--provider=skeleton", "--report-dir="+report,
		"--ginkgo.focus="+focus, `--ginkgo.skip=\[Disruptive\]|\[Flaky\]`, "--ginkgo.no-color",
		"--minStartupPods=0")
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(repoRoot(), "bin")+":"+os.Getenv("PATH"))
	out, runErr := cmd.CombinedOutput()
	files, _ := filepath.Glob(filepath.Join(report, "junit*.xml"))
	r, err := conformance.Parse(files...)
	if err != nil {
		t.Fatalf("e2e.test: %v (run: %v)\n%s", err, runErr, tail(out, 4000))
	}
	t.Logf("upstream e2e (focus %s): %s in %s", focus, r, time.Since(start).Round(time.Second))
	for _, f := range r.Failures {
		if why, ok := conformance.Known[f]; ok {
			t.Logf("known failure: %s (%s)", f, why)
		}
	}
	for _, f := range r.Fixed() {
		t.Logf("now passes, remove it from conformance.Known: %s", f)
	}
	if r.Ran == 0 {
		t.Errorf("no test ran\n%s", tail(out, 4000))
	}
	if u := r.Unexpected(); len(u) > 0 {
		t.Errorf("%d unexpected failures:\n  %s\n%s", len(u), strings.Join(u, "\n  "), tail(out, 8000))
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
