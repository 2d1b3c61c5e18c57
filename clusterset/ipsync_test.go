package clusterset

import (
	"context"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// SyncIPs creates the table, writes nothing when it is unchanged, keeps
// what it holds (also entries a person or an older gateway wrote) and
// replaces what does not decode.
func TestSyncIPs(t *testing.T) {
	ctx := context.Background()
	rng := netip.MustParsePrefix("10.255.0.0/16")
	client := fake.NewClientset()
	writes := func() int {
		n := 0
		for _, a := range client.Actions() {
			if a.GetVerb() != "get" {
				n++
			}
		}
		return n
	}
	al, err := SyncIPs(ctx, client, rng, nil, []string{"shop/web", "shop/api"})
	if err != nil || len(al.IPs) != 2 {
		t.Fatalf("first sync: %v %v", al, err)
	}
	cm, err := client.CoreV1().ConfigMaps(IPsNamespace).Get(ctx, IPsConfigMap, metav1.GetOptions{})
	if err != nil || cm.Data["shop.web"] != al.IPs["shop/web"].String() || len(cm.Data) != 2 {
		t.Fatalf("table written: %v %v", cm, err)
	}
	if _, err := SyncIPs(ctx, client, rng, nil, []string{"shop/api", "shop/web"}); err != nil || writes() != 1 {
		t.Errorf("an unchanged table was written again (%d writes, %v)", writes(), err)
	}
	// Someone edits the table: a bad entry and a hand-picked address.
	cm.Data["shop.api"] = "10.255.9.9"
	cm.Data["junk"] = "x"
	if _, err := client.CoreV1().ConfigMaps(IPsNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	al2, err := SyncIPs(ctx, client, rng, nil, []string{"shop/api", "shop/web"})
	if err != nil || al2.IPs["shop/api"] != netip.MustParseAddr("10.255.9.9") || al2.IPs["shop/web"] != al.IPs["shop/web"] {
		t.Errorf("after the edit: %v %v", al2.IPs, err)
	}
	cm, _ = client.CoreV1().ConfigMaps(IPsNamespace).Get(ctx, IPsConfigMap, metav1.GetOptions{})
	if _, bad := cm.Data["junk"]; bad || len(cm.Data) != 2 {
		t.Errorf("the bad entry stayed: %v", cm.Data)
	}
}

func TestSyncIPsAdoptsAnExistingTable(t *testing.T) {
	client := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: IPsNamespace, Name: IPsConfigMap},
		Data: map[string]string{"shop.web": "10.255.0.5"}})
	al, err := SyncIPs(context.Background(), client, netip.MustParsePrefix("10.255.0.0/16"), nil, []string{"shop/web"})
	if err != nil || al.IPs["shop/web"] != netip.MustParseAddr("10.255.0.5") {
		t.Errorf("an existing table: %v %v", al.IPs, err)
	}
}
