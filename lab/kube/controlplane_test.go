package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftnet/weft/internal/netnstest"
	"github.com/weftnet/weft/internal/poll"
)

// binDir is where scripts/build-controlplane.sh puts the binaries by
// default (the repository's bin/), unless WEFT_CONTROLPLANE_BIN says.
func binDir(t *testing.T) string {
	if d := os.Getenv("WEFT_CONTROLPLANE_BIN"); d != "" {
		return d
	}
	d, err := filepath.Abs("../../bin")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// needControlPlane skips unless the test can run the real control plane,
// and returns the binaries' directory.
func needControlPlane(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping in -short: starts a real control plane")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	bins := binDir(t)
	if err := BinariesBuilt(bins); err != nil {
		t.Skipf("SKIPPING: REAL CONTROL PLANE NOT BUILT: %v", err)
	}
	return bins
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// eventually polls f every 200ms until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	poll.Eventually(t, timeout, 200*time.Millisecond, what, f)
}

// processesOf lists the pids of this control plane's components still
// running, found by scanning /proc (not the pid files).
func processesOf(dir string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		for _, name := range components {
			if running(pid, name, dir) {
				out = append(out, fmt.Sprintf("%s[%d]", name, pid))
			}
		}
	}
	return out
}

// TestControlPlane starts the real etcd, kube-apiserver and
// kube-controller-manager in a fresh netns and checks, through client-go,
// that each does its job: the API answers, node IPAM assigns pod CIDRs,
// RBAC applies to a ServiceAccount token, the EndpointSlice controller
// follows a Service, and Stop leaves nothing running.
func TestControlPlane(t *testing.T) {
	bins := needControlPlane(t)
	addr := netip.MustParseAddr("192.168.250.2")
	netns := netnstest.Named(t, "weft-kubetest", addr)
	// WEFT_KUBE_TEST_DIR keeps the state (logs, certificates) for a look.
	dir := os.Getenv("WEFT_KUBE_TEST_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	cfg := Config{Dir: dir, NetNS: netns, Address: addr, BinDir: bins,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))}
	began := time.Now()
	cp, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("control plane ready in %s (pids %v)", time.Since(began).Round(time.Millisecond), cp.Pids())
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cp.Stop()
		}
	})

	client, err := kubernetes.NewForConfig(cp.AdminRESTConfig())
	if err != nil {
		t.Fatal(err)
	}

	t.Run("api answers", func(t *testing.T) {
		v, err := client.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v.GitVersion != "v1.34.3" {
			t.Errorf("server version %s, want v1.34.3", v.GitVersion)
		}
		// The kubernetes Service: first address of the service range,
		// backed by the advertise address.
		svc, err := client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Spec.ClusterIP != "10.96.0.1" {
			t.Errorf("kubernetes Service ClusterIP %s, want 10.96.0.1", svc.Spec.ClusterIP)
		}
		eventually(t, 30*time.Second, "kubernetes EndpointSlice", func() error {
			s, err := client.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(s.Endpoints) != 1 || len(s.Endpoints[0].Addresses) != 1 || s.Endpoints[0].Addresses[0] != addr.String() {
				return fmt.Errorf("endpoints %+v", s.Endpoints)
			}
			return nil
		})
		// Load finds the running processes by their pid files.
		if l, err := Load(cfg); err != nil {
			t.Errorf("Load: %v", err)
		} else if fmt.Sprint(l.Pids()) != fmt.Sprint(cp.Pids()) {
			t.Errorf("Load pids %v, Start pids %v", l.Pids(), cp.Pids())
		}
		// The admin kubeconfig on disk works (dialling inside the netns).
		rc, err := clientcmd.BuildConfigFromFlags("", cp.AdminKubeconfig())
		if err != nil {
			t.Fatal(err)
		}
		rc.Dial = dialer(cfg.netnsPath())
		if _, err := kubernetes.NewForConfigOrDie(rc).CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); err != nil {
			t.Errorf("admin kubeconfig: %v", err)
		}
	})

	t.Run("node ipam", func(t *testing.T) {
		cluster := netip.MustParsePrefix("10.244.0.0/16")
		seen := map[string]string{}
		for i, name := range []string{"n1", "n2"} {
			node := &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
					{Type: corev1.NodeInternalIP, Address: fmt.Sprintf("192.168.250.%d", 11+i)},
				}},
			}
			if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range []string{"n1", "n2"} {
			eventually(t, 30*time.Second, "podCIDR of "+name, func() error {
				n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				if n.Spec.PodCIDR == "" {
					return fmt.Errorf("no podCIDR yet")
				}
				p, err := netip.ParsePrefix(n.Spec.PodCIDR)
				if err != nil || p.Bits() != 24 || !cluster.Contains(p.Addr()) {
					t.Fatalf("node %s podCIDR %q: not a /24 of %s", name, n.Spec.PodCIDR, cluster)
				}
				if other, dup := seen[n.Spec.PodCIDR]; dup {
					t.Fatalf("nodes %s and %s both got %s", other, name, n.Spec.PodCIDR)
				}
				seen[n.Spec.PodCIDR] = name
				return nil
			})
		}
		t.Logf("pod CIDRs: %v", seen)
	})

	t.Run("rbac on a service account token", func(t *testing.T) {
		const ns, sa = "weft-system", "weft"
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "weft-node-reader"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "weft-node-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "weft-node-reader"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "weft.kubeconfig")
		if err := cp.ServiceAccountKubeconfig(ctx, TokenKubeconfig{Namespace: ns, ServiceAccount: sa, TTL: time.Hour, Out: out}); err != nil {
			t.Fatal(err)
		}
		rc, err := clientcmd.BuildConfigFromFlags("", out)
		if err != nil {
			t.Fatal(err)
		}
		if rc.BearerToken == "" || len(rc.CertData) != 0 || rc.Host != cp.Server() {
			t.Fatalf("service-account kubeconfig: host %s, token %t, cert %t", rc.Host, rc.BearerToken != "", len(rc.CertData) != 0)
		}
		rc.Dial = dialer(cfg.netnsPath())
		saClient := kubernetes.NewForConfigOrDie(rc)
		// The RBAC authorizer learns of the new binding from its informer:
		// poll until it has, rather than assume it already did.
		var nodes *corev1.NodeList
		var listErr error
		_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
			nodes, listErr = saClient.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			return listErr == nil, nil
		})
		if listErr != nil {
			t.Fatalf("service account cannot list nodes: %v", listErr)
		}
		if len(nodes.Items) != 2 {
			t.Errorf("service account sees %d nodes, want 2", len(nodes.Items))
		}
		_, err = saClient.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("service account listing secrets: err %v, want Forbidden", err)
		}
		if !strings.Contains(err.Error(), "system:serviceaccount:"+ns+":"+sa) {
			t.Errorf("forbidden for the wrong user: %v", err)
		}
	})

	t.Run("endpointslice controller", func(t *testing.T) {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": "web"},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		svc, err := client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ip := netip.MustParseAddr(svc.Spec.ClusterIP); !netip.MustParsePrefix("10.96.0.0/16").Contains(ip) {
			t.Errorf("ClusterIP %s outside the service range", ip)
		}
		sel := metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"}
		eventually(t, 30*time.Second, "EndpointSlice of web", func() error {
			l, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, sel)
			if err != nil {
				return err
			}
			if len(l.Items) == 0 {
				return fmt.Errorf("none yet")
			}
			return nil
		})

		// A pod on n1, its status posted as a kubelet would: the
		// controller must put its IP in the slice.
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{
				Name: "web", Image: "example.invalid/web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			}}},
		}
		pod, err = client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		const podIP = "10.244.0.5"
		pod.Status = corev1.PodStatus{
			Phase:  corev1.PodRunning,
			PodIP:  podIP,
			PodIPs: []corev1.PodIP{{IP: podIP}},
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
				{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
			},
		}
		if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "pod in EndpointSlice of web", func() error {
			l, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, sel)
			if err != nil {
				return err
			}
			for _, s := range l.Items {
				for _, e := range s.Endpoints {
					if len(e.Addresses) == 1 && e.Addresses[0] == podIP && e.Conditions.Ready != nil && *e.Conditions.Ready &&
						e.NodeName != nil && *e.NodeName == "n1" && len(s.Ports) == 1 && *s.Ports[0].Port == 8080 {
						return nil
					}
				}
			}
			return fmt.Errorf("slices %+v", l.Items)
		})
	})

	t.Run("stop", func(t *testing.T) {
		pids := cp.Pids()
		if err := cp.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		stopped = true
		for name, pid := range pids {
			if !exited(pid) {
				t.Errorf("%s (pid %d) still running after Stop", name, pid)
			}
		}
		if left := processesOf(dir); len(left) > 0 {
			t.Errorf("processes left: %v", left)
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		if err := Stop(dir); err != nil {
			t.Errorf("Stop(dir) after Stop: %v", err)
		}
		if _, err := Load(cfg); err == nil {
			t.Error("Load after Stop found a running control plane")
		}
	})
}

