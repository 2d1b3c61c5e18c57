package peering

import (
	"crypto/sha256"
	"net/netip"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// TunnelPrefix holds every gateway's tunnel address: an IPv6 unique local
// /48 that only peering WireGuard devices use.
var TunnelPrefix = netip.MustParsePrefix("fd57:6566:7470::/48")

// DefaultExportPort is where a gateway serves its cluster's exported
// services to the other clusters' gateways, on its tunnel address.
const DefaultExportPort = 51822

// TunnelAddr is the address a gateway holds on its peering WireGuard
// device, derived from its peering public key so that both sides compute
// it alike without exchanging it: TunnelPrefix followed by the first 80
// bits of the key's SHA-256. The remote side adds it as a /128 to the
// gateway's AllowedIPs, so gateways talk to each other (the export
// exchange) only through the tunnel, and never from a cluster's declared
// networks.
func TunnelAddr(key wgtypes.Key) netip.Addr {
	sum := sha256.Sum256(key[:])
	a := TunnelPrefix.Addr().As16()
	copy(a[6:], sum[:10])
	return netip.AddrFrom16(a)
}
