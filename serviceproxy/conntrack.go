package serviceproxy

import (
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// goneUDP lists the UDP endpoints old used that new does not.
func goneUDP(old, new *ServicePlan) []netip.AddrPort {
	if old == nil || len(old.UDPEndpoints) == 0 {
		return nil
	}
	keep := map[netip.AddrPort]bool{}
	if new != nil {
		for _, e := range new.UDPEndpoints {
			keep[e] = true
		}
	}
	var gone []netip.AddrPort
	for _, e := range old.UDPEndpoints {
		if !keep[e] {
			gone = append(gone, e)
		}
	}
	return gone
}

// udpFlowsTo matches translated UDP flows whose replies come from one of
// the endpoints: flows a Service address sent there.
type udpFlowsTo map[netip.AddrPort]bool

func (f udpFlowsTo) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	src, ok := netip.AddrFromSlice(flow.Reverse.SrcIP)
	if !ok {
		return false
	}
	ep := netip.AddrPortFrom(src.Unmap(), flow.Reverse.SrcPort)
	dst, _ := netip.AddrFromSlice(flow.Forward.DstIP)
	return f[ep] && dst.Unmap() != ep.Addr()
}

// DeleteUDPFlows deletes the conntrack entries of translated UDP flows
// to the gone endpoints, in the caller's network namespace.
func DeleteUDPFlows(gone []netip.AddrPort) (uint, error) {
	if len(gone) == 0 {
		return 0, nil
	}
	f := udpFlowsTo{}
	for _, e := range gone {
		f[e] = true
	}
	return netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f)
}
