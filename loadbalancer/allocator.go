package loadbalancer

// The allocator runs on every agent but works only on the one holding the
// Lease: it computes the assignment (assign.go) from the Service
// informer's cache and writes the outcome to each Service's status.
//
// Informer handlers only kick a buffered(1) channel. One goroutine per
// term of leadership (lead) owns the rest: on a kick, a resync tick or a
// retry after a failed write, it lists the cache, assigns, and writes the
// Services whose status differs. A write it made but the cache has not
// shown yet is remembered (pending), so the next pass does not hand that
// address out again. A Service weft cannot serve gets no address and an
// Event; nothing else is touched, so an exhausted pool costs only the
// Services it cannot hold.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
)

// Lease, annotation and Event names.
const (
	// LeaseName is the coordination.k8s.io Lease the allocators compete
	// for; its holder is the node name of the assigning agent.
	LeaseName = "weft-loadbalancer"
	// DefaultLeaseNamespace is where the Lease lives unless
	// AllocatorConfig.Namespace says otherwise.
	DefaultLeaseNamespace = "weft-system"
	// AnnotationRequestedIP asks for one address, like the deprecated
	// spec.loadBalancerIP; when both are set, the annotation wins.
	AnnotationRequestedIP = "weft.dev/load-balancer-ip"

	EventPoolExhausted      = "LoadBalancerPoolExhausted"
	EventAddressUnavailable = "LoadBalancerAddressUnavailable"
	EventAddressAssigned    = "LoadBalancerAddressAssigned"
)

// Defaults for AllocatorConfig.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
	DefaultResync        = 60 * time.Second
	// retryWrites is how soon a pass with a failed write is repeated.
	retryWrites = 2 * time.Second
)

// AllocatorConfig assembles an Allocator.
type AllocatorConfig struct {
	Client kubernetes.Interface
	// Services is an informer of *corev1.Service (full objects: a
	// transform may drop managedFields, not spec or status). The caller
	// starts it; Run waits for it to sync.
	Services cache.SharedIndexInformer
	Config   Config // completed
	// NodeName is this agent's identity in the Lease.
	NodeName string
	// Namespace holds the Lease. Default DefaultLeaseNamespace.
	Namespace string
	Log       *slog.Logger
	// Metrics, when set, receives the leader's pool usage.
	Metrics *Metrics
	// Recorder, when set, records the Events; otherwise Run records them
	// through Client.
	Recorder record.EventRecorder
	// Lease timing (client-go leaderelection). Zero: the defaults above.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Resync is how often the whole assignment is rechecked without a
	// change. Default DefaultResync.
	Resync time.Duration
}

// Allocator assigns load-balancer addresses while it holds the Lease.
type Allocator struct {
	cfg  AllocatorConfig
	log  *slog.Logger
	kick chan struct{}

	leading sync.Mutex // held by lead for its whole term; Run waits on it

	// Owned by lead (one term at a time).
	recorder record.EventRecorder
	pending  map[string]pendingWrite // service key → write not yet in the cache
	reported map[string]string       // service key → last outcome told in an Event

	mu     sync.Mutex // guards leader
	leader bool
}

// pendingWrite is a status written that the cache may not show yet: while
// the cached object's resourceVersion is one from before the write, the
// written ingress is what the Service holds.
type pendingWrite struct {
	before  []string // resourceVersions the write replaced
	ingress []corev1.LoadBalancerIngress
	at      time.Time
}

// pendingTTL bounds how long a write is assumed missing from the cache
// (an informer shows a write within a second or so; this is a backstop).
const pendingTTL = 30 * time.Second

// NewAllocator checks the configuration and returns an allocator; Run
// starts it.
func NewAllocator(cfg AllocatorConfig) (*Allocator, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("loadbalancer allocator: no Kubernetes client")
	case cfg.Services == nil:
		return nil, errors.New("loadbalancer allocator: no Service informer")
	case cfg.NodeName == "":
		return nil, errors.New("loadbalancer allocator: no node name (the Lease identity)")
	case cfg.Log == nil:
		return nil, errors.New("loadbalancer allocator: no logger")
	}
	if cfg.Config.Class == "" {
		return nil, errors.New("loadbalancer allocator: configuration not completed (no class)")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultLeaseNamespace
	}
	cfg.LeaseDuration = cmpOr(cfg.LeaseDuration, DefaultLeaseDuration)
	cfg.RenewDeadline = cmpOr(cfg.RenewDeadline, DefaultRenewDeadline)
	cfg.RetryPeriod = cmpOr(cfg.RetryPeriod, DefaultRetryPeriod)
	cfg.Resync = cmpOr(cfg.Resync, DefaultResync)
	a := &Allocator{
		cfg:  cfg,
		log:  cfg.Log.With("component", "loadbalancer-allocator"),
		kick: make(chan struct{}, 1),
	}
	if _, err := a.elector(); err != nil {
		return nil, err
	}
	return a, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Leading reports whether this agent holds the Lease now.
func (a *Allocator) Leading() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.leader
}

func (a *Allocator) setLeading(v bool) {
	a.mu.Lock()
	a.leader = v
	a.mu.Unlock()
}