// TestStartOutlivesCaller starts the control plane from a child process
// that exits at once, as `weft lab up` does, then reattaches with Load and
// stops it by pid files, as `weft lab down` does after a crash.
func TestStartOutlivesCaller(t *testing.T) {
	bins := needControlPlane(t)
	addr := netip.MustParseAddr("192.168.251.2")
	netns := netnstest.Named(t, "weft-kubetest", addr)
	dir := t.TempDir()
	cfg := Config{Dir: dir, NetNS: netns, Address: addr, BinDir: bins}
	t.Cleanup(func() { _ = Stop(dir) })

	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self)
	child.Env = append(os.Environ(), startChildEnv+"="+string(js))
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("child Start: %v: %s", err, out)
	}

	cp, err := Load(cfg)
	if err != nil {
		t.Fatalf("Load after the starting process exited: %v", err)
	}
	client := kubernetes.NewForConfigOrDie(cp.AdminRESTConfig())
	if _, err := client.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("API after the starting process exited: %v", err)
	}
	if err := Stop(dir); err != nil {
		t.Fatalf("Stop(dir): %v", err)
	}
	for name, pid := range cp.Pids() {
		if !exited(pid) {
			t.Errorf("%s (pid %d) still running after Stop(dir)", name, pid)
		}
	}
	if left := processesOf(dir); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
}
