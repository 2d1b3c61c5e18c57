package lab

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestKubeLayout(t *testing.T) {
	l := Layout{Root: "/run/weft-lab", Name: "k1"}
	for got, want := range map[string]string{
		l.CPNS():            "k1-cp",
		l.KubeDir():         "/run/weft-lab/k1/kube",
		l.AdminKubeconfig(): "/run/weft-lab/k1/kube/admin.kubeconfig",
		l.AgentKubeconfig(): "/run/weft-lab/k1/agent.kubeconfig",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	if err := ValidateNodeName("cp"); err == nil {
		t.Error("node name cp must be reserved: it is the control plane's namespace")
	}
	if UnderlaySubnet.Contains(CPAddr) == false || CPAddr == InetAddr {
		t.Errorf("CPAddr %s must be on the underlay and not the internet's", CPAddr)
	}
	for i := 1; i <= MaxNodes; i++ {
		if a, _ := NodeAddr(i); a == CPAddr {
			t.Fatalf("node %d gets the control plane's address", i)
		}
	}
	st := State{Spec: Spec{Kube: true}}
	if !slices.Contains(st.namespaces(l), "k1-cp") {
		t.Error("a --kube lab's state must record the control-plane namespace")
	}
}

func TestCPCmds(t *testing.T) {
	l := Layout{Root: "/run/weft-lab", Name: "k1"}
	var lines []string
	for _, c := range CPCmds(l, 1400) {
		lines = append(lines, strings.Join(c, " "))
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{
		"ip netns add k1-cp",
		"ip -n k1-cp link set lo alias weft-lab:k1",
		"ip -n k1-underlay link add vcp mtu 1400 type veth peer name eth0 mtu 1400 netns k1-cp",
		"ip -n k1-underlay link set vcp master br0 up",
		"ip -n k1-cp addr add 192.168.77.2/24 dev eth0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("CPCmds lack %q:\n%s", want, got)
		}
	}
}

func TestAgentConfigKube(t *testing.T) {
	l := Layout{Root: "/run/weft-lab", Name: "k1"}
	n, _ := l.PlanNode("n1", 1)
	plain := AgentConfig(l, Spec{Backend: "wireguard"}, n, nil)
	if plain.Kubernetes != nil {
		t.Error("a plain lab's agent has a kubernetes section")
	}
	c := AgentConfig(l, Spec{Backend: "wireguard", Kube: true}, n, nil)
	if c.Kubernetes == nil || !c.Kubernetes.Enabled || c.Kubernetes.Kubeconfig != l.AgentKubeconfig() || c.Kubernetes.SyncTimeout != "10s" {
		t.Errorf("kubernetes section = %+v", c.Kubernetes)
	}
	b, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "kubernetes:\n  enabled: true\n  kubeconfig: /run/weft-lab/k1/agent.kubeconfig\n") {
		t.Errorf("rendered:\n%s", b)
	}
	if strings.Contains(string(b), "seeds") {
		t.Errorf("no seeds given, yet rendered some:\n%s", b)
	}
}

func TestNodeObject(t *testing.T) {
	l := Layout{Root: "/run/weft-lab", Name: "k1"}
	n, _ := l.PlanNode("n2", 2)
	o := NodeObject("k1", n, time.Unix(0, 0))
	if o.Name != "n2" || o.Labels[LabelLab] != "k1" || o.Labels[corev1.LabelHostname] != "n2" || o.Labels[corev1.LabelOSStable] != "linux" {
		t.Errorf("metadata = %+v", o.ObjectMeta)
	}
	if o.Spec.PodCIDR != "" || len(o.Spec.PodCIDRs) != 0 {
		t.Error("the lab must leave podCIDR to kube-controller-manager")
	}
	if len(o.Status.Addresses) == 0 || o.Status.Addresses[0] != (corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.168.77.12"}) {
		t.Errorf("addresses = %+v", o.Status.Addresses)
	}
	if c := o.Status.Conditions; len(c) != 1 || c[0].Type != corev1.NodeReady || c[0].Status != corev1.ConditionTrue {
		t.Errorf("conditions = %+v", c)
	}
}