func (a *Allocator) elector() (*leaderelection.LeaderElector, error) {
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: a.cfg.Namespace, Name: LeaseName},
			Client:     a.cfg.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: a.cfg.NodeName},
		},
		LeaseDuration:   a.cfg.LeaseDuration,
		RenewDeadline:   a.cfg.RenewDeadline,
		RetryPeriod:     a.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: a.lead,
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				a.log.Info("load-balancer leader", "node", id)
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("loadbalancer allocator: bad lease timing: %w", err)
	}
	return le, nil
}

// Run campaigns for the Lease and assigns while it holds it, until ctx is
// done. It returns nil then, or an error when it cannot start.
func (a *Allocator) Run(ctx context.Context) error {
	kick := func() {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
	reg, err := a.cfg.Services.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		UpdateFunc: func(any, any) { kick() },
		DeleteFunc: func(any) { kick() },
	})
	if err != nil {
		return fmt.Errorf("failed to watch Services for load balancing: %w", err)
	}
	defer a.cfg.Services.RemoveEventHandler(reg)
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil // ctx done
	}
	a.recorder = a.cfg.Recorder
	if a.recorder == nil {
		b := record.NewBroadcaster(record.WithContext(ctx))
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: a.cfg.Client.CoreV1().Events("")})
		defer b.Shutdown()
		a.recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "weft-loadbalancer", Host: a.cfg.NodeName})
	}
	for {
		le, err := a.elector()
		if err != nil {
			return err
		}
		le.Run(ctx) // returns when the Lease is lost, or ctx is done
		// Run does not wait for lead: take its lock so a term's writes end
		// before the next campaign (or the return).
		a.leading.Lock()
		a.leading.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		a.log.Warn("lost the load-balancer Lease; campaigning again")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(a.cfg.RetryPeriod):
		}
	}
}

// lead is one term of leadership: it assigns on every kick until ctx (the
// term) ends.
func (a *Allocator) lead(ctx context.Context) {
	a.leading.Lock()
	defer a.leading.Unlock()
	if ctx.Err() != nil {
		return
	}
	a.setLeading(true)
	defer a.setLeading(false)
	defer a.cfg.Metrics.notLeader()
	a.log.Info("holding the load-balancer Lease: assigning addresses", "pools", len(a.cfg.Config.ParsedPools()))
	a.pending = map[string]pendingWrite{}
	a.reported = map[string]string{}
	resync := time.NewTicker(a.cfg.Resync)
	defer resync.Stop()
	var retryC <-chan time.Time
	for {
		if ok := a.sync(ctx); !ok && ctx.Err() == nil {
			retryC = time.After(retryWrites)
		}
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-resync.C:
		case <-retryC:
			retryC = nil
		}
	}
}

// sync runs one pass; false when some write failed.
func (a *Allocator) sync(ctx context.Context) bool {
	pools, class := a.cfg.Config.ParsedPools(), a.cfg.Config.Class
	var svcs []*corev1.Service
	var reqs []Request
	for _, obj := range a.cfg.Services.GetStore().List() {
		svc, ok := obj.(*corev1.Service)
		if !ok {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		ingress := svc.Status.LoadBalancer.Ingress
		if p, ok := a.pending[key]; ok {
			if slices.Contains(p.before, svc.ResourceVersion) && time.Since(p.at) < pendingTTL {
				ingress = p.ingress
			} else {
				delete(a.pending, key) // the cache has caught up
			}
		}
		current := ingressAddrs(ingress)
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer && !slices.ContainsFunc(current, func(x netip.Addr) bool { return inAny(pools, x) }) {
			continue
		}
		svcs = append(svcs, svc)
		reqs = append(reqs, Request{
			Key: key, Type: svc.Spec.Type, Class: svc.Spec.LoadBalancerClass,
			Requested: requested(svc), Current: current, Created: svc.CreationTimestamp.Time,
		})
	}
	as := Assign(pools, class, reqs)
	a.cfg.Metrics.setAssignment(pools, as)

	ok := true
	seen := make(map[string]bool, len(as))
	for i, asg := range as {
		svc, key := svcs[i], asg.Key
		seen[key] = true
		ingress := svc.Status.LoadBalancer.Ingress
		if p, found := a.pending[key]; found {
			ingress = p.ingress
		}
		want := desiredIngress(ingress, asg, pools, Serves(svc.Spec.Type, svc.Spec.LoadBalancerClass, class))
		if !sameIngress(ingress, want) {
			written, err := a.writeStatus(ctx, svc, want)
			if err != nil {
				ok = false
				a.log.Warn("failed to write load-balancer status", "service", key, "err", err)
				continue
			}
			switch {
			case !written:
				continue // changed meanwhile: the next pass decides
			case asg.Addr.IsValid():
				a.log.Info("assigned load-balancer address", "service", key, "address", asg.Addr)
			default:
				a.log.Info("cleared load-balancer address", "service", key, "reason", asg.Reason)
			}
		}
		a.report(svc, asg)
	}
	for key := range a.reported {
		if !seen[key] {
			delete(a.reported, key)
		}
	}
	return ok
}

// report records an Event when a Service's outcome changed.
func (a *Allocator) report(svc *corev1.Service, asg Assignment) {
	outcome := string(asg.Reason) + asg.Addr.String()
	if a.reported[asg.Key] == outcome {
		return
	}
	a.reported[asg.Key] = outcome
	switch {
	case asg.Addr.IsValid():
		a.recorder.Eventf(svc, corev1.EventTypeNormal, EventAddressAssigned, "Assigned load-balancer address %s", asg.Addr)
	case asg.Reason == ReasonPoolExhausted:
		a.recorder.Eventf(svc, corev1.EventTypeWarning, EventPoolExhausted, "No load-balancer address: %s", asg.Detail)
	case asg.Reason.Unserved():
		a.recorder.Eventf(svc, corev1.EventTypeWarning, EventAddressUnavailable, "No load-balancer address: %s", asg.Detail)
	}
}

// errChanged: the Service changed under a write; the next pass sees it.
var errChanged = errors.New("service changed")

// writeStatus sets svc's ingress, retrying on conflict as long as the
// Service's assignment inputs are unchanged. It reports false, and no
// error, when the Service changed or went away meanwhile.
func (a *Allocator) writeStatus(ctx context.Context, svc *corev1.Service, ingress []corev1.LoadBalancerIngress) (bool, error) {
	key := svc.Namespace + "/" + svc.Name
	client := a.cfg.Client.CoreV1().Services(svc.Namespace)
	base := svc
	before := []string{svc.ResourceVersion}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj := base.DeepCopy()
		obj.Status.LoadBalancer.Ingress = ingress
		_, err := client.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return err
		}
		latest, gerr := client.Get(ctx, svc.Name, metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		if !sameInputs(latest, svc) {
			return errChanged
		}
		base = latest
		before = append(before, latest.ResourceVersion)
		return err
	})
	switch {
	case errors.Is(err, errChanged), apierrors.IsNotFound(err):
		return false, nil // the informer brings the change, and another pass
	case err != nil:
		a.cfg.Metrics.countWrite(err)
		return false, fmt.Errorf("failed to update status of Service %s: %w", key, err)
	}
	a.cfg.Metrics.countWrite(nil)
	a.pending[key] = pendingWrite{before: before, ingress: ingress, at: time.Now()}
	return true, nil
}

