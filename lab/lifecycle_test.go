package lab

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fakeWeftBin links the test binary as "weft" (and builds the real weft-cni
// beside it when it builds) and turns fake mode on for children.
func fakeWeftBin(t *testing.T) (binDir string, haveCNI bool) {
	t.Helper()
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, filepath.Join(dir, "weft")); err != nil {
		t.Fatal(err)
	}
	t.Setenv(fakeEnv, "1")
	_, here, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, CNIPluginType), "./cmd/weft-cni")
	cmd.Dir = filepath.Join(filepath.Dir(here), "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("weft-cni does not build, pods are not tested: %v\n%s", err, out)
		return dir, false
	}
	return dir, true
}

// TestLifecycleWithFakeAgents drives up, node stop/start/add/del, pods,
// exec and down with fake agents (see fakeagent_test.go) and the real
// weft-cni.
func TestLifecycleWithFakeAgents(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	bin, haveCNI := fakeWeftBin(t)
	lb := rootLab(t, "f", Options{Weft: filepath.Join(bin, "weft"), BinDir: bin, ReadyTimeout: 20 * time.Second})
	ctx := context.Background()
	spec := Spec{Nodes: 2, MTU: 1400}
	if haveCNI {
		spec.PodsPerNode = 1
	}
	if err := lb.Up(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := lb.Up(ctx, spec); err == nil || !strings.Contains(err.Error(), "weft lab down") {
		t.Errorf("second up: %v; want an error pointing at weft lab down", err)
	}
	st, err := lb.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 2 || st.Backend != "wireguard" || st.MTU != 1400 {
		t.Fatalf("status: %+v", st)
	}
	for i, n := range st.Nodes {
		if !n.Running || n.PodCIDR != []string{"10.244.1.0/24", "10.244.2.0/24"}[i] || n.NetNS != lb.Layout().NodeNS(n.Name) {
			t.Errorf("node %+v", n)
		}
		// The agent saw the node's own directory on /var/run/wireguard.
		b, err := os.ReadFile(filepath.Join(lb.Layout().Node(n.Name).WireGuardDir, fakeMarker))
		if err != nil || string(b) != n.Name {
			t.Errorf("node %s: wireguard view: %q, %v", n.Name, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(wgRunDir, fakeMarker)); err == nil {
		t.Errorf("an agent wrote into the host's %s", wgRunDir)
	}

	// exec enters the same view.
	argv, err := lb.ExecArgv("n2", []string{"cat", filepath.Join(wgRunDir, fakeMarker)})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := (ExecRunner{}).Run(ctx, argv...); err != nil || string(out) != "n2" {
		t.Errorf("exec n2: %q, %v", out, err)
	}

	if haveCNI {
		if len(st.Pods) != 2 {
			t.Fatalf("pods: %+v", st.Pods)
		}
		p := st.Pods[0]
		if p.Node != "n1" || p.Name != "p1" || !netip.MustParsePrefix("10.244.1.0/24").Contains(p.IP) {
			t.Errorf("pod %+v", p)
		}
		argv, err := lb.ExecArgv("n1", []string{"ping", "-c1", "-W2", p.IP.String()})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := (ExecRunner{}).Run(ctx, argv...); err != nil {
			t.Errorf("node n1 -> its pod %s: %v\n%s", p.IP, err, out)
		}
		if err := lb.DeletePod(ctx, "n1", "p1"); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(NetNSPath(p.NetNS)); err == nil {
			t.Errorf("pod netns %s left after pod del", p.NetNS)
		}
		if _, err := lb.AddPod(ctx, "n1", "p1", PodOptions{}); err != nil {
			t.Errorf("re-add pod: %v", err)
		}
	}

	// A crash and a restart.
	pid := st.Nodes[1].PID
	if err := lb.StopNode(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if agentRunning(pid, lb.Layout().Node("n2").Config) {
		t.Errorf("agent pid %d still runs after stop", pid)
	}
	if _, err := os.Lstat(NetNSPath(lb.Layout().NodeNS("n2"))); err != nil {
		t.Errorf("stop removed the node's netns: %v", err)
	}
	if err := lb.StartNode(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if st, _ := lb.Status(); !st.Nodes[1].Running || st.Nodes[1].PID == pid {
		t.Errorf("after start: %+v", st.Nodes[1])
	}

	// A node comes and goes.
	name, err := lb.AddNode(ctx, "")
	if err != nil || name != "n3" {
		t.Fatalf("node add: %q, %v", name, err)
	}
	if haveCNI {
		if _, err := lb.AddPod(ctx, "n3", "web", PodOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := lb.DeleteNode(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	if nss, _ := Namespaces(lb.Layout().NodeNS("n3")); len(nss) > 0 {
		t.Errorf("namespaces left after node del: %v", nss)
	}
	st, _ = lb.Status()
	if len(st.Nodes) != 2 {
		t.Errorf("nodes after del: %+v", st.Nodes)
	}
	for _, p := range st.Pods {
		if p.Node == "n3" {
			t.Errorf("pod of deleted node still recorded: %+v", p)
		}
	}

	pids := []int{st.Nodes[0].PID, st.Nodes[1].PID}
	if err := lb.Down(ctx); err != nil {
		t.Fatal(err)
	}
	for i, pid := range pids {
		if agentRunning(pid, lb.Layout().Node(st.Nodes[i].Name).Config) {
			t.Errorf("agent pid %d survived down", pid)
		}
	}
	if _, err := os.Stat(lb.Layout().Dir()); err == nil {
		t.Errorf("state directory %s left after down", lb.Layout().Dir())
	}
}
