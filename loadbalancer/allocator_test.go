package loadbalancer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/weftnet/weft/internal/poll"
)

type allocTest struct {
	t        *testing.T
	client   *fake.Clientset
	events   *record.FakeRecorder
	alloc    *Allocator
	cancel   context.CancelFunc
	runErr   chan error
	poolsCfg []string
}

type svcOpt func(*corev1.Service)

func class(c string) svcOpt { return func(s *corev1.Service) { s.Spec.LoadBalancerClass = &c } }
func asking(a string) svcOpt {
	return func(s *corev1.Service) { s.Annotations = map[string]string{AnnotationRequestedIP: a} }
}
func status(ips ...string) svcOpt {
	return func(s *corev1.Service) {
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	}
}
func clusterIP(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }

func service(name string, minute int, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(minute) * time.Minute))},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// newAllocTest starts an allocator with short lease timings on a fake
// clientset holding objs. Cleanup stops it and checks Run returned nil.
func newAllocTest(t *testing.T, pools []string, objs ...runtime.Object) *allocTest {
	t.Helper()
	return newAllocTestWith(t, pools, nil, objs...)
}

func newAllocTestWith(t *testing.T, pools []string, prepare func(*fake.Clientset), objs ...runtime.Object) *allocTest {
	t.Helper()
	cfg := Config{Pools: pools}
	if err := cfg.Complete("services.loadBalancer"); err != nil {
		t.Fatal(err)
	}
	at := &allocTest{t: t, client: fake.NewClientset(objs...), events: record.NewFakeRecorder(100), runErr: make(chan error, 1)}
	if prepare != nil {
		prepare(at.client)
	}
	factory := informers.NewSharedInformerFactory(at.client, 0)
	inf := factory.Core().V1().Services().Informer()
	var err error
	at.alloc, err = NewAllocator(AllocatorConfig{
		Client: at.client, Services: inf, Config: cfg, NodeName: "node-a",
		Log:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Recorder:      at.events,
		LeaseDuration: time.Second, RenewDeadline: 500 * time.Millisecond, RetryPeriod: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	at.cancel = cancel
	factory.Start(ctx.Done())
	go func() { at.runErr <- at.alloc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-at.runErr:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
		factory.Shutdown()
	})
	return at
}

// ingress returns the Service's status as "ip/mode" strings.
func (at *allocTest) ingress(name string) []string {
	at.t.Helper()
	s, err := at.client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		at.t.Fatal(err)
	}
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		mode := "-"
		if in.IPMode != nil {
			mode = string(*in.IPMode)
		}
		out = append(out, in.IP+"/"+mode)
	}
	return out
}

// waitIngress polls until every named Service shows want[name].
func (at *allocTest) waitIngress(want map[string][]string) {
	at.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		bad := ""
		for name, w := range want {
			if got := at.ingress(name); !slices.Equal(got, w) {
				bad += fmt.Sprintf("\n%s: %v, want %v", name, got, w)
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			at.t.Fatalf("status not as wanted after 5s:%s", bad)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// waitEvent waits for an Event containing every part.
func (at *allocTest) waitEvent(parts ...string) {
	at.t.Helper()
	timeout := time.After(5 * time.Second)
	var seen []string
	for {
		select {
		case e := <-at.events.Events:
			seen = append(seen, e)
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(e, p) }) {
				return
			}
		case <-timeout:
			at.t.Fatalf("no event with %q; saw %q", parts, seen)
		}
	}
}

func (at *allocTest) update(s *corev1.Service) {
	at.t.Helper()
	if _, err := at.client.CoreV1().Services(s.Namespace).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		at.t.Fatal(err)
	}
}

func (at *allocTest) get(name string) *corev1.Service {
	at.t.Helper()
	s, err := at.client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		at.t.Fatal(err)
	}
	return s
}

func vip(ips ...string) []string {
	var out []string
	for _, ip := range ips {
		out = append(out, ip+"/VIP")
	}
	return out
}

