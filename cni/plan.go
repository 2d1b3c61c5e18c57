package cni

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/weftnet/weft/cni/ipam"
)

// HostVethPrefix starts the name of every host-side veth weft-cni makes.
const HostVethPrefix = "weft"

// aliasPrefix starts the IFLA_IFALIAS weft-cni sets on its host veths:
// "weft-cni/<network>/<containerID>/<ifname>". GC uses it to find veths of
// attachments that are no longer valid. None of the three parts may
// contain "/" (the CNI spec's rules for names and IDs forbid it).
const aliasPrefix = "weft-cni/"

// Plan is everything the data path needs to wire one attachment. It is
// computed from the node state and the allocation, with no I/O.
type Plan struct {
	Network  string
	Att      ipam.Attachment
	HostVeth string
	PodIP    netip.Addr
	Gateway  netip.Addr
	MTU      int
}

// NewPlan builds the plan for attachment a holding podIP.
func NewPlan(network string, a ipam.Attachment, podIP, gateway netip.Addr, mtu int) Plan {
	return Plan{
		Network:  network,
		Att:      a,
		HostVeth: HostVethName(a),
		PodIP:    podIP,
		Gateway:  gateway,
		MTU:      mtu,
	}
}

// HostVethName derives the host-side veth name from the attachment:
// "weft" and the first 11 hex digits of sha256(containerID "\x00" ifname),
// 15 characters, the kernel's limit. The same attachment always gets the
// same name, so DEL and GC find it without any stored state.
func HostVethName(a ipam.Attachment) string {
	sum := sha256.Sum256([]byte(a.ContainerID + "\x00" + a.IfName))
	return HostVethPrefix + hex.EncodeToString(sum[:])[:11]
}

// Alias is the interface alias of the plan's host veth.
func (p Plan) Alias() string {
	return aliasPrefix + p.Network + "/" + p.Att.ContainerID + "/" + p.Att.IfName
}

// parseAlias is the inverse of Plan.Alias; ok is false for aliases
// weft-cni did not write.
func parseAlias(alias string) (network string, a ipam.Attachment, ok bool) {
	rest, found := strings.CutPrefix(alias, aliasPrefix)
	if !found {
		return "", a, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", a, false
	}
	return parts[0], ipam.Attachment{ContainerID: parts[1], IfName: parts[2]}, true
}

// host32 is addr as a single-address prefix.
func host32(addr netip.Addr) *net.IPNet {
	bits := addr.BitLen()
	return &net.IPNet{IP: net.IP(addr.AsSlice()), Mask: net.CIDRMask(bits, bits)}
}

// defaultDst is the default route's destination for addr's family.
func defaultDst(addr netip.Addr) net.IPNet {
	if addr.Is4() {
		return net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}

// Result builds the ADD result: the host veth (index 0), the pod interface
// (index 1, with its sandbox), the pod address and the pod's two routes.
// If prev is non-nil (weft-cni chained after another plugin) its entries
// come first and ours are appended.
func (p Plan) Result(cniVersion string, host, cont *current.Interface, dns types.DNS, prev *current.Result) *current.Result {
	r := &current.Result{CNIVersion: cniVersion}
	if prev != nil {
		r.Interfaces = append(r.Interfaces, prev.Interfaces...)
		r.IPs = append(r.IPs, prev.IPs...)
		r.Routes = append(r.Routes, prev.Routes...)
		r.DNS = prev.DNS
	}
	base := len(r.Interfaces)
	r.Interfaces = append(r.Interfaces, host, cont)
	r.IPs = append(r.IPs, &current.IPConfig{
		Interface: current.Int(base + 1),
		Address:   *host32(p.PodIP),
		Gateway:   net.IP(p.Gateway.AsSlice()),
	})
	link := 253 // RT_SCOPE_LINK
	r.Routes = append(r.Routes,
		&types.Route{Dst: *host32(p.Gateway), Scope: &link},
		&types.Route{Dst: defaultDst(p.Gateway), GW: net.IP(p.Gateway.AsSlice())},
	)
	if dns.Nameservers != nil || dns.Search != nil || dns.Options != nil || dns.Domain != "" {
		r.DNS = dns
	}
	return r
}

// podIPFromResult returns the address prevResult gave the interface named
// ifname in sandbox, if there is one.
func podIPFromResult(r *current.Result, ifname, sandbox string) (netip.Addr, error) {
	for _, ipc := range r.IPs {
		if ipc.Interface == nil || *ipc.Interface < 0 || *ipc.Interface >= len(r.Interfaces) {
			continue
		}
		intf := r.Interfaces[*ipc.Interface]
		if intf.Name != ifname || intf.Sandbox == "" {
			continue
		}
		if intf.Sandbox != sandbox {
			return netip.Addr{}, fmt.Errorf("prevResult puts %s in sandbox %q, not CNI_NETNS %q", ifname, intf.Sandbox, sandbox)
		}
		addr, ok := netip.AddrFromSlice(ipc.Address.IP)
		if !ok {
			return netip.Addr{}, fmt.Errorf("prevResult has a bad address %v for %s", ipc.Address.IP, ifname)
		}
		return addr.Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("prevResult has no address for interface %s", ifname)
}
