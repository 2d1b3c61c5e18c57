package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Watcher caches Nodes and writes this node's annotations and condition.
//
// Informer callbacks copy what they need into lean structs under mu, never
// call the API and never block: they poke the one-slot changes channel.
type Watcher struct {
	client kubernetes.Interface
	self   string
	log    *slog.Logger

	changes chan struct{}
	synced  chan struct{}

	mu      sync.Mutex // guards the fields below
	nodes   map[string]Node
	deleted map[string]bool // names whose Node object was deleted and not re-created
}

// NewWatcher watches Nodes for the node named self.
func NewWatcher(client kubernetes.Interface, self string, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	return &Watcher{
		client:  client,
		self:    self,
		log:     log.With("component", "kube", "node", self),
		changes: make(chan struct{}, 1),
		synced:  make(chan struct{}),
		nodes:   map[string]Node{},
		deleted: map[string]bool{},
	}
}

// Run starts the Node informer and returns; it stops when ctx is done. The
// informer lists and watches with client-go's backoff, so an API server that
// is away is retried without the agent noticing.
func (w *Watcher) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(w.client, 0)
	inf := factory.Core().V1().Nodes().Informer()
	// Keep only the lean struct, not the whole object, in our own map; the
	// informer's store still holds objects, so strip what we never read.
	if err := inf.SetTransform(stripNode); err != nil {
		return fmt.Errorf("failed to set node transform: %w", err)
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.upsert(obj) },
		UpdateFunc: func(_, obj any) { w.upsert(obj) },
		DeleteFunc: func(obj any) { w.remove(obj) },
	})
	if err != nil {
		return fmt.Errorf("failed to watch nodes: %w", err)
	}
	factory.Start(ctx.Done())
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			close(w.synced)
			w.notify()
		}
	}()
	return nil
}

// stripNode drops the fields weft never reads (images, volumes, managed
// fields), so that watching every Node stays cheap.
func stripNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	n.ManagedFields = nil
	n.Status.Images = nil
	n.Status.VolumesAttached = nil
	n.Status.VolumesInUse = nil
	return n, nil
}

// WaitSynced waits until the first list has been cached, or timeout.
func (w *Watcher) WaitSynced(ctx context.Context, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.synced:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// Synced reports whether the cache holds a full list.
func (w *Watcher) Synced() bool {
	select {
	case <-w.synced:
		return true
	default:
		return false
	}
}

// Changes signals that the cache changed (coalesced, never closed).
func (w *Watcher) Changes() <-chan struct{} { return w.changes }

func (w *Watcher) notify() {
	select {
	case w.changes <- struct{}{}:
	default:
	}
}

func (w *Watcher) upsert(obj any) {
	o, ok := obj.(*corev1.Node)
	if !ok {
		w.log.Warn("ignoring an unexpected object in the node informer", "type", fmt.Sprintf("%T", obj))
		return
	}
	n := fromObject(o, w.log)
	w.mu.Lock()
	w.nodes[n.Name] = n
	delete(w.deleted, n.Name)
	w.mu.Unlock()
	w.notify()
}

func (w *Watcher) remove(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	o, ok := obj.(*corev1.Node)
	if !ok {
		w.log.Warn("ignoring an unexpected deleted object in the node informer", "type", fmt.Sprintf("%T", obj))
		return
	}
	w.mu.Lock()
	delete(w.nodes, o.Name)
	w.deleted[o.Name] = true
	w.mu.Unlock()
	w.log.Info("node object deleted; its peer is withdrawn", "deleted", o.Name)
	w.notify()
}

// Node returns the cached Node named name.
func (w *Watcher) Node(name string) (Node, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ok := w.nodes[name]
	if ok {
		n.Annotations = maps.Clone(n.Annotations)
	}
	return n, ok
}

// Nodes returns every cached Node, sorted by name.
func (w *Watcher) Nodes() []Node {
	w.mu.Lock()
	out := make([]Node, 0, len(w.nodes))
	for _, n := range w.nodes {
		n.Annotations = maps.Clone(n.Annotations)
		out = append(out, n)
	}
	w.mu.Unlock()
	sortNodes(out)
	return out
}

// Deleted reports whether name's Node object was deleted (and not
// re-created) while this agent watched. Members absent from the cache for
// any other reason (the API server is away, the node registered late) are
// not reported: the data plane must keep reaching them.
func (w *Watcher) Deleted(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.deleted[name]
}

// Publish makes this node's weft annotations equal ann and its
// NetworkUnavailable condition False, patching only what differs from the
// cache so that an idle agent makes no API requests.
func (w *Watcher) Publish(ctx context.Context, ann map[string]string) error {
	cur, ok := w.Node(w.self)
	if !ok {
		return fmt.Errorf("node %s is not in the cache yet", w.self)
	}
	if !maps.Equal(cur.Annotations, ann) {
		patch := map[string]any{"metadata": map[string]any{"annotations": diffAnnotations(cur.Annotations, ann)}}
		b, _ := json.Marshal(patch)
		if _, err := w.client.CoreV1().Nodes().Patch(ctx, w.self, types.MergePatchType, b, metav1.PatchOptions{FieldManager: "weft"}); err != nil {
			return fmt.Errorf("failed to annotate node %s: %w", w.self, err)
		}
	}
	if !cur.NetworkAvailable {
		now := metav1.Now()
		patch := map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{{
			Type:               corev1.NodeNetworkUnavailable,
			Status:             corev1.ConditionFalse,
			Reason:             "WeftIsUp",
			Message:            "weft routes and tunnels are in place",
			LastTransitionTime: now,
			LastHeartbeatTime:  now,
		}}}}
		b, _ := json.Marshal(patch)
		if _, err := w.client.CoreV1().Nodes().PatchStatus(ctx, w.self, b); err != nil {
			return fmt.Errorf("failed to set NetworkUnavailable=False on node %s: %w", w.self, err)
		}
		w.log.Info("node network marked available")
	}
	return nil
}

// diffAnnotations is a merge patch turning cur's weft annotations into want
// (null deletes).
func diffAnnotations(cur, want map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range want {
		if cur[k] != v {
			out[k] = v
		}
	}
	for k := range cur {
		if _, ok := want[k]; !ok {
			out[k] = nil
		}
	}
	return out
}