func TestAllocatorAssignsAndHoldsTheLease(t *testing.T) {
	at := newAllocTest(t, []string{"192.168.77.200/30"},
		service("web", 2), service("db", 1), service("named", 3, asking("192.168.77.203")),
		service("internal", 0, clusterIP))
	at.waitIngress(map[string][]string{
		"db": vip("192.168.77.200"), "web": vip("192.168.77.201"), "named": vip("192.168.77.203"), "internal": nil,
	})
	lease, err := at.client.CoordinationV1().Leases(DefaultLeaseNamespace).Get(context.Background(), LeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "node-a" {
		t.Errorf("lease holder %v, want node-a", lease.Spec.HolderIdentity)
	}
	if !at.alloc.Leading() {
		t.Error("Leading() is false while holding the lease")
	}
	at.waitEvent("Normal", EventAddressAssigned, "192.168.77.200")

	// A new Service takes the one free address; the others keep theirs.
	if _, err := at.client.CoreV1().Services("default").Create(context.Background(), service("late", 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	at.waitIngress(map[string][]string{
		"db": vip("192.168.77.200"), "web": vip("192.168.77.201"), "late": vip("192.168.77.202"), "named": vip("192.168.77.203"),
	})
}

func TestAllocatorPoolExhaustedThenFreed(t *testing.T) {
	at := newAllocTest(t, []string{"10.0.0.1-10.0.0.2"}, service("a", 1), service("b", 2), service("c", 3))
	at.waitIngress(map[string][]string{"a": vip("10.0.0.1"), "b": vip("10.0.0.2")})
	at.waitEvent("Warning", EventPoolExhausted, "no free address")
	if got := at.ingress("c"); len(got) != 0 {
		t.Errorf("c shows %v with the pool exhausted", got)
	}
	// Deleting a frees its address for c.
	if err := at.client.CoreV1().Services("default").Delete(context.Background(), "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	at.waitIngress(map[string][]string{"b": vip("10.0.0.2"), "c": vip("10.0.0.1")})
}

func TestAllocatorClearsWhatItNoLongerServes(t *testing.T) {
	at := newAllocTest(t, []string{"10.0.0.1/32"},
		service("was-lb", 1, clusterIP, status("10.0.0.1")),
		service("waiting", 2),
		// Another controller's Service: an address in weft's pool is
		// removed, its own address is kept.
		service("other", 3, class("example.com/lb"), status("10.0.0.1", "203.0.113.9")))
	at.waitIngress(map[string][]string{"was-lb": nil, "other": {"203.0.113.9/-"}, "waiting": vip("10.0.0.1")})
}

func TestAllocatorRequestedAddressUnavailable(t *testing.T) {
	at := newAllocTest(t, []string{"10.0.0.0/29"}, service("a", 1, asking("10.9.9.9")))
	at.waitEvent("Warning", EventAddressUnavailable, "10.9.9.9 is in no pool")
	if got := at.ingress("a"); len(got) != 0 {
		t.Errorf("a shows %v though it asks for an address outside the pools", got)
	}
	// Asking for a pool address (spec.loadBalancerIP this time) serves it.
	s := at.get("a")
	s.Annotations = nil
	s.Spec.LoadBalancerIP = "10.0.0.5"
	at.update(s)
	at.waitIngress(map[string][]string{"a": vip("10.0.0.5")})
}

func TestAllocatorRetriesOnConflict(t *testing.T) {
	var conflicts atomic.Int32
	at := newAllocTestWith(t, []string{"10.0.0.0/29"}, func(c *fake.Clientset) {
		c.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() == "status" && conflicts.Add(1) <= 2 {
				return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "services"}, "a", fmt.Errorf("stale"))
			}
			return false, nil, nil
		})
	}, service("a", 1))
	at.waitIngress(map[string][]string{"a": vip("10.0.0.0")})
	if n := conflicts.Load(); n < 3 {
		t.Errorf("%d status writes, want two conflicts and a success", n)
	}
}

func TestAllocatorRetriesFailedWrites(t *testing.T) {
	var fail atomic.Bool
	var failed atomic.Int32 // status writes refused
	fail.Store(true)
	at := newAllocTestWith(t, []string{"10.0.0.0/29"}, func(c *fake.Clientset) {
		c.PrependReactor("update", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() == "status" && fail.Load() {
				failed.Add(1)
				return true, nil, apierrors.NewServiceUnavailable("etcd is down")
			}
			return false, nil, nil
		})
	}, service("a", 1), service("b", 2))
	// Failing passes: both Services' writes refused at least once.
	poll.True(t, 5*time.Second, 10*time.Millisecond, "two refused status writes", func() bool { return failed.Load() >= 2 })
	if got := at.ingress("a"); len(got) != 0 {
		t.Fatalf("a shows %v though every write failed", got)
	}
	fail.Store(false)
	// No Service changes: the retry after a failed pass writes them.
	at.waitIngress(map[string][]string{"a": vip("10.0.0.0"), "b": vip("10.0.0.1")})
}

