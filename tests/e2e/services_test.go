package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/lab"
	"github.com/weftnet/weft/lab/probe"
)

// TestServices runs the Service proxy in a 3-node --kube lab with no
// kube-proxy: three backends (one per node) behind backend-service, a
// client pod per node, and the lab's internet as the outside world.
func TestServices(t *testing.T) {
	c, cs := newKubeCluster(t, "--nodes", "3")
	ctx := context.Background()
	nodes := []string{"n1", "n2", "n3"}
	for i, n := range nodes {
		c.mustWeft("lab", "pod", "add", n, fmt.Sprintf("b%d", i+1), "--name", c.name, "--labels", "app=backend")
		c.mustWeft("lab", "pod", "add", n, fmt.Sprintf("c%d", i+1), "--name", c.name, "--labels", "role=client")
	}
	pods := c.pods()
	servers := startPodServers(t, pods)
	defer closeAll(servers)
	byName := map[string]labPod{}
	backendIPs := map[netip.Addr]string{}
	for _, p := range pods {
		byName[p.Name] = p
		if strings.HasPrefix(p.Name, "b") {
			backendIPs[p.Addr()] = p.Name
		}
	}
	spread := func(t *testing.T, ns string, to netip.AddrPort, n int) map[string]int {
		t.Helper()
		return spreadOver(t, ns, to, n, backendIPs)
	}
	inet := lab.NetNSPath(c.layout.InetNS())
	nodeIP := func(n string) netip.Addr {
		a, _ := lab.NodeAddr(int(n[1] - '0'))
		return a
	}

	c.applyYAML(t, `apiVersion: v1
kind: Service
metadata: {name: backend-service, namespace: default}
spec:
  type: NodePort
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: local-service, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30081}]
---
apiVersion: v1
kind: Service
metadata: {name: node-local, namespace: default}
spec:
  internalTrafficPolicy: Local
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: sticky, namespace: default}
spec:
  sessionAffinity: ClientIP
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty, namespace: default}
spec:
  type: NodePort
  selector: {app: nothing}
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30082}]
`)
	vip := func(name string) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr(clusterIP(t, cs, "default", name)), 80)
	}
	backend := vip("backend-service")
	eventually(t, 30*time.Second, "backend-service answers from every client pod", func() error {
		for _, cl := range []string{"c1", "c2", "c3"} {
			if _, err := answer(byName[cl].NSPath(), backend); err != nil {
				return fmt.Errorf("%s: %w", cl, err)
			}
		}
		return nil
	})

	t.Run("curl backend-service:80 through the search path from every node, spread over every backend", func(t *testing.T) {
		for _, cl := range []string{"c1", "c2", "c3"} {
			out := c.mustWeft("lab", "exec", "--name", c.name, byName[cl].Node+"/"+cl, "--", "curl", "-sS", "--max-time", "3", "--http0.9", "http://backend-service:80/")
			if a, err := probe.ParseAnswer(out); err != nil || backendIPs[a.Server.Addr()] == "" || a.Seen.Addr() != byName[cl].Addr() {
				t.Errorf("%s: curl backend-service:80 = %q (%v), want a backend seeing the client's own address", cl, out, err)
			}
			seen := spread(t, byName[cl].NSPath(), backend, 40)
			if len(seen) != 3 {
				t.Errorf("%s: 40 connections reached %v, want all three backends", cl, seen)
			}
		}
	})

	t.Run("NodePort from outside on every node, over backends on every node", func(t *testing.T) {
		all := map[string]int{}
		for _, n := range nodes {
			to := netip.AddrPortFrom(nodeIP(n), 30080)
			for b, k := range spread(t, inet, to, 15) {
				all[b] += k
			}
			a, err := answer(inet, to)
			if err != nil {
				t.Fatal(err)
			}
			if a.Seen.Addr() == lab.InetAddr {
				t.Errorf("%s: the backend saw the client's address through externalTrafficPolicy Cluster; replies could not return", to)
			}
		}
		if len(all) != 3 {
			t.Errorf("node ports reached %v, want all three backends", all)
		}
	})

	t.Run("externalTrafficPolicy Local: the node's own backend, client address kept, health check", func(t *testing.T) {
		for i, n := range nodes {
			a, err := answer(inet, netip.AddrPortFrom(nodeIP(n), 30081))
			if err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if want := fmt.Sprintf("b%d", i+1); backendIPs[a.Server.Addr()] != want || a.Seen.Addr() != lab.InetAddr {
				t.Errorf("%s: answered by %s seeing %s, want %s seeing %s", n, backendIPs[a.Server.Addr()], a.Seen, want, lab.InetAddr)
			}
		}
		svc, err := cs.CoreV1().Services("default").Get(ctx, "local-service", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hc := svc.Spec.HealthCheckNodePort
		if code, body := healthCheck(t, inet, nodeIP("n1"), hc); code != 200 || !strings.Contains(body, `"localEndpoints":1`) {
			t.Errorf("health check on n1: %d %s, want 200 with one local endpoint", code, body)
		}
		c.mustWeft("lab", "pod", "label", "default/b3", "app-", "--name", c.name)
		defer c.mustWeft("lab", "pod", "label", "default/b3", "app=backend", "--name", c.name)
		eventually(t, 20*time.Second, "n3's health check says it has no endpoint", func() error {
			if code, body := healthCheck(t, inet, nodeIP("n3"), hc); code != 503 {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
		if _, err := answerWithin(inet, netip.AddrPortFrom(nodeIP("n3"), 30081), time.Second); err == nil {
			t.Error("n3's node port answered with no local endpoint")
		}
	})

	t.Run("internalTrafficPolicy Local: only the node's own backend", func(t *testing.T) {
		to := vip("node-local")
		eventually(t, 20*time.Second, "node-local from c1", func() error {
			_, err := answer(byName["c1"].NSPath(), to)
			return err
		})
		if seen := spread(t, byName["c1"].NSPath(), to, 20); len(seen) != 1 || seen["b1"] != 20 {
			t.Errorf("node-local from c1 reached %v, want only b1", seen)
		}
	})

	t.Run("session affinity keeps a client on one backend", func(t *testing.T) {
		to := vip("sticky")
		eventually(t, 20*time.Second, "sticky answers", func() error { _, err := answer(byName["c2"].NSPath(), to); return err })
		for _, cl := range []string{"c1", "c2", "c3"} {
			if seen := spread(t, byName[cl].NSPath(), to, 15); len(seen) != 1 {
				t.Errorf("%s: sticky reached %v, want one backend", cl, seen)
			}
		}
	})

	t.Run("hairpin: a backend reaching itself through its Service", func(t *testing.T) {
		b1 := byName["b1"]
		eventually(t, 10*time.Second, "b1 reaches itself through backend-service", func() error {
			a, err := answer(b1.NSPath(), backend)
			if err != nil {
				return err
			}
			if a.Server.Addr() != b1.Addr() {
				return fmt.Errorf("reached %s", a.Server)
			}
			return nil
		})
	})

	t.Run("no endpoints: refused at once, by cluster IP and node port", func(t *testing.T) {
		for _, tc := range []struct {
			from string
			to   netip.AddrPort
		}{{byName["c1"].NSPath(), vip("empty")}, {inet, netip.AddrPortFrom(nodeIP("n2"), 30082)}} {
			start := time.Now()
			_, err := answerWithin(tc.from, tc.to, 3*time.Second)
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Errorf("%s: %v, want connection refused", tc.to, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s: refused after %s, want at once", tc.to, d)
			}
		}
	})

	t.Run("an endpoint going away gets no new connections within one sync", func(t *testing.T) {
		start := time.Now()
		c.mustWeft("lab", "pod", "label", "default/b2", "app-", "--name", c.name)
		defer c.mustWeft("lab", "pod", "label", "default/b2", "app=backend", "--name", c.name)
		took := eventually(t, 20*time.Second, "b2 out of backend-service on every node", func() error {
			for _, cl := range []string{"c1", "c2", "c3"} {
				if seen := spread(t, byName[cl].NSPath(), backend, 12); seen["b2"] > 0 || len(seen) != 2 {
					return fmt.Errorf("%s reached %v", cl, seen)
				}
			}
			return nil
		})
		t.Logf("label removed to b2 out of rotation on all nodes: %s (EndpointSlice controller included; the command itself %s)",
			took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond)-took.Round(time.Millisecond))
	})

	t.Run("NetworkPolicy applies to the real pod addresses after DNAT", func(t *testing.T) {
		c.mustWeft("lab", "pod", "add", "n1", "intruder", "--name", c.name)
		intruder := c.podNamed("intruder")
		c.applyYAML(t, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: clients-only, namespace: default}
spec:
  podSelector: {matchLabels: {app: backend}}
  policyTypes: [Ingress]
  ingress: [{from: [{podSelector: {matchLabels: {role: client}}}]}]
`)
		eventually(t, 20*time.Second, "the intruder is refused by every backend behind the Service", func() error {
			for range 6 {
				if a, err := answerWithin(intruder.NSPath(), backend, 300*time.Millisecond); err == nil {
					return fmt.Errorf("intruder reached %s", backendIPs[a.Server.Addr()])
				}
			}
			return nil
		})
		if seen := spread(t, byName["c3"].NSPath(), backend, 30); len(seen) != 3 {
			t.Errorf("a client reached %v with the policy in place, want all three backends", seen)
		}
		if err := cs.NetworkingV1().NetworkPolicies("default").Delete(ctx, "clients-only", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("kube-proxy's table on a node: weft stands aside there, and comes back", func(t *testing.T) {
		ns := c.layout.NodeNS("n3")
		nft := func(args ...string) (string, error) {
			out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...).CombinedOutput()
			return string(out), err
		}
		if _, err := nft("list", "table", "ip", "weft-services"); err != nil {
			t.Fatalf("n3 has no service table: %v", err)
		}
		if out, err := nft("add", "table", "ip", "kube-proxy"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		eventually(t, 30*time.Second, "n3 removes its service table", func() error {
			if _, err := nft("list", "table", "ip", "weft-services"); err == nil {
				return fmt.Errorf("still there")
			}
			return nil
		})
		st, err := c.agentStatus("n3")
		if err != nil || st.Services == nil || !strings.HasPrefix(st.Services.Proxy, "kube-proxy") {
			t.Errorf("n3 status says proxy %+v (%v), want kube-proxy", st.Services, err)
		}
		if _, err := nft("delete", "table", "ip", "kube-proxy"); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "n3 serves Services again", func() error {
			_, err := answer(byName["c3"].NSPath(), backend)
			return err
		})
	})

	t.Run("LoadBalancer: an address from the pool, announced by one node, failing over when its agent dies", func(t *testing.T) {
		c.applyYAML(t, `apiVersion: v1
kind: Service
metadata: {name: lb-service, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: cloud-owned, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: example.com/cloud
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080}]
`)
		var lbIP netip.Addr
		took := eventually(t, 30*time.Second, "lb-service gets an address from the pool", func() error {
			svc, err := cs.CoreV1().Services("default").Get(ctx, "lb-service", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if len(svc.Status.LoadBalancer.Ingress) != 1 {
				return fmt.Errorf("ingress %+v", svc.Status.LoadBalancer.Ingress)
			}
			lbIP = netip.MustParseAddr(svc.Status.LoadBalancer.Ingress[0].IP)
			if !lab.LBPool.Contains(lbIP) {
				return fmt.Errorf("%s is outside the pool %s", lbIP, lab.LBPool)
			}
			return nil
		})
		t.Logf("address %s assigned %s after the Service was applied", lbIP, took.Round(time.Millisecond))
		to := netip.AddrPortFrom(lbIP, 80)
		eventually(t, 20*time.Second, "the internet reaches the address", func() error { _, err := answer(inet, to); return err })
		if seen := spread(t, inet, to, 40); len(seen) != 3 {
			t.Errorf("the load-balancer address reached %v, want all three backends", seen)
		}
		if svc, err := cs.CoreV1().Services("default").Get(ctx, "cloud-owned", metav1.GetOptions{}); err != nil || len(svc.Status.LoadBalancer.Ingress) != 0 {
			t.Errorf("a Service of another loadBalancerClass got %+v (%v), want nothing from weft", svc.Status.LoadBalancer.Ingress, err)
		}

		owner := announcer(t, c, nodes, lbIP)
		start := time.Now()
		c.mustWeft("lab", "node", "stop", owner, "--name", c.name)
		var next string
		took = eventually(t, 30*time.Second, "another node announces "+lbIP.String(), func() error {
			next = announcer(t, c, nodes, lbIP)
			if next == owner || next == "" {
				return fmt.Errorf("still %q", next)
			}
			return nil
		})
		t.Logf("agent on %s killed; %s announced by %s after %s", owner, lbIP, next, time.Since(start).Round(time.Millisecond))
		defer c.mustWeft("lab", "node", "start", owner, "--name", c.name)
		// The dead agent took its node's embedded tunnel with it: the
		// backend there is cut off until its endpoint goes, the others answer.
		eventually(t, 10*time.Second, "the address answers through "+next, func() error {
			a, err := answerWithin(inet, to, 500*time.Millisecond)
			if err == nil && backendIPs[a.Server.Addr()] == "" {
				err = fmt.Errorf("answered by %s", a.Server)
			}
			return err
		})
	})

	t.Run("status and metrics", func(t *testing.T) {
		st, err := c.agentStatus("n1")
		if err != nil {
			t.Fatal(err)
		}
		if s := st.Services; s == nil || !s.Synced || s.Proxy != "weft" || s.Services < 5 || s.LastError != "" {
			t.Errorf("n1 services status %+v", st.Services)
		}
		m, err := nodeMetrics(c, "n1")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"weft_services_services ", "weft_services_change_to_applied_seconds_count ", "weft_services_sync_duration_seconds_count "} {
			if !strings.Contains(m, name) {
				t.Errorf("metrics lack %s", name)
			}
		}
	})
}

// announcer is the node whose MAC the internet holds for addr: it
// connects once (resolving addr by ARP if it has no entry), then reads its
// neighbour entry.
func announcer(t *testing.T, c *cluster, nodes []string, addr netip.Addr) string {
	t.Helper()
	inet := c.layout.InetNS()
	_, _ = answerWithin(lab.NetNSPath(inet), netip.AddrPortFrom(addr, 80), 500*time.Millisecond)
	out, err := exec.Command("ip", "-n", inet, "neigh", "show", addr.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("ip neigh: %v %s", err, out)
	}
	f := strings.Fields(string(out))
	i := slices.Index(f, "lladdr")
	if i < 0 || i+1 >= len(f) {
		return ""
	}
	for _, n := range nodes {
		link, err := exec.Command("ip", "-n", c.layout.NodeNS(n), "-o", "link", "show", "eth0").CombinedOutput()
		if err == nil && strings.Contains(string(link), "link/ether "+f[i+1]+" ") {
			return n
		}
	}
	return ""
}

// applyYAML applies a manifest to the lab's API server.
func (c *cluster) applyYAML(t *testing.T, doc string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "objects.yaml")
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mustWeft("lab", "apply", "--name", c.name, "-f", f)
}

func (c *cluster) podNamed(name string) labPod {
	for _, p := range c.pods() {
		if p.Name == name {
			return p
		}
	}
	c.t.Fatalf("no pod %s", name)
	return labPod{}
}

func answer(ns string, to netip.AddrPort) (probe.Answer, error) {
	return answerWithin(ns, to, 2*time.Second)
}

func answerWithin(ns string, to netip.AddrPort, d time.Duration) (probe.Answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return probe.TCPAnswer(ctx, ns, to)
}

// spreadOver connects n times and counts the answers by the name of the
// pod that answered (its address when names lacks it).
func spreadOver(t *testing.T, ns string, to netip.AddrPort, n int, names map[netip.Addr]string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		a, err := answer(ns, to)
		if err != nil {
			t.Fatalf("%s: %v", to, err)
		}
		name, ok := names[a.Server.Addr()]
		if !ok {
			name = a.Server.Addr().String()
		}
		got[name]++
	}
	return got
}

// healthCheck GETs a healthCheckNodePort from the namespace at ns.
func healthCheck(t *testing.T, ns string, node netip.Addr, port int32) (int, string) {
	t.Helper()
	resp, err := netnsHTTPClient(ns, 2*time.Second).Get(fmt.Sprintf("http://%s/", netip.AddrPortFrom(node, uint16(port))))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(body)
}

// netnsHTTPClient is an HTTP client whose connections are made from the
// namespace at ns (the transport dials on goroutines of its own, so each
// dial enters the namespace itself).
func netnsHTTPClient(ns string, timeout time.Duration) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := probe.InNetns(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial}}
}
