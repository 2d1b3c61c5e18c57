package lab

import (
	"fmt"
	"net/netip"
)

// The underlay: one /24 on a bridge. Node i (1-based) is at .(10+i), the
// internet namespace at .254, the control plane (--kube) at .2, and the
// internet also holds WorldAddr.
var (
	UnderlaySubnet = netip.MustParsePrefix("192.168.77.0/24")
	InetAddr       = netip.MustParseAddr("192.168.77.254")
	WorldAddr      = netip.MustParseAddr("203.0.113.1")
	// CPAddr is the control-plane namespace's address in a --kube lab:
	// the API server listens on CPAddr:6443.
	CPAddr = netip.MustParseAddr("192.168.77.2")
)

// LBPool is where a --kube lab's load-balancer addresses come from, on the
// underlay's link as seen from the internet namespace; the agents' pool
// (LBPoolRange) leaves out its first and last address.
var LBPool = netip.MustParsePrefix("192.168.78.0/26")

// LBPoolRange is the agents' services.loadBalancer.pools entry.
const LBPoolRange = "192.168.78.1-192.168.78.62"

// WANSubnet is the segment `weft lab peer` joins two labs' gateways on.
// The first lab of a pair (by name) has its gateway of node index i at
// .(10+i), the second at .(130+i).
var WANSubnet = netip.MustParsePrefix("198.51.100.0/24")

// MaxGateways bounds Spec.Gateways so that WAN addresses fit.
const MaxGateways = 100

// WANAddr is the WAN address of the gateway at node index in the first
// (second=false) or second lab of a pair.
func WANAddr(second bool, index int) (netip.Addr, error) {
	if index < 1 || index > MaxGateways {
		return netip.Addr{}, fmt.Errorf("gateway node index %d is out of range 1-%d", index, MaxGateways)
	}
	b := WANSubnet.Addr().As4()
	b[3] = byte(10 + index)
	if second {
		b[3] = byte(130 + index)
	}
	return netip.AddrFrom4(b), nil
}

// MaxNodes is the number of node addresses in the underlay (.11 to .253).
const MaxNodes = 243

// NodeAddr is node index's underlay address.
func NodeAddr(index int) (netip.Addr, error) {
	if index < 1 || index > MaxNodes {
		return netip.Addr{}, fmt.Errorf("node index %d is out of range 1-%d", index, MaxNodes)
	}
	b := UnderlaySubnet.Addr().As4()
	b[3] = byte(10 + index)
	return netip.AddrFrom4(b), nil
}

// FreeIndex returns the lowest node index not in used.
func FreeIndex(used []int) (int, error) {
	taken := make(map[int]bool, len(used))
	for _, i := range used {
		taken[i] = true
	}
	for i := 1; i <= MaxNodes; i++ {
		if !taken[i] {
			return i, nil
		}
	}
	return 0, fmt.Errorf("all %d node addresses are in use", MaxNodes)
}
