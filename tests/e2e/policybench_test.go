package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/weftnet/weft/lab"
	"github.com/weftnet/weft/lab/kube"
	"github.com/weftnet/weft/lab/probe"
)

var policyBench = flag.Bool("policy.bench", false, "measure NetworkPolicy enforcement: label-change-to-enforced time and pod-to-pod throughput, each with no policy and with 1,000 policies over 5,000 pods (make bench)")

// TestPolicyBench measures, in one 2-node --kube lab and one run:
//
//   - label change to enforced: a client pod gains the label a policy
//     allows, and the time until its first connection gets through is
//     taken (then the label is removed and the time until it is blocked);
//     first in the lab as it is, then with 1,000 more policies and 5,000
//     more Pods in the API server;
//   - pod-to-pod TCP throughput (iperf3, one stream) between the two
//     nodes with no policy, with the destination isolated (the client
//     allowed by a policy), and the same with the 1,000 policies and 5,000
//     Pods added.
//
// It only reports; it asserts that enforcement happens, never how fast.
func TestPolicyBench(t *testing.T) {
	if !*policyBench {
		t.Skip("a measurement; run with -policy.bench (make bench)")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Fatal("iperf3 is missing: make deps")
	}
	c, _ := newKubeCluster(t, "--nodes", "2")
	cs := fastClient(t, c)
	ctx := context.Background()
	c.mustWeft("lab", "pod", "add", "n1", "client", "--name", c.name, "-n", "bench", "-l", "app=client")
	c.mustWeft("lab", "pod", "add", "n2", "server", "--name", c.name, "-n", "bench", "-l", "app=server")
	var st lab.Status
	if err := json.Unmarshal([]byte(c.mustWeft("lab", "status", "--json", "--name", c.name)), &st); err != nil {
		t.Fatal(err)
	}
	var client, server lab.PodState
	for _, p := range st.Pods {
		if p.Name == "client" {
			client = p
		} else {
			server = p
		}
	}
	srv, err := probe.Serve(lab.NetNSPath(server.NetNS), netip.AddrPortFrom(server.IP, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	tcp := corev1.ProtocolTCP
	p80, iperfPort := intstr.FromInt32(80), intstr.FromInt32(5201)
	allowClients := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: "zz-allow-clients"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "server"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "client"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80}, {Protocol: &tcp, Port: &iperfPort}},
			}},
		},
	}
	if _, err := cs.NetworkingV1().NetworkPolicies("bench").Create(ctx, allowClients, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	target := netip.AddrPortFrom(server.IP, 80)
	reach := func() bool {
		pctx, cancel := context.WithTimeout(ctx, 25*time.Millisecond)
		defer cancel()
		_, err := probe.TCP(pctx, lab.NetNSPath(client.NetNS), target)
		return err == nil
	}
	waitReach := func(want bool) time.Duration {
		start := time.Now()
		for time.Since(start) < 30*time.Second {
			if reach() == want {
				return time.Since(start)
			}
		}
		t.Fatalf("client reachable=%v not observed within 30s", want)
		return 0
	}
	waitReach(false)
	labelTimes := func(rounds int) (on, off []time.Duration) {
		for i := 0; i < rounds; i++ {
			patch(t, cs, client, `{"metadata":{"labels":{"role":"client"}}}`)
			on = append(on, waitReach(true))
			patch(t, cs, client, `{"metadata":{"labels":{"role":null}}}`)
			off = append(off, waitReach(false))
		}
		return on, off
	}
	throughput := func(rounds int) []float64 {
		var out []float64
		for i := 0; i < rounds; i++ {
			out = append(out, iperf(t, c, client, server))
		}
		return out
	}

	onSmall, offSmall := labelTimes(5)
	patch(t, cs, client, `{"metadata":{"labels":{"role":"client"}}}`)
	waitReach(true)
	tpIsolated := throughput(3)
	if err := cs.NetworkingV1().NetworkPolicies("bench").Delete(ctx, allowClients.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReach(true)
	tpOpen := throughput(3)

	start := time.Now()
	loadScale(t, cs, 1000, 5000)
	t.Logf("created 1,000 NetworkPolicies and 5,000 Pods in %s", time.Since(start).Round(time.Second))
	if _, err := cs.NetworkingV1().NetworkPolicies("bench").Create(ctx, allowClients, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	patch(t, cs, client, `{"metadata":{"labels":{"role":null}}}`)
	waitReach(false)
	onBig, offBig := labelTimes(5)
	patch(t, cs, client, `{"metadata":{"labels":{"role":"client"}}}`)
	waitReach(true)
	tpBig := throughput(3)
	n2, err := c.agentStatus("n2")
	if err != nil || n2.Policy == nil {
		t.Fatalf("n2 status: %v", err)
	}

	t.Logf("n2 enforces %d policies (%d in the cluster) on %d pods; last compile %.1fms, apply %.1fms",
		n2.Policy.Policies, n2.Policy.ClusterPolicies, n2.Policy.Pods, n2.Policy.CompileSeconds*1e3, n2.Policy.ApplySeconds*1e3)
	t.Logf("label change to enforced (median of 5, probe every <=25ms; allow / deny):")
	t.Logf("  1 policy, 2 pods:                %s / %s", median(onSmall), median(offSmall))
	t.Logf("  +1,000 policies, +5,000 pods:    %s / %s  (%.1fx / %.1fx)", median(onBig), median(offBig),
		float64(median(onBig))/float64(median(onSmall)), float64(median(offBig))/float64(median(offSmall)))
	t.Logf("pod-to-pod TCP throughput n1 -> n2 (median of 3, Gbit/s):")
	t.Logf("  no policy:                                %.2f", medianF(tpOpen))
	t.Logf("  destination isolated, 1 policy:           %.2f  (%.2fx)", medianF(tpIsolated), medianF(tpIsolated)/medianF(tpOpen))
	t.Logf("  destination isolated, 1,000 more policies: %.2f  (%.2fx)", medianF(tpBig), medianF(tpBig)/medianF(tpOpen))
}

// fastClient is an admin client without client-go's default rate limit,
// for creating thousands of objects.
func fastClient(t *testing.T, c *cluster) kubernetes.Interface {
	cp, err := kube.Load(kube.Config{Dir: c.layout.KubeDir(), NetNS: c.layout.CPNS(), Address: lab.CPAddr, BinDir: filepath.Join(repoRoot(), "bin")})
	if err != nil {
		t.Fatal(err)
	}
	rc := cp.AdminRESTConfig()
	rc.QPS, rc.Burst, rc.Timeout = 2000, 4000, 30*time.Second
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func patch(t *testing.T, cs kubernetes.Interface, p lab.PodState, body string) {
	t.Helper()
	if _, err := cs.CoreV1().Pods(p.Namespace).Patch(context.Background(), p.Name, types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// loadScale creates policies NetworkPolicies and pods Pods (with addresses
// outside the lab's, bound to the lab's two nodes, in 100 namespaces)
// shaped like policy/scale_test.go's: each policy selects app=app<k> and
// allows ingress from a role in a team's namespaces on 80.
func loadScale(t *testing.T, cs kubernetes.Interface, policies, pods int) {
	ctx := context.Background()
	const namespaces = 100
	work := make(chan func() error)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				if err := f(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for n := 0; n < namespaces; n++ {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("scale%d", n), Labels: map[string]string{"team": fmt.Sprintf("team%d", n%20)}}}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The ServiceAccount admission refuses Pods until the namespace's
	// default ServiceAccount exists.
	eventually(t, time.Minute, "default ServiceAccounts in the scale namespaces", func() error {
		sas, err := cs.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=default"})
		if err != nil {
			return err
		}
		if n := len(sas.Items); n < namespaces {
			return fmt.Errorf("%d default ServiceAccounts", n)
		}
		return nil
	})
	for i := 0; i < pods; i++ {
		work <- func() error {
			p := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("scale%d", i%namespaces), Name: fmt.Sprintf("p%d", i),
					Labels: map[string]string{"app": fmt.Sprintf("app%d", i%10), "role": fmt.Sprintf("role%d", i%3)}},
				Spec: corev1.PodSpec{NodeName: []string{"n1", "n2"}[i%2], Containers: []corev1.Container{{Name: "main", Image: "weft.dev/none"}}},
			}
			got, err := cs.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
			if err != nil {
				return err
			}
			ip := fmt.Sprintf("10.%d.%d.%d", 200+i/65536, (i/256)%256, i%256)
			got.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
			_, err = cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, got, metav1.UpdateOptions{})
			return err
		}
	}
	tcp := corev1.ProtocolTCP
	p80 := intstr.FromInt32(80)
	for i := 0; i < policies; i++ {
		work <- func() error {
			np := &networkingv1.NetworkPolicy{
				ObjectMeta: metav1.ObjectMeta{Namespace: fmt.Sprintf("scale%d", i%namespaces), Name: fmt.Sprintf("pol%d", i)},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": fmt.Sprintf("app%d", (i/namespaces)%10)}},
					Ingress: []networkingv1.NetworkPolicyIngressRule{{
						From: []networkingv1.NetworkPolicyPeer{{
							NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": fmt.Sprintf("team%d", i%20)}},
							PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"role": fmt.Sprintf("role%d", i%3)}}}},
						Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &p80}},
					}},
				},
			}
			_, err := cs.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{})
			return err
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
}

// iperf runs a 5s one-stream iperf3 test from client to server and
// returns Gbit/s.
func iperf(t *testing.T, c *cluster, client, server lab.PodState) float64 {
	t.Helper()
	srv := exec.Command("ip", "netns", "exec", server.NetNS, "iperf3", "-s", "-1", "-B", server.IP.String(), "-p", "5201")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	var r struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	// Poll until the server listens (iperf3 -J reports "connection
	// refused" in its JSON, with exit status 0 or 1).
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("ip", "netns", "exec", client.NetNS, "iperf3", "-J", "-c", server.IP.String(), "-p", "5201", "-t", "5").Output()
		r.Error = ""
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("iperf3: %v\n%s", err, out)
		}
		if r.Error == "" && r.End.SumReceived.BitsPerSecond > 0 {
			return r.End.SumReceived.BitsPerSecond / 1e9
		}
		if time.Now().After(deadline) {
			t.Fatalf("iperf3: %s\n%.2000s", r.Error, out)
		}
		time.Sleep(50 * time.Millisecond) // the server is starting
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

func medianF(f []float64) float64 {
	s := slices.Clone(f)
	sort.Float64s(s)
	return s[len(s)/2]
}
