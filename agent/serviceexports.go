package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/agent/kube"
)

// ServiceExports of the Multi-Cluster Services API mark Services exported,
// as the weft.dev/export annotation does. Their CRD is optional: the agent
// watches for the CRD itself (its metadata, by name: one idle watch, no
// polling), asks discovery whenever it appears or changes, and once the
// API server serves ServiceExports, watches their metadata (namespace and
// name are all it reads). Nothing waits for them.

// serviceExportGVR is the resource the MCS API defines.
var serviceExportGVR = schema.GroupVersionResource{Group: "multicluster.x-k8s.io", Version: "v1alpha1", Resource: "serviceexports"}

// crdGVR and serviceExportCRD name the CRD that defines ServiceExports.
var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

const serviceExportCRD = "serviceexports.multicluster.x-k8s.io"

// serviceExportConsumer is a part of the agent that reads ServiceExports.
type serviceExportConsumer interface {
	ServiceExportHandler() cache.ResourceEventHandler
}

// ServiceExportHandler feeds ServiceExports to the clusterset zone.
func (d *dnsAddon) ServiceExportHandler() cache.ResourceEventHandler {
	return d.set.ServiceExportHandler()
}

// startServiceExports watches ServiceExports for the addons and the
// clusterset sync that read them, once their CRD is installed.
func (a *Agent) startServiceExports(ctx context.Context) {
	var hs []cache.ResourceEventHandler
	for _, ad := range a.addons {
		if c, ok := ad.(serviceExportConsumer); ok {
			hs = append(hs, c.ServiceExportHandler())
		}
	}
	if a.clusterset != nil {
		hs = append(hs, a.clusterset.ServiceExportHandler())
	}
	if len(hs) == 0 {
		return
	}
	meta, err := kube.NewMetadataClient(a.cfg.Kubernetes.Kubeconfig, "weft-agent/"+a.cfg.NodeName)
	if err != nil {
		a.log.Warn("ServiceExports not watched; only the weft.dev/export annotation exports Services", "err", err)
		return
	}
	go watchServiceExports(ctx, a.kubeClient.Discovery(), meta, a.cfg.ResyncInterval.Duration, a.log, hs)
}

// serviceExportsServed asks discovery whether the API server serves
// ServiceExports.
func serviceExportsServed(d discovery.DiscoveryInterface) (bool, error) {
	rl, err := d.ServerResourcesForGroupVersion(serviceExportGVR.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("failed to ask discovery for %s: %w", serviceExportGVR.GroupVersion(), err)
	}
	for _, r := range rl.APIResources {
		if r.Name == serviceExportGVR.Resource {
			return true, nil
		}
	}
	return false, nil
}

// watchServiceExports waits until ServiceExports are served, then feeds
// them to handlers until ctx ends. It asks discovery once at the start and
// again whenever the ServiceExport CRD is added or changes (its Established
// condition), as a watch on that one CRD shows; at rest it sends nothing.
// interval spaces the questions while a CRD that exists is not served yet.
func watchServiceExports(ctx context.Context, d discovery.DiscoveryInterface, meta metadata.Interface, interval time.Duration, log *slog.Logger, hs []cache.ResourceEventHandler) {
	wake := make(chan struct{}, 1)
	notify := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	crds := metadatainformer.NewFilteredMetadataInformer(meta, crdGVR, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + serviceExportCRD }).Informer()
	if _, err := crds.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
	}); err != nil {
		log.Error("failed to watch the ServiceExport CRD", "err", err)
		return
	}
	crdCtx, stopCRDs := context.WithCancel(ctx)
	defer stopCRDs()
	go crds.Run(crdCtx.Done())
	notify() // installed before the agent started
	for served := false; !served; {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		ok, err := serviceExportsServed(d)
		if err != nil {
			log.Debug("ServiceExport CRD not known yet", "err", err)
		}
		served = ok
		if !ok && len(crds.GetStore().List()) > 0 {
			// The CRD exists but is not served yet: ask again soon.
			time.AfterFunc(interval, notify)
		}
	}
	stopCRDs()
	inf := metadatainformer.NewFilteredMetadataInformer(meta, serviceExportGVR, metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	for _, h := range hs {
		if _, err := inf.AddEventHandler(h); err != nil {
			log.Error("failed to register a ServiceExport handler", "err", err)
			return
		}
	}
	log.Info("the ServiceExport CRD is installed: Services with a ServiceExport are exported to peered clusters")
	inf.Run(ctx.Done())
}