func TestPodObject(t *testing.T) {
	p := PodState{Name: "web", Node: "n1", NetNS: "k1-n1-web", Namespace: "shop", IP: netip.MustParseAddr("10.244.0.5"),
		Labels: map[string]string{"app": "web"}}
	o := PodObject("k1", p, netip.MustParseAddr("192.168.77.11"), time.Unix(0, 0))
	if o.Name != "web" || o.Namespace != "shop" || o.Labels["app"] != "web" || o.Annotations[LabelLab] != "k1" {
		t.Errorf("metadata = %+v", o.ObjectMeta)
	}
	if _, ok := o.Labels[LabelLab]; ok {
		t.Error("labels are the user's: the lab marks Pods with an annotation")
	}
	o.Labels["x"] = "y"
	if _, ok := p.Labels["x"]; ok {
		t.Error("PodObject shares the label map with the lab state")
	}
	if o.Spec.NodeName != "n1" || len(o.Spec.Containers) != 1 {
		t.Errorf("spec = %+v", o.Spec)
	}
	s := o.Status
	if s.Phase != corev1.PodRunning || s.PodIP != "10.244.0.5" || len(s.PodIPs) != 1 || s.HostIP != "192.168.77.11" {
		t.Errorf("status = %+v", s)
	}
	ready := map[corev1.PodConditionType]bool{}
	for _, c := range s.Conditions {
		ready[c.Type] = c.Status == corev1.ConditionTrue
	}
	for _, c := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled, corev1.PodInitialized} {
		if !ready[c] {
			t.Errorf("condition %s not True", c)
		}
	}
	if cs := s.ContainerStatuses; len(cs) != 1 || !cs[0].Ready || cs[0].State.Running == nil {
		t.Errorf("container statuses = %+v", cs)
	}
}

func TestParseLabels(t *testing.T) {
	got, err := ParseLabels("app=web, tier=front,empty=")
	if err != nil || len(got) != 3 || got["app"] != "web" || got["tier"] != "front" || got["empty"] != "" {
		t.Errorf("ParseLabels = %v, %v", got, err)
	}
	if got, err := ParseLabels(""); got != nil || err != nil {
		t.Errorf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"app", "=x", "a b=c", "app=" + strings.Repeat("x", 64), "app=no spaces"} {
		if _, err := ParseLabels(bad); err == nil {
			t.Errorf("ParseLabels(%q) accepted", bad)
		} else if !strings.HasPrefix(err.Error(), "labels:") {
			t.Errorf("error does not name the flag: %v", err)
		}
	}
}

func TestLabelChange(t *testing.T) {
	c, err := ParseLabelChange([]string{"app=web", "tier-", "example.com/x=1"})
	if err != nil {
		t.Fatal(err)
	}
	got := c.Apply(map[string]string{"tier": "front", "keep": "me"})
	want := map[string]string{"app": "web", "keep": "me", "example.com/x": "1"}
	if len(got) != len(want) {
		t.Errorf("Apply = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Apply = %v, want %v", got, want)
		}
	}
	patch := c.MergePatch()["metadata"].(map[string]any)["labels"].(map[string]any)
	if patch["app"] != "web" || patch["tier"] != nil || len(patch) != 3 {
		t.Errorf("merge patch = %v", patch)
	}
	if c, _ := ParseLabelChange([]string{"a-"}); c.Apply(map[string]string{"a": "1"}) != nil {
		t.Error("removing the last label leaves a non-nil map")
	}
	for _, bad := range [][]string{nil, {"novalue"}, {"bad key-"}, {"k=bad value"}} {
		if _, err := ParseLabelChange(bad); err == nil {
			t.Errorf("ParseLabelChange(%q) accepted", bad)
		}
	}
}

func TestDecodeManifests(t *testing.T) {
	in := `# a comment
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: c1, namespace: a}}
- {apiVersion: v1, kind: ConfigMap, metadata: {name: c2}}
---
{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
`
	ms, err := DecodeManifests(strings.NewReader(in), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Source+" "+m.Object.GetKind()+"/"+m.Object.GetName())
	}
	want := []string{"f.yaml#1 Namespace/a", "f.yaml#2[0] ConfigMap/c1", "f.yaml#2[1] ConfigMap/c2", "f.yaml#3 Service/s"}
	if !slices.Equal(got, want) {
		t.Errorf("decoded %q, want %q", got, want)
	}
	for _, bad := range []string{"kind: ConfigMap\nmetadata: {name: x}\n", "apiVersion: v1\nkind: ConfigMap\n", "apiVersion: v1\nkind: [\n"} {
		if _, err := DecodeManifests(strings.NewReader(bad), "bad.yaml"); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
			t.Errorf("%q: error %v does not name the file", bad, err)
		}
	}
}
