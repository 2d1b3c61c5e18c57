package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/weftnet/weft/agent/kube"
	"github.com/weftnet/weft/policy"
)

// fakeApplier records what the addon applies and fails when told to.
type fakeApplier struct {
	mu      sync.Mutex
	applied []policy.Ruleset
	fail    error
}

var _ policyApplier = (*fakeApplier)(nil)

func (f *fakeApplier) Apply(rs policy.Ruleset) (policy.Outcome, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return policy.Replaced, f.fail
	}
	f.applied = append(f.applied, rs)
	return policy.Replaced, nil
}

func (f *fakeApplier) Forget() {}

func (f *fakeApplier) Drops() (policy.Drops, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := policy.Drops{Retired: 2, Chains: map[string]uint64{}, Pods: map[policy.PodDrop]uint64{}}
	if n := len(f.applied); n > 0 {
		rs := f.applied[n-1]
		for _, c := range rs.Chains {
			d.Chains[c.Name] = 5
		}
		for _, m := range rs.Ingress {
			d.Pods[policy.PodDrop{Direction: policy.Ingress, IP: m.IP}] = 5
		}
	}
	return d, nil
}

func (f *fakeApplier) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeApplier) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applied)
}

// statusLog keeps the addon's latest published status.
type statusLog struct {
	mu sync.Mutex
	st PolicyStatus
}

func (s *statusLog) publish(st PolicyStatus) { s.mu.Lock(); s.st = st; s.mu.Unlock() }

func (s *statusLog) wait(t *testing.T, what string, ok func(PolicyStatus) bool) PolicyStatus {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		st := s.st
		s.mu.Unlock()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status never matched; last %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func denyAll(ns, name string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

// TestPolicyAddon runs the addon on real informers over a fake API: it
// waits for the first list, recompiles on changes (a burst coalesced),
// keeps going after a failed apply and reports it, and reports a compile
// failure without applying.
func TestPolicyAddon(t *testing.T) {
	client := fake.NewSimpleClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "x"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "a"}, Spec: corev1.PodSpec{NodeName: "n1"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.2"}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "b"}, Spec: corev1.PodSpec{NodeName: "n2"},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.1.2"}},
		denyAll("x", "deny"),
	)
	ap := &fakeApplier{}
	var sl statusLog
	file := filepath.Join(t.TempDir(), "policy.txt")
	cfg := PolicyConfig{}
	if err := cfg.complete(); err != nil {
		t.Fatal(err)
	}
	cfg.Debounce.Duration = 200 * time.Millisecond
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := newPolicyAddonWith(log, "n1", cfg, file, ap, sl.publish, newPolicyMetrics(prometheus.NewRegistry()))
	removed := false
	p.remove = func() error { removed = true; return nil }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inf := kube.NewInformers(client, 0)
	if err := p.Start(ctx, inf); err != nil {
		t.Fatal(err)
	}
	inf.Start(ctx.Done())

	st := sl.wait(t, "first sync", func(s PolicyStatus) bool { return s.Synced })
	if st.Policies != 1 || st.Pods != 1 || st.ClusterPolicies != 1 || st.DroppedPackets != 7 {
		t.Errorf("after the first sync: %+v, want 1 policy, 1 pod, 7 drops", st)
	}
	if len(st.TopDrops) != 1 || st.TopDrops[0] != (PolicyPodDrops{Pod: "x/a", Direction: "ingress", Packets: 5}) {
		t.Errorf("top drops %+v, want x/a ingress 5", st.TopDrops)
	}
	if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), "x/deny") {
		t.Errorf("ruleset file: %v\n%s", err, b)
	}

	// A burst of 20 policies is compiled in few passes.
	before := ap.count()
	for i := 0; i < 20; i++ {
		if _, err := client.NetworkingV1().NetworkPolicies("x").Create(ctx, denyAll("x", fmt.Sprintf("p%d", i)), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	sl.wait(t, "burst applied", func(s PolicyStatus) bool { return s.ClusterPolicies == 21 })
	if n := ap.count() - before; n > 5 {
		t.Errorf("20 changes in a burst took %d applies; they should coalesce", n)
	}

	// A failed apply is reported and retried on the next change.
	ap.set(errors.New("kernel says no"))
	client.NetworkingV1().NetworkPolicies("x").Delete(ctx, "p0", metav1.DeleteOptions{})
	st = sl.wait(t, "apply failure reported", func(s PolicyStatus) bool { return s.LastError != "" })
	if !strings.Contains(st.LastError, "kernel says no") || !strings.Contains(st.LastError, "previous ruleset stays") || st.ClusterPolicies != 21 {
		t.Errorf("after a failed apply: %+v", st)
	}
	ap.set(nil)
	client.NetworkingV1().NetworkPolicies("x").Delete(ctx, "p1", metav1.DeleteOptions{})
	sl.wait(t, "recovered", func(s PolicyStatus) bool { return s.LastError == "" && s.ClusterPolicies == 19 })

	// A policy whose podSelector cannot be parsed keeps the previous ruleset.
	n := ap.count()
	bad := denyAll("x", "bad")
	bad.Spec.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "k", Operator: "Near"}}
	client.NetworkingV1().NetworkPolicies("x").Create(ctx, bad, metav1.CreateOptions{})
	st = sl.wait(t, "compile failure reported", func(s PolicyStatus) bool { return strings.HasPrefix(s.LastError, "compile:") })
	if !strings.Contains(st.LastError, "x/bad") || ap.count() != n {
		t.Errorf("after a compile failure: %q, applies %d -> %d", st.LastError, n, ap.count())
	}

	if err := p.Close(true); err != nil || !removed {
		t.Errorf("Close(true) = %v, removed %v", err, removed)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("ruleset file left after leaving: %v", err)
	}
}
