package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/agent/kube"
	"github.com/weftnet/weft/clusterset"
)

// Timeouts of the export exchange between gateways.
const (
	clustersetFetchTimeout = 10 * time.Second
	clustersetReadTimeout  = 10 * time.Second
	clustersetWriteTimeout = 30 * time.Second
)

// clustersetSync serves this cluster's exports and imports the peers'.
// The peering loop calls Serve when this node becomes the cluster's active
// gateway (Stop when it no longer is) and Pull every resync while it is;
// only the active gateway writes the derived EndpointSlices, and a new one
// adopts what the previous one wrote (SyncImports lists them all).
//
// It reads the shared informers' caches (Services, EndpointSlices,
// Namespaces), so it must be made before the informers start.
type clustersetSync struct {
	client     kubernetes.Interface
	clusterID  string
	ips        clustersetIPConfig
	log        *slog.Logger
	services   cache.SharedIndexInformer
	slices     cache.SharedIndexInformer
	namespaces cache.SharedIndexInformer
	http       *http.Client

	mu      sync.Mutex // guards the fields below
	status  ClustersetStatus
	srv     *http.Server
	skipped map[string]string   // "cluster/ns/name" → reason, logged once
	crs     map[string]struct{} // "ns/name" of ServiceExports (when their CRD is installed)
	ipNote  string              // the last clusterset IP problems logged
}

func newClustersetSync(client kubernetes.Interface, inf *kube.Informers, clusterID string, ips clustersetIPConfig, log *slog.Logger) *clustersetSync {
	return &clustersetSync{
		client:     client,
		clusterID:  clusterID,
		ips:        ips,
		log:        log,
		services:   inf.Services(),
		slices:     inf.EndpointSlices(),
		namespaces: inf.Namespaces(),
		// Straight to the peer through the tunnel: never through an
		// HTTP proxy the agent's environment may name.
		http: &http.Client{Timeout: clustersetFetchTimeout, Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: clustersetReadTimeout}).DialContext,
			ResponseHeaderTimeout: clustersetReadTimeout,
			MaxIdleConnsPerHost:   1,
			IdleConnTimeout:       time.Minute,
		}},
		skipped: map[string]string{},
		crs:     map[string]struct{}{},
	}
}

// ServiceExportHandler feeds ServiceExports (their metadata).
func (c *clustersetSync) ServiceExportHandler() cache.ResourceEventHandler {
	set := func(obj any, on bool) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		o, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if on {
			c.crs[o.GetNamespace()+"/"+o.GetName()] = struct{}{}
		} else {
			delete(c.crs, o.GetNamespace()+"/"+o.GetName())
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { set(obj, true) },
		UpdateFunc: func(_, obj any) { set(obj, true) },
		DeleteFunc: func(obj any) { set(obj, false) },
	}
}

// exportCR reports a ServiceExport namespace/name.
func (c *clustersetSync) exportCR(namespace, name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.crs[namespace+"/"+name]
	return ok
}

// synced reports whether the caches hold the cluster's state: before that
// nothing is served, and nothing imported is deleted.
func (c *clustersetSync) synced() bool {
	return c.services.HasSynced() && c.slices.HasSynced() && c.namespaces.HasSynced()
}

// exports is this cluster's Document, from the caches.
func (c *clustersetSync) exports() (clusterset.Document, error) {
	if !c.synced() {
		return clusterset.Document{}, errors.New("the agent has not listed Services and EndpointSlices yet")
	}
	var svcs []*corev1.Service
	for _, o := range c.services.GetStore().List() {
		if s, ok := o.(*corev1.Service); ok {
			svcs = append(svcs, s)
		}
	}
	var sls []*discoveryv1.EndpointSlice
	for _, o := range c.slices.GetStore().List() {
		if s, ok := o.(*discoveryv1.EndpointSlice); ok {
			sls = append(sls, s)
		}
	}
	return clusterset.Exports(c.clusterID, svcs, sls, c.exportCR), nil
}

// Serve serves /v1/exports on addr (the gateway's tunnel address) until ctx ends or Stop.
func (c *clustersetSync) Serve(ctx context.Context, addr netip.AddrPort) error {
	srv := &http.Server{
		Handler:           &clusterset.Handler{Exports: c.exports, Log: c.log},
		ReadHeaderTimeout: clustersetReadTimeout,
		ReadTimeout:       clustersetReadTimeout,
		WriteTimeout:      clustersetWriteTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
	}
	c.mu.Lock()
	if c.srv != nil {
		c.mu.Unlock()
		return errors.New("clusterset exports: already serving")
	}
	c.srv = srv
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.srv == srv {
			c.srv = nil
		}
		c.mu.Unlock()
	}()
	l, err := net.Listen("tcp", addr.String())
	if err != nil {
		return fmt.Errorf("failed to listen for clusterset exports on %s: %w", addr, err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = srv.Close()
		case <-done:
		}
	}()
	c.log.Info("serving this cluster's exports", "addr", addr)
	err = srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("clusterset exports on %s: %w", addr, err)
}

