package dnsproxy

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestKubeRecordsEvents(t *testing.T) {
	k := NewKubeRecords()
	sh, eh, ph := k.ServiceHandler(), k.EndpointSliceHandler(), k.PodHandler()
	web := svc("default", "web", clusterIP("10.96.0.10"))
	sh.OnAdd(web, false)
	if got := k.Reverse(netip.MustParseAddr("10.96.0.10")); len(got) != 1 || got[0].Service != "web" {
		t.Fatalf("reverse of web's ClusterIP: %v", got)
	}
	// A ClusterIP change moves the reverse entry.
	moved := svc("default", "web", clusterIP("10.96.0.20"))
	sh.OnUpdate(web, moved)
	if len(k.Reverse(netip.MustParseAddr("10.96.0.10"))) != 0 || len(k.Reverse(netip.MustParseAddr("10.96.0.20"))) != 1 {
		t.Error("reverse entries not moved with the ClusterIP")
	}
	// A deletion seen only as a tombstone (the watch was down) still deletes.
	sh.OnDelete(cache.DeletedFinalStateUnknown{Key: "default/web", Obj: moved})
	if _, ok := k.Service("default", "web"); ok || len(k.Reverse(netip.MustParseAddr("10.96.0.20"))) != 0 {
		t.Error("a tombstoned Service is still answered")
	}

	// Endpoints: only ready ones; a slice of a ClusterIP Service gives no
	// PTR; an update replaces the slice's endpoints.
	sh.OnAdd(svc("default", "hl", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }), false)
	sl := slice("default", "hl-1", "hl", 80, ep{"10.244.1.5", "pet-0", true}, ep{"10.244.1.6", "", false})
	eh.OnAdd(sl, false)
	if eps := k.Endpoints("default", "hl"); len(eps) != 1 || eps[0].Hostname != "pet-0" {
		t.Errorf("endpoints %v, want only the ready pet-0", eps)
	}
	sl2 := slice("default", "hl-1", "hl", 80, ep{"10.244.1.6", "", true})
	eh.OnUpdate(sl, sl2)
	if eps := k.Endpoints("default", "hl"); len(eps) != 1 || eps[0].Addrs[0] != netip.MustParseAddr("10.244.1.6") {
		t.Errorf("after update: %v", eps)
	}
	if got := k.Reverse(netip.MustParseAddr("10.244.1.6")); len(got) != 1 || got[0].Hostname != "10-244-1-6" {
		t.Errorf("reverse of an endpoint without hostname: %v", got)
	}
	if len(k.Reverse(netip.MustParseAddr("10.244.1.5"))) != 0 {
		t.Error("a replaced endpoint is still in the reverse index")
	}
	eh.OnDelete(cache.DeletedFinalStateUnknown{Key: "default/hl-1", Obj: sl2})
	if len(k.Endpoints("default", "hl")) != 0 || len(k.Reverse(netip.MustParseAddr("10.244.1.6"))) != 0 {
		t.Error("a tombstoned EndpointSlice is still answered")
	}
	// A slice without the service-name label belongs to nobody.
	orphan := slice("default", "x", "", 80, ep{"10.244.9.9", "", true})
	delete(orphan.Labels, "kubernetes.io/service-name")
	eh.OnAdd(orphan, false)
	if len(k.Reverse(netip.MustParseAddr("10.244.9.9"))) != 0 {
		t.Error("an unowned slice was indexed")
	}

	// Pods: two pods may share an address (one is being replaced); it is
	// known until both are gone. Host-network pods are not pod addresses.
	pod := func(name, ip string, host bool) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
			Spec:   corev1.PodSpec{HostNetwork: host},
			Status: corev1.PodStatus{PodIPs: []corev1.PodIP{{IP: ip}}}}
	}
	a := netip.MustParseAddr("10.244.1.9")
	ph.OnAdd(pod("old", "10.244.1.9", false), false)
	ph.OnAdd(pod("new", "10.244.1.9", false), false)
	ph.OnDelete(pod("old", "10.244.1.9", false))
	if !k.PodIP("default", a) {
		t.Error("an address still held by a pod was forgotten")
	}
	ph.OnDelete(cache.DeletedFinalStateUnknown{Obj: pod("new", "10.244.1.9", false)})
	if k.PodIP("default", a) {
		t.Error("an address no pod holds is still known")
	}
	ph.OnAdd(pod("hostnet", "192.168.77.11", true), false)
	if k.PodIP("default", netip.MustParseAddr("192.168.77.11")) {
		t.Error("a host-network pod's address counts as a pod address")
	}
}

// An ExternalName that points into the cluster zone resolves through it,
// and a CNAME loop between two ExternalNames ends.
func TestExternalNameChains(t *testing.T) {
	rec := testRecords()
	rec.ServiceHandler().OnAdd(svc("default", "alias", func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeExternalName
		s.Spec.ExternalName = "web.default.svc.cluster.local"
	}), false)
	for _, pair := range [][2]string{{"loop1", "loop2"}, {"loop2", "loop1"}} {
		target := pair[1] + ".default.svc.cluster.local"
		rec.ServiceHandler().OnAdd(svc("default", pair[0], func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = target
		}), false)
	}
	up := newUpstream(t, "udp")
	p := newProxy(t, rec, proxyOpts{upstreams: []netip.AddrPort{up.addr}})
	m := p.ask(t, "udp", "alias.default.svc.cluster.local.", 1, 0)
	want := []string{"alias.default.svc.cluster.local. IN CNAME web.default.svc.cluster.local.", "web.default.svc.cluster.local. IN A 10.96.0.10"}
	if got := rrStrings(m.Answer); !slices.Equal(got, want) {
		t.Errorf("alias: %v, want %v", got, want)
	}
	m = p.ask(t, "tcp", "loop1.default.svc.cluster.local.", 1, 0)
	if len(m.Answer) == 0 || len(m.Answer) > maxChase+1 {
		t.Errorf("a CNAME loop gave %d records, want 1-%d", len(m.Answer), maxChase+1)
	}
	if n := up.queries.Load(); n != 0 {
		t.Errorf("in-zone chains went upstream %d times", n)
	}
}
