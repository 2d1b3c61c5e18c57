package clusterset

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// syncPlan is what SyncImports changes.
type syncPlan struct {
	create, update, delete []*discoveryv1.EndpointSlice
}

// planSync compares the derived slices that exist (every slice managed by
// ManagedBy) with the desired ones. A desired slice that is missing is
// created; one that differs is updated (its address type cannot change, so
// it is deleted and created instead); an existing one that is not desired
// is deleted, unless keep says its source cluster's imports stay as they
// are (its gateway is unreachable for now). A new active gateway thereby
// adopts what the previous one wrote.
func planSync(existing []discoveryv1.EndpointSlice, desired []*discoveryv1.EndpointSlice, keep func(cluster string) bool) syncPlan {
	var p syncPlan
	have := map[string]*discoveryv1.EndpointSlice{}
	for i := range existing {
		e := &existing[i]
		have[e.Namespace+"/"+e.Name] = e
	}
	want := map[string]bool{}
	for _, d := range desired {
		key := d.Namespace + "/" + d.Name
		want[key] = true
		e, ok := have[key]
		switch {
		case !ok:
			p.create = append(p.create, d)
		case e.AddressType != d.AddressType:
			p.delete = append(p.delete, e)
			p.create = append(p.create, d)
		case !sameSlice(e, d):
			u := d.DeepCopy()
			u.ResourceVersion = e.ResourceVersion
			p.update = append(p.update, u)
		}
	}
	for key, e := range have {
		if want[key] || (keep != nil && keep(e.Labels[LabelSourceCluster])) {
			continue
		}
		p.delete = append(p.delete, e)
	}
	byKey := func(a, b *discoveryv1.EndpointSlice) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	}
	slices.SortFunc(p.create, byKey)
	slices.SortFunc(p.update, byKey)
	slices.SortFunc(p.delete, byKey)
	return p
}

// sameSlice compares what PlanImports sets (nil and empty alike).
func sameSlice(a, b *discoveryv1.EndpointSlice) bool {
	return equality.Semantic.DeepEqual(a.Labels, b.Labels) &&
		equality.Semantic.DeepEqual(a.Annotations, b.Annotations) &&
		equality.Semantic.DeepEqual(a.Endpoints, b.Endpoints) &&
		equality.Semantic.DeepEqual(a.Ports, b.Ports)
}

// SyncImports makes the derived EndpointSlices in the cluster those of
// desired (from PlanImports of every reachable peer); keep names source
// clusters whose existing slices are left alone. It lists only slices
// managed by ManagedBy, and goes on past a failed write, returning every
// error; the next sync retries.
func SyncImports(ctx context.Context, client kubernetes.Interface, desired []*discoveryv1.EndpointSlice, keep func(cluster string) bool) error {
	list, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelManagedBy + "=" + ManagedBy,
	})
	if err != nil {
		return fmt.Errorf("failed to list the imported EndpointSlices: %w", err)
	}
	p := planSync(list.Items, desired, keep)
	var errs []error
	for _, s := range p.delete {
		var opts metav1.DeleteOptions
		if s.UID != "" { // only the slice listed, not one made since
			opts.Preconditions = &metav1.Preconditions{UID: &s.UID}
		}
		err := client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, opts)
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("failed to delete EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
		}
	}
	for _, s := range p.create {
		if _, err := client.DiscoveryV1().EndpointSlices(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("failed to create EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
		}
	}
	for _, s := range p.update {
		if _, err := client.DiscoveryV1().EndpointSlices(s.Namespace).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("failed to update EndpointSlice %s/%s: %w", s.Namespace, s.Name, err))
		}
	}
	return errors.Join(errs...)
}
