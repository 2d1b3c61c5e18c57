package agent

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/weftnet/weft/agent/kube"
)

// crdLater is discovery that serves ServiceExports once installed is set.
type crdLater struct {
	discovery.DiscoveryInterface
	installed atomic.Bool
	asked     atomic.Int32
}

func (d *crdLater) ServerResourcesForGroupVersion(gv string) (*metav1.APIResourceList, error) {
	d.asked.Add(1)
	if d.installed.Load() {
		return &metav1.APIResourceList{GroupVersion: gv, APIResources: []metav1.APIResource{{Name: "serviceexports", Namespaced: true}}}, nil
	}
	return d.DiscoveryInterface.ServerResourcesForGroupVersion(gv) // NotFound
}

// Without the CRD only discovery is asked; once it is installed the
// ServiceExports reach the handlers, and a Service with one is exported.
func TestServiceExportsOnceTheCRDIsInstalled(t *testing.T) {
	client := fake.NewClientset()
	d := &crdLater{DiscoveryInterface: client.Discovery().(*fakediscovery.FakeDiscovery)}
	if ok, err := serviceExportsServed(d); ok || err != nil {
		t.Fatalf("without the CRD: served %v, err %v", ok, err)
	}
	d.asked.Store(0)
	se := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "multicluster.x-k8s.io/v1alpha1", Kind: "ServiceExport"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
	}
	scheme := runtime.NewScheme()
	if err := metav1.AddMetaToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	meta := metadatafake.NewSimpleMetadataClient(scheme, se)
	cs := newClustersetSync(client, kube.NewInformers(client, 0), "west-1", clustersetIPConfig{}, slog.New(slog.DiscardHandler))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchServiceExports(ctx, d, meta, 10*time.Millisecond, slog.New(slog.DiscardHandler), []cache.ResourceEventHandler{cs.ServiceExportHandler()})
	}()
	waitFor(t, "discovery asked once", func() bool { return d.asked.Load() >= 1 })
	time.Sleep(50 * time.Millisecond) // five intervals: no polling at rest
	if n := d.asked.Load(); n != 1 {
		t.Errorf("discovery asked %d times without a CRD; want once, then only when the CRD appears", n)
	}
	if cs.exportCR("shop", "web") {
		t.Fatal("ServiceExport seen before its CRD is installed")
	}
	// The CRD appears: its watch wakes a discovery question.
	d.installed.Store(true)
	crd := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: serviceExportCRD},
	}
	if _, err := meta.Resource(crdGVR).(metadatafake.MetadataClient).CreateFake(crd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ServiceExport", func() bool { return cs.exportCR("shop", "web") })
	if cs.exportCR("shop", "db") {
		t.Error("a Service without a ServiceExport counts as exported")
	}
	cancel()
	<-done
}
