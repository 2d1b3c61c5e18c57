package peering

import (
	"net/netip"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// key returns a real WireGuard public key derived from a fixed seed.
func key(seed string) wgtypes.Key {
	var priv wgtypes.Key
	copy(priv[:], seed)
	return priv.PublicKey()
}

var (
	keyW1 = key("west-gw-1")
	keyW2 = key("west-gw-2")
	keyN1 = key("north-gw-1")
)

var east = Local{
	Name:         "east",
	ID:           "east-1",
	PodCIDRs:     []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
	ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16")},
}

// validFile is a well-formed peering file with two peers; tests derive
// broken ones from it by text substitution.
var validFile = `peers:
  - name: west
    id: west-1
    podCIDRs: [10.245.0.0/16]
    serviceCIDRs: [10.97.0.0/16]
    gateways:
      - node: west-gw-1
        endpoint: 192.0.2.10:51821
        publicKey: ` + keyW1.String() + `
      - node: west-gw-2
        endpoint: 192.0.2.11:51821
        publicKey: ` + keyW2.String() + `
  - name: north
    id: north-1
    podCIDRs: [10.246.0.0/16, fd00:246::/48]
    zone: north.example.
    persistentKeepalive: "off"
    gateways:
      - node: north-gw-1
        endpoint: "[2001:db8::1]:51821"
        publicKey: ` + keyN1.String() + `
`
