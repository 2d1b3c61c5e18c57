package peering

import (
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestTunnelAddr(t *testing.T) {
	k1, _ := wgtypes.GenerateKey()
	k2, _ := wgtypes.GenerateKey()
	a1, a2 := TunnelAddr(k1.PublicKey()), TunnelAddr(k2.PublicKey())
	if !TunnelPrefix.Contains(a1) || !TunnelPrefix.Contains(a2) {
		t.Fatalf("%v, %v not in %v", a1, a2, TunnelPrefix)
	}
	if a1 == a2 {
		t.Fatalf("two keys share the tunnel address %v", a1)
	}
	if TunnelAddr(k1.PublicKey()) != a1 {
		t.Fatal("TunnelAddr is not deterministic")
	}
}
