package clusterset

import (
	"context"
	"fmt"
	"maps"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// SyncIPs reads the published table of clusterset IPs, allocates the
// wanted Services' addresses from it (AllocateIPs) and writes it back when
// it changed. The write names the resourceVersion it read, so that two
// gateways during a failover never overwrite each other: the loser gets a
// conflict and allocates again at its next pull, from the winner's table.
func SyncIPs(ctx context.Context, client kubernetes.Interface, rng netip.Prefix, exclude []netip.Prefix, wanted []string) (Allocation, error) {
	cms := client.CoreV1().ConfigMaps(IPsNamespace)
	cm, err := cms.Get(ctx, IPsConfigMap, metav1.GetOptions{})
	missing := apierrors.IsNotFound(err)
	if err != nil && !missing {
		return Allocation{}, fmt.Errorf("failed to read ConfigMap %s/%s: %w", IPsNamespace, IPsConfigMap, err)
	}
	var existing map[string]netip.Addr
	if !missing {
		existing, _ = DecodeIPs(cm.Data) // what does not decode is replaced
	}
	al := AllocateIPs(rng, exclude, wanted, existing)
	data := EncodeIPs(al.IPs)
	switch {
	case missing:
		cm = &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: IPsNamespace, Name: IPsConfigMap, Labels: map[string]string{
				"app.kubernetes.io/name": "weft", "app.kubernetes.io/managed-by": ManagedBy}},
			Data: data,
		}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			return al, fmt.Errorf("failed to create ConfigMap %s/%s: %w", IPsNamespace, IPsConfigMap, err)
		}
	case !maps.Equal(cm.Data, data) || len(cm.BinaryData) > 0:
		cm = cm.DeepCopy()
		cm.Data, cm.BinaryData = data, nil
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			return al, fmt.Errorf("failed to update ConfigMap %s/%s: %w", IPsNamespace, IPsConfigMap, err)
		}
	}
	return al, nil
}
