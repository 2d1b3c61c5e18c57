package kube

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/internal/poll"
)

func node(name, ip, cidr string, ann map[string]string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
	}
	if cidr != "" {
		n.Spec.PodCIDR = cidr
		n.Spec.PodCIDRs = []string{cidr}
	}
	return n
}

func TestFromObjectToleratesOddNodes(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	tests := []struct {
		name     string
		obj      *corev1.Node
		wantIP   string
		wantCIDR string
	}{
		{"complete", node("a", "192.168.1.1", "10.244.1.0/24", nil), "192.168.1.1", "10.244.1.0/24"},
		{"no addresses", node("b", "", "10.244.2.0/24", nil), "", "10.244.2.0/24"},
		{"malformed address", node("c", "not-an-ip", "", nil), "", ""},
		{"malformed podCIDR", node("d", "192.168.1.4", "10.244.300.0/24", nil), "192.168.1.4", ""},
		{"IPv6-only podCIDR", node("e", "192.168.1.5", "fd00:10:244::/64", nil), "192.168.1.5", ""},
		{"dual stack takes IPv4", &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "f"},
			Spec: corev1.NodeSpec{PodCIDRs: []string{"fd00::/64", "10.244.6.0/24"}}}, "", "10.244.6.0/24"},
		{"host bits set", node("g", "192.168.1.7", "10.244.7.9/24", nil), "192.168.1.7", "10.244.7.0/24"},
	}
	for _, tc := range tests {
		n := fromObject(tc.obj, log)
		gotIP, gotCIDR := "", ""
		if n.InternalIP.IsValid() {
			gotIP = n.InternalIP.String()
		}
		if n.PodCIDR.IsValid() {
			gotCIDR = n.PodCIDR.String()
		}
		if gotIP != tc.wantIP || gotCIDR != tc.wantCIDR {
			t.Errorf("%s: ip %q cidr %q, want %q %q", tc.name, gotIP, gotCIDR, tc.wantIP, tc.wantCIDR)
		}
	}
	n := fromObject(node("h", "", "", map[string]string{"weft.dev/pod-cidr": "x", "other.io/y": "z"}), log)
	if len(n.Annotations) != 1 || n.Annotations["weft.dev/pod-cidr"] != "x" {
		t.Errorf("annotations: kept %v, want only weft.dev/*", n.Annotations)
	}
	for value, want := range map[string]bool{"true": true, "false": false, "yes": false, "": false} {
		o := node("i", "", "", nil)
		if value != "" {
			o.Labels = map[string]string{LabelPeeringGateway: value}
		}
		if got := fromObject(o, log).PeeringGateway; got != want {
			t.Errorf("label %s=%q: PeeringGateway %v, want %v", LabelPeeringGateway, value, got, want)
		}
	}
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	poll.True(t, 5*time.Second, 10*time.Millisecond, what, f)
}

func TestWatcherTracksNodesAndDeletions(t *testing.T) {
	client := fake.NewClientset(node("n1", "192.168.1.1", "10.244.1.0/24", nil), node("n2", "192.168.1.2", "10.244.2.0/24", nil))
	w := NewWatcher(client, "n1", slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !w.WaitSynced(ctx, 5*time.Second) {
		t.Fatal("cache did not sync")
	}
	if got := w.Nodes(); len(got) != 2 || got[1].PodCIDR != netip.MustParsePrefix("10.244.2.0/24") {
		t.Fatalf("Nodes() = %+v", got)
	}
	if err := client.CoreV1().Nodes().Delete(ctx, "n2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "n2 reported deleted", func() bool { return w.Deleted("n2") })
	if w.Deleted("n9") {
		t.Error("a node never seen must not count as deleted (the API server may simply be away)")
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node("n2", "192.168.1.2", "", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "re-created n2 no longer deleted", func() bool { return !w.Deleted("n2") })

	// A delete the informer missed arrives as DeletedFinalStateUnknown.
	w.remove(cache.DeletedFinalStateUnknown{Key: "n1", Obj: node("n1", "", "", nil)})
	if !w.Deleted("n1") {
		t.Error("DeletedFinalStateUnknown was not handled")
	}
	w.remove("garbage") // never panics
}

func TestPublishPatchesOnlyWhatDiffers(t *testing.T) {
	client := fake.NewClientset(node("n1", "192.168.1.1", "10.244.1.0/24", nil))
	w := NewWatcher(client, "n1", slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	w.WaitSynced(ctx, 5*time.Second)
	ann := map[string]string{AnnotationPodCIDR: "10.244.1.0/24", AnnotationEndpoint: "192.168.1.1:51820", AnnotationPublicKey: "k"}
	if err := w.Publish(ctx, ann); err != nil {
		t.Fatal(err)
	}
	eventually(t, "annotations and condition in the cache", func() bool {
		n, _ := w.Node("n1")
		return n.NetworkAvailable && n.Annotations[AnnotationPublicKey] == "k"
	})
	obj, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	var cond *corev1.NodeCondition
	for i := range obj.Status.Conditions {
		if obj.Status.Conditions[i].Type == corev1.NodeNetworkUnavailable {
			cond = &obj.Status.Conditions[i]
		}
	}
	if cond == nil || cond.Status != corev1.ConditionFalse {
		t.Fatalf("NetworkUnavailable condition = %+v, want False", cond)
	}
	before := len(client.Actions())
	if err := w.Publish(ctx, ann); err != nil {
		t.Fatal(err)
	}
	if after := len(client.Actions()); after != before {
		t.Errorf("an unchanged publish made %d API requests, want 0", after-before)
	}
	// A changed key is patched; a dropped weft annotation is removed.
	delete(ann, AnnotationPublicKey)
	if err := w.Publish(ctx, ann); err != nil {
		t.Fatal(err)
	}
	eventually(t, "public key annotation removed", func() bool {
		n, _ := w.Node("n1")
		_, has := n.Annotations[AnnotationPublicKey]
		return !has
	})
}