// sameInputs reports whether two versions of a Service assign alike and
// show the same status.
func sameInputs(a, b *corev1.Service) bool {
	return a.Spec.Type == b.Spec.Type && equalPtr(a.Spec.LoadBalancerClass, b.Spec.LoadBalancerClass) &&
		requested(a) == requested(b) && sameIngress(a.Status.LoadBalancer.Ingress, b.Status.LoadBalancer.Ingress)
}

func equalPtr(a, b *string) bool {
	return (a == nil) == (b == nil) && (a == nil || *a == *b)
}

// requested is the address a Service asks for: the annotation, else
// spec.loadBalancerIP.
func requested(svc *corev1.Service) string {
	if v := svc.Annotations[AnnotationRequestedIP]; v != "" {
		return v
	}
	return svc.Spec.LoadBalancerIP
}

func ingressAddrs(ingress []corev1.LoadBalancerIngress) []netip.Addr {
	var out []netip.Addr
	for _, in := range ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func inAny(pools []Pool, a netip.Addr) bool {
	return slices.ContainsFunc(pools, func(p Pool) bool { return p.Contains(a) })
}

// desiredIngress is the status weft wants a Service to show. A Service
// with an address shows only it; otherwise weft removes the addresses of
// its pools and leaves the rest (another controller's) alone.
func desiredIngress(current []corev1.LoadBalancerIngress, asg Assignment, pools []Pool, serves bool) []corev1.LoadBalancerIngress {
	if serves && asg.Addr.IsValid() {
		vip := corev1.LoadBalancerIPModeVIP
		return []corev1.LoadBalancerIngress{{IP: asg.Addr.String(), IPMode: &vip}}
	}
	var out []corev1.LoadBalancerIngress
	for _, in := range current {
		if a, err := netip.ParseAddr(in.IP); err == nil && inAny(pools, a.Unmap()) {
			continue
		}
		out = append(out, in)
	}
	return out
}

// sameIngress compares ingress lists. An unset ipMode is VIP: API
// servers without the field drop it, and the status would otherwise be
// rewritten on every pass.
func sameIngress(a, b []corev1.LoadBalancerIngress) bool {
	mode := func(m *corev1.LoadBalancerIPMode) corev1.LoadBalancerIPMode {
		if m == nil {
			return corev1.LoadBalancerIPModeVIP
		}
		return *m
	}
	return slices.EqualFunc(a, b, func(x, y corev1.LoadBalancerIngress) bool {
		return x.IP == y.IP && x.Hostname == y.Hostname && mode(x.IPMode) == mode(y.IPMode) &&
			slices.EqualFunc(x.Ports, y.Ports, func(p, q corev1.PortStatus) bool {
				return p.Port == q.Port && p.Protocol == q.Protocol && equalPtr(p.Error, q.Error)
			})
	})
}