func TestAllocatorWaitsForTheLease(t *testing.T) {
	other := "node-b"
	now := metav1.NewMicroTime(time.Now())
	dur := int32(1)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: DefaultLeaseNamespace, Name: LeaseName},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &other, LeaseDurationSeconds: &dur, AcquireTime: &now, RenewTime: &now},
	}
	start := time.Now()
	at := newAllocTest(t, []string{"10.0.0.0/29"}, lease, service("a", 1))
	time.Sleep(300 * time.Millisecond) // within node-b's term
	if got := at.ingress("a"); len(got) != 0 || at.alloc.Leading() {
		t.Fatalf("wrote %v (leading %v) while node-b holds the lease", got, at.alloc.Leading())
	}
	// node-b never renews: after the lease duration node-a takes over.
	at.waitIngress(map[string][]string{"a": vip("10.0.0.0")})
	if d := time.Since(start); d < time.Second {
		t.Errorf("took over after %v, before node-b's lease (1s) ran out", d)
	}
}

func TestNewAllocatorChecksItsConfig(t *testing.T) {
	client := fake.NewClientset()
	inf := informers.NewSharedInformerFactory(client, 0).Core().V1().Services().Informer()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	good := Config{}
	if err := good.Complete("lb"); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]AllocatorConfig{
		"no client":         {Services: inf, Config: good, NodeName: "n", Log: log},
		"no informer":       {Client: client, Config: good, NodeName: "n", Log: log},
		"no node name":      {Client: client, Services: inf, Config: good, Log: log},
		"config incomplete": {Client: client, Services: inf, NodeName: "n", Log: log},
		"bad lease timing":  {Client: client, Services: inf, Config: good, NodeName: "n", Log: log, LeaseDuration: time.Second, RenewDeadline: 2 * time.Second},
	} {
		if _, err := NewAllocator(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := NewAllocator(AllocatorConfig{Client: client, Services: inf, Config: good, NodeName: "n", Log: log}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// A status just written counts as the Service's while the cache still
// shows the version before the write: an older Service arriving in that
// window must not be given the same address.
func TestAllocatorRemembersWritesTheCacheHasNotShown(t *testing.T) {
	a1 := service("a", 5)
	a1.ResourceVersion = "1"
	client := fake.NewClientset(a1)
	inf := informers.NewSharedInformerFactory(client, 0).Core().V1().Services().Informer()
	// Never started: the test is the informer, and keeps it stale.
	if err := inf.GetStore().Add(a1.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Pools: []string{"10.0.0.1-10.0.0.2"}}
	if err := cfg.Complete("lb"); err != nil {
		t.Fatal(err)
	}
	alloc, err := NewAllocator(AllocatorConfig{Client: client, Services: inf, Config: cfg, NodeName: "n", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	alloc.recorder, alloc.pending, alloc.reported = record.NewFakeRecorder(10), map[string]pendingWrite{}, map[string]string{}
	ctx := context.Background()
	if !alloc.sync(ctx) {
		t.Fatal("first pass failed")
	}
	at := &allocTest{t: t, client: client}
	if got := at.ingress("a"); !slices.Equal(got, vip("10.0.0.1")) {
		t.Fatalf("a = %v", got)
	}
	older := service("older", 1)
	older.ResourceVersion = "2"
	if _, err := client.CoreV1().Services("default").Create(ctx, older, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	inf.GetStore().Add(older)
	if !alloc.sync(ctx) {
		t.Fatal("second pass failed")
	}
	if got := at.ingress("older"); !slices.Equal(got, vip("10.0.0.2")) {
		t.Errorf("older = %v, want 10.0.0.2 (10.0.0.1 is a's, though the cache does not show it yet)", got)
	}
	// Once the cache shows a new version, the memory is dropped.
	a2 := at.get("a")
	a2.ResourceVersion = "3"
	inf.GetStore().Update(a2)
	alloc.sync(ctx)
	if _, ok := alloc.pending["default/a"]; ok {
		t.Error("pending write kept after the cache moved on")
	}
	if got := at.ingress("a"); !slices.Equal(got, vip("10.0.0.1")) {
		t.Errorf("a = %v after the cache caught up", got)
	}
}
