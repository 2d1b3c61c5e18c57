package lab

import (
	"fmt"
	"strconv"
)

// Cmd is one command line the applier runs (argv, not a shell string).
type Cmd []string

// Names of the lab's own interfaces.
const (
	bridgeName = "br0"
	inetPort   = "vinet"
	nodeIf     = "eth0"
)

func ipn(ns string, args ...string) Cmd { return append(Cmd{"ip", "-n", ns}, args...) }

// newNSCmds create namespace ns, mark it as the lab's (an alias on its
// loopback, see OwnerMark) and bring its loopback up.
func newNSCmds(l Layout, ns string) []Cmd {
	return []Cmd{
		{"ip", "netns", "add", ns},
		ipn(ns, "link", "set", "lo", "alias", l.OwnerMark()),
		ipn(ns, "link", "set", "lo", "up"),
	}
}

// UnderlayCmds create the underlay namespace with its bridge and the
// internet namespace attached to it. Every underlay link gets mtu.
func UnderlayCmds(l Layout, mtu int) []Cmd {
	u, in, m := l.UnderlayNS(), l.InetNS(), strconv.Itoa(mtu)
	inet := fmt.Sprintf("%s/%d", InetAddr, UnderlaySubnet.Bits())
	var cmds []Cmd
	cmds = append(cmds, newNSCmds(l, u)...)
	cmds = append(cmds, newNSCmds(l, in)...)
	return append(cmds,
		ipn(u, "link", "add", bridgeName, "mtu", m, "type", "bridge"),
		ipn(u, "link", "set", bridgeName, "up"),
		ipn(u, "link", "add", inetPort, "mtu", m, "type", "veth", "peer", "name", nodeIf, "mtu", m, "netns", in),
		ipn(u, "link", "set", inetPort, "master", bridgeName, "up"),
		ipn(in, "addr", "add", inet, "dev", nodeIf),
		ipn(in, "link", "set", nodeIf, "up"),
		// The outside world lives on the internet's loopback (a dummy
		// device needs a kernel module that is not everywhere).
		ipn(in, "addr", "add", WorldAddr.String()+"/32", "dev", "lo"),
		// The load-balancer pool is on the underlay's link: the internet
		// asks by ARP who has an address, and the announcing node answers.
		ipn(in, "route", "add", LBPool.String(), "dev", nodeIf, "scope", "link"),
	)
}

// NodeCmds create a node's namespace, plug its eth0 into the bridge and
// route it to the internet. They also enable IPv4 forwarding in the node,
// as on any Kubernetes node.
func NodeCmds(l Layout, n NodePlan, mtu int) []Cmd {
	u, m := l.UnderlayNS(), strconv.Itoa(mtu)
	addr := fmt.Sprintf("%s/%d", n.UnderlayIP, UnderlaySubnet.Bits())
	return append(newNSCmds(l, n.NetNS),
		ipn(u, "link", "add", n.BridgePort, "mtu", m, "type", "veth", "peer", "name", nodeIf, "mtu", m, "netns", n.NetNS),
		ipn(u, "link", "set", n.BridgePort, "master", bridgeName, "up"),
		ipn(n.NetNS, "addr", "add", addr, "dev", nodeIf),
		ipn(n.NetNS, "link", "set", nodeIf, "up"),
		ipn(n.NetNS, "route", "add", "default", "via", InetAddr.String()),
		Cmd{"ip", "netns", "exec", n.NetNS, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	)
}

// cpPort is the control plane's port on the underlay bridge.
const cpPort = "vcp"

// CPCmds create the control-plane namespace of a --kube lab and plug its
// eth0 (CPAddr) into the bridge, like a node without an agent.
func CPCmds(l Layout, mtu int) []Cmd {
	u, ns, m := l.UnderlayNS(), l.CPNS(), strconv.Itoa(mtu)
	addr := fmt.Sprintf("%s/%d", CPAddr, UnderlaySubnet.Bits())
	return append(newNSCmds(l, ns),
		ipn(u, "link", "add", cpPort, "mtu", m, "type", "veth", "peer", "name", nodeIf, "mtu", m, "netns", ns),
		ipn(u, "link", "set", cpPort, "master", bridgeName, "up"),
		ipn(ns, "addr", "add", addr, "dev", nodeIf),
		ipn(ns, "link", "set", nodeIf, "up"),
		ipn(ns, "route", "add", "default", "via", InetAddr.String()),
	)
}

// PodNSCmds create a pod's namespace with its loopback up, as a container
// runtime does before it calls CNI.
func PodNSCmds(l Layout, ns string) []Cmd { return newNSCmds(l, ns) }

// DeleteNSCmd deletes a namespace by name.
func DeleteNSCmd(ns string) Cmd { return Cmd{"ip", "netns", "del", ns} }