// Stop ends Serve, if it runs.
func (c *clustersetSync) Stop() {
	c.mu.Lock()
	srv := c.srv
	c.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Pull fetches each remote's exports and syncs the imports; remotes with a zero Addr are skipped but their existing imports are kept.
//
// A remote whose fetch fails (unreachable, or a document that is refused
// whole) keeps its existing imports too: names do not vanish on a blip.
// Imports of clusters not among remotes are deleted. The error joins
// every failure; what succeeded is applied regardless.
func (c *clustersetSync) Pull(ctx context.Context, remotes []clusterset.Remote) error {
	if !c.synced() {
		return errors.New("clusterset imports: the agent has not listed Services, EndpointSlices and Namespaces yet")
	}
	type result struct {
		doc clusterset.Document
		err error
	}
	results := make([]result, len(remotes))
	var wg sync.WaitGroup
	for i, r := range remotes {
		if !r.Addr.IsValid() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fctx, cancel := context.WithTimeout(ctx, clustersetFetchTimeout)
			defer cancel()
			doc, err := clusterset.Fetch(fctx, c.http, r.Addr)
			if err == nil && doc.Cluster != r.ID {
				err = fmt.Errorf("exports from %s are of cluster %q, not %q", r.Addr, doc.Cluster, r.ID)
			}
			results[i] = result{doc, err}
		}()
	}
	wg.Wait()

	keep := map[string]bool{}
	imported := map[string]int{}
	var desired []*discoveryv1.EndpointSlice
	var errs []error
	skipped := map[string]string{}
	for i, r := range remotes {
		res := results[i]
		if !r.Addr.IsValid() || res.err != nil {
			keep[r.ID] = true
			if res.err != nil {
				errs = append(errs, fmt.Errorf("cluster %s: %w", r.Cluster, res.err))
			}
			continue
		}
		sls, skips := clusterset.PlanImports(r.ID, res.doc, c.namespaceExists, r.Networks)
		desired = append(desired, sls...)
		imported[r.Cluster] = importedServices(sls)
		for _, s := range skips {
			skipped[r.ID+"/"+s.Service] = s.Reason
		}
	}
	c.logSkipped(skipped)
	if err := clusterset.SyncImports(ctx, c.client, desired, func(id string) bool { return keep[id] }); err != nil {
		errs = append(errs, err)
	}
	ipst := c.syncIPs(ctx, remotes, append(desired, c.keptImports(keep)...))
	err := errors.Join(errs...)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.ClustersetIPStatus = ipst
	for _, r := range remotes {
		if _, ok := imported[r.Cluster]; !ok {
			imported[r.Cluster] = c.status.Imported[r.Cluster] // kept as they were
		}
	}
	c.status.Imported, c.status.Skipped, c.status.LastPull = imported, len(skipped), time.Now()
	c.status.PullError = ""
	if err != nil {
		c.status.PullError = err.Error()
	}
	return err
}

// ClustersetStatus is the export exchange as the active gateway runs it.
type ClustersetStatus struct {
	// Exported is how many Services this cluster exports.
	Exported int `json:"exported"`
	// Imported maps a peer's name to how many of its exports are imported
	// here (as the last pull left them).
	Imported map[string]int `json:"imported,omitempty"`
	// Skipped counts exports left out (no such namespace here, addresses
	// outside the peer's networks).
	Skipped   int       `json:"skipped,omitempty"`
	LastPull  time.Time `json:"lastPull,omitzero"`
	PullError string    `json:"pullError,omitempty"`
	ClustersetIPStatus
}

// Status reports the exchange: the exports now, the imports as the last
// pull left them.
func (c *clustersetSync) Status() ClustersetStatus {
	c.mu.Lock()
	st := c.status
	st.Imported = maps.Clone(st.Imported)
	c.mu.Unlock()
	if doc, err := c.exports(); err == nil {
		st.Exported = len(doc.Services)
	}
	return st
}

// importedServices counts the distinct Services among derived slices.
func importedServices(sls []*discoveryv1.EndpointSlice) int {
	seen := map[string]bool{}
	for _, s := range sls {
		seen[s.Namespace+"/"+s.Labels[clusterset.LabelServiceName]] = true
	}
	return len(seen)
}

func (c *clustersetSync) namespaceExists(name string) bool {
	_, ok, err := c.namespaces.GetStore().GetByKey(name)
	return ok && err == nil
}

// logSkipped logs each skipped import once, when it first appears or its
// reason changes, not every pull.
func (c *clustersetSync) logSkipped(now map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(now))
	for k := range now {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if c.skipped[k] != now[k] {
			c.log.Warn("not importing an exported service", "service", k, "reason", now[k])
		}
	}
	c.skipped = now
}
