package agent

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPolicyConfigDefaultsAndErrors(t *testing.T) {
	var c PolicyConfig
	if err := c.complete(); err != nil {
		t.Fatal(err)
	}
	if c.Enabled == nil || !*c.Enabled || c.SourceCheck == nil || !*c.SourceCheck || c.Debounce.Duration != DefaultPolicyDebounce || c.ResyncInterval.Duration != DefaultPolicyResync {
		t.Errorf("defaults: %+v", c)
	}
	for _, tc := range []struct {
		c     PolicyConfig
		field string
	}{
		{PolicyConfig{Debounce: Duration{Duration: 2 * time.Second}}, "policy.debounce"},
		{PolicyConfig{Debounce: Duration{Duration: -time.Second}}, "policy.debounce"},
		{PolicyConfig{ResyncInterval: Duration{Duration: time.Millisecond}}, "policy.resyncInterval"},
		{PolicyConfig{RulesetFile: "rel/policy.txt"}, "policy.rulesetFile"},
	} {
		err := tc.c.complete()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%+v: %v, want an error naming %s", tc.c, err, tc.field)
		}
	}
	cfg, err := ParseConfig(strings.NewReader("policy:\n  enabled: false\n  debounce: 50ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.Policy.Enabled || cfg.Policy.Debounce.Duration != 50*time.Millisecond {
		t.Errorf("parsed %+v", cfg.Policy)
	}
	if _, err := ParseConfig(strings.NewReader("policy:\n  enable: true\n")); err == nil || !strings.Contains(err.Error(), "policy.enable") {
		t.Errorf("unknown field: %v", err)
	}
}

func TestPodPolicyChanged(t *testing.T) {
	base := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"app": "web"}, ResourceVersion: "1"},
		Spec:       corev1.PodSpec{NodeName: "n1"},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.244.0.2", PodIPs: []corev1.PodIP{{IP: "10.244.0.2"}}},
	}
	same := base.DeepCopy()
	same.ResourceVersion = "2"
	same.Status.HostIP = "192.168.77.11"
	if podPolicyChanged(base, same) {
		t.Error("a change policy does not read woke the loop")
	}
	for name, f := range map[string]func(*corev1.Pod){
		"labels": func(p *corev1.Pod) { p.Labels["app"] = "db" },
		"ip":     func(p *corev1.Pod) { p.Status.PodIPs = nil },
		"phase":  func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded },
		"node":   func(p *corev1.Pod) { p.Spec.NodeName = "n2" },
	} {
		n := base.DeepCopy()
		f(n)
		if !podPolicyChanged(base, n) {
			t.Errorf("%s change did not wake the loop", name)
		}
	}
}
