package cni

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/cni/ipam"
)

// linuxDataplane wires pods with netlink. Host-side calls run on the
// calling thread (the plugin's own netns, which the runtime chose);
// pod-side calls run inside ns.Do.
type linuxDataplane struct{}

var _ Dataplane = linuxDataplane{}

func newLinuxDataplane() Dataplane { return linuxDataplane{} }

// openNetNS opens CNI_NETNS, mapping failures to CNI codes: 3 when the
// namespace is gone, 4 when the variable does not name a namespace.
func openNetNS(path string) (ns.NetNS, error) {
	if path == "" {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_NETNS is empty", "")
	}
	n, err := ns.GetNS(path)
	if err == nil {
		return n, nil
	}
	var notExist ns.NSPathNotExistErr
	var notNS ns.NSPathNotNSErr
	switch {
	case errors.As(err, &notExist):
		return nil, types.NewError(types.ErrUnknownContainer, fmt.Sprintf("network namespace %q does not exist", path), err.Error())
	case errors.As(err, &notNS):
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_NETNS %q is not a network namespace", path), err.Error())
	default:
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("failed to open CNI_NETNS %q", path), err.Error())
	}
}

func (linuxDataplane) CheckNetNS(path string) error {
	n, err := openNetNS(path)
	if err != nil {
		return err
	}
	defer n.Close()
	var pod, self unix.Stat_t
	if err := unix.Fstat(int(n.Fd()), &pod); err != nil {
		return types.NewError(types.ErrIOFailure, "failed to stat CNI_NETNS", err.Error())
	}
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		return types.NewError(types.ErrIOFailure, "failed to stat the plugin's network namespace", err.Error())
	}
	if pod.Dev == self.Dev && pod.Ino == self.Ino {
		return types.NewError(types.ErrInvalidEnvironmentVariables,
			fmt.Sprintf("CNI_NETNS %q is the plugin's own network namespace", path), "")
	}
	return nil
}

// Add creates the veth pair from the host side with the pod end placed
// straight into the pod's namespace, and configures each end through a
// netlink socket opened in its namespace. No thread ever switches
// namespaces except for the instant it takes to open the pod's socket:
// about ten netlink round trips in all, where creating the pair inside
// the pod (ip.SetupVethWithName) and configuring it through ns.Do took
// three namespace round trips on fresh threads and twice the requests.
func (d linuxDataplane) Add(netnsPath string, p Plan) (host, cont *current.Interface, err error) {
	netns, err := openNetNS(netnsPath)
	if err != nil {
		return nil, nil, err
	}
	defer netns.Close()
	hostH, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to open a netlink socket: %w", err)
	}
	defer hostH.Close()
	podH, err := netlink.NewHandleAt(vnetns.NsHandle(netns.Fd()), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to open a netlink socket in the pod: %w", err)
	}
	defer podH.Close()

	// The spec requires an error when the interface exists. Look before
	// touching anything: on a repeated ADD the host veth of our name
	// belongs to the live attachment and must survive.
	if _, lerr := podH.LinkByName(p.Att.IfName); lerr == nil {
		return nil, nil, fmt.Errorf("interface %q already exists in the pod's network namespace", p.Att.IfName)
	} else if !isNotFound(lerr) {
		return nil, nil, fmt.Errorf("failed to look up %q in the pod: %w", p.Att.IfName, lerr)
	}
	// One weft interface per pod: a second would need a second default
	// route. Refuse it by name rather than fail later on EEXIST.
	if name, lerr := weftInterface(podH, p.Gateway); lerr != nil {
		return nil, nil, lerr
	} else if name != "" {
		return nil, nil, secondInterface(name, p.Att.IfName)
	}
	// A host veth of our name without its pod end is a leftover of this
	// same attachment (the name is derived from it): replace it.
	if err = deleteLinkWith(hostH, p.HostVeth); err != nil {
		return nil, nil, err
	}
	// The host end's MAC is chosen here rather than by the kernel, so the
	// result needs no read-back and nothing (udev) rewrites it later.
	hostMAC, err := randomMAC()
	if err != nil {
		return nil, nil, err
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: p.HostVeth, MTU: p.MTU, HardwareAddr: hostMAC, TxQLen: -1},
		PeerName:  p.Att.IfName, PeerMTU: uint32(p.MTU), PeerTxQLen: -1,
		PeerNamespace: netlink.NsFd(int(netns.Fd())),
	}
	if err = hostH.LinkAdd(veth); err != nil {
		return nil, nil, fmt.Errorf("failed to create veth pair %s/%s: %w", p.HostVeth, p.Att.IfName, err)
	}
	defer func() {
		if err != nil {
			_ = deleteLinkWith(hostH, p.HostVeth) // takes the pod end with it
		}
	}()
	podLink, err := configurePod(podH, p)
	if err != nil {
		return nil, nil, err
	}
	if err = configureHost(hostH, veth, p); err != nil {
		return nil, nil, err
	}
	host = &current.Interface{Name: p.HostVeth, Mac: hostMAC.String()}
	cont = &current.Interface{Name: p.Att.IfName, Mac: podLink.Attrs().HardwareAddr.String(), Sandbox: netnsPath}
	return host, cont, nil
}

// weftInterface returns the name of the pod's interface that routes to
// gateway (a weft interface of an earlier ADD), or "" if none does. h is
// a socket in the pod's netns.
func weftInterface(h *netlink.Handle, gateway netip.Addr) (string, error) {
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", fmt.Errorf("failed to list the pod's routes: %w", err)
	}
	gw := net.IP(gateway.AsSlice())
	for _, r := range routes {
		isDefault := r.Dst == nil || (r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask))
		isGW := r.Dst != nil && r.Dst.IP.Equal(gw) && isHostMask(r.Dst.Mask)
		if !(isDefault && r.Gw.Equal(gw)) && !isGW {
			continue
		}
		link, err := h.LinkByIndex(r.LinkIndex)
		if err != nil {
			return "", fmt.Errorf("failed to look up the pod's interface %d: %w", r.LinkIndex, err)
		}
		return link.Attrs().Name, nil
	}
	return "", nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}

func isHostMask(m net.IPMask) bool {
	ones, bits := m.Size()
	return ones == bits && bits > 0
}

// randomMAC returns a random locally administered unicast MAC, as the
// kernel picks for a veth.
func randomMAC() (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, fmt.Errorf("failed to generate a MAC address: %w", err)
	}
	mac[0] = mac[0]&^0x01 | 0x02
	return mac, nil
}

// configurePod configures the pod end through h, a socket in the pod's
// netns: podIP/32 on the interface, link up, "gateway/32 dev IF scope
// link", "default via gateway dev IF". It returns the pod link.
func configurePod(h *netlink.Handle, p Plan) (netlink.Link, error) {
	link, err := h.LinkByName(p.Att.IfName)
	if err != nil {
		return nil, fmt.Errorf("failed to look up %q in the pod: %w", p.Att.IfName, err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: host32(p.PodIP)}); err != nil {
		return nil, fmt.Errorf("failed to add %v to %s in the pod: %w", p.PodIP, p.Att.IfName, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("failed to set %s up in the pod: %w", p.Att.IfName, err)
	}
	idx := link.Attrs().Index
	def := defaultDst(p.Gateway)
	for _, r := range []*netlink.Route{
		{LinkIndex: idx, Dst: host32(p.Gateway), Scope: netlink.SCOPE_LINK},
		{LinkIndex: idx, Dst: &def, Gw: net.IP(p.Gateway.AsSlice())},
	} {
		if err := h.RouteAdd(r); err != nil {
			if r.Gw != nil && errors.Is(err, unix.EEXIST) {
				return nil, types.NewError(CodeSecondInterface,
					"the pod's network namespace already has a default route: weft-cni's interface must hold it",
					fmt.Sprintf("adding default via %v dev %s: %v", p.Gateway, p.Att.IfName, err))
			}
			return nil, fmt.Errorf("failed to add route %v in the pod: %w", r, err)
		}
	}
	return link, nil
}

// configureHost configures the host end through h, in the host netns:
// alias, gateway/32, up, no IPv6 router advertisements, forwarding, and
// "podIP/32 dev VETH scope link src gateway". link was just created with
// the plan's MTU.
func configureHost(h *netlink.Handle, link netlink.Link, p Plan) error {
	if err := h.LinkSetAlias(link, p.Alias()); err != nil {
		return fmt.Errorf("failed to set the alias of %s: %w", p.HostVeth, err)
	}
	err := h.AddrAdd(link, &netlink.Addr{IPNet: host32(p.Gateway)})
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("failed to add %v to %s: %w", p.Gateway, p.HostVeth, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("failed to set %s up: %w", p.HostVeth, err)
	}
	// As ip.SetupVeth does: the host end takes no router advertisements.
	_, _ = sysctl.Sysctl("net/ipv6/conf/"+p.HostVeth+"/accept_ra", "0")
	key := "net/ipv4/conf/" + p.HostVeth + "/forwarding"
	if v, err := sysctl.Sysctl(key); err != nil || v != "1" {
		if _, err := sysctl.Sysctl(key, "1"); err != nil {
			return fmt.Errorf("failed to enable forwarding on %s: %w", p.HostVeth, err)
		}
	}
	r := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       host32(p.PodIP),
		Scope:     netlink.SCOPE_LINK,
		Src:       net.IP(p.Gateway.AsSlice()),
	}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("failed to add host route %v dev %s: %w", p.PodIP, p.HostVeth, err)
	}
	return nil
}

func (linuxDataplane) Del(p Plan) error { return deleteLink(p.HostVeth) }

// deleteLink deletes a host link by name; a missing link is not an error.
func deleteLink(name string) error {
	return deleteLinkWith(nil, name)
}

// deleteLinkWith is deleteLink through h (nil: a socket per request).
func deleteLinkWith(h *netlink.Handle, name string) error {
	if h == nil {
		h = &netlink.Handle{} // what the package-level functions use
	}
	link, err := h.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to look up %s: %w", name, err)
	}
	if err := h.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("failed to delete %s: %w", name, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return err != nil && (errors.As(err, &nf) || errors.Is(err, unix.ENODEV))
}

func (linuxDataplane) Check(netnsPath string, p Plan) error {
	netns, err := openNetNS(netnsPath)
	if err != nil {
		return err
	}
	defer netns.Close()
	var podIndex int
	err = netns.Do(func(ns.NetNS) error {
		idx, err := checkPod(p)
		podIndex = idx
		return err
	})
	if err != nil {
		return err
	}
	return checkHost(p, podIndex)
}

// checkPod runs inside the pod's netns and returns the pod interface's
// index.
func checkPod(p Plan) (int, error) {
	link, err := netlinksafe.LinkByName(p.Att.IfName)
	if err != nil {
		return 0, checkFailed("interface %s not found in the pod: %v", p.Att.IfName, err)
	}
	if err := checkLink(link, "pod interface "+p.Att.IfName, p.MTU, p.PodIP); err != nil {
		return 0, err
	}
	routes, err := netlinksafe.RouteList(link, netlink.FAMILY_V4)
	if err != nil {
		return 0, checkFailed("failed to list routes in the pod: %v", err)
	}
	var gwRoute, defRoute bool
	for _, r := range routes {
		switch {
		case r.Dst != nil && r.Dst.String() == host32(p.Gateway).String() && r.Scope == netlink.SCOPE_LINK && r.Gw == nil:
			gwRoute = true
		case (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.Equal(net.IP(p.Gateway.AsSlice())):
			defRoute = true
		}
	}
	if !gwRoute {
		return 0, checkFailed("pod route %v/32 dev %s scope link is missing", p.Gateway, p.Att.IfName)
	}
	if !defRoute {
		return 0, checkFailed("pod default route via %v dev %s is missing", p.Gateway, p.Att.IfName)
	}
	return link.Attrs().Index, nil
}

func checkHost(p Plan, podIndex int) error {
	link, err := netlinksafe.LinkByName(p.HostVeth)
	if err != nil {
		return checkFailed("host veth %s not found: %v", p.HostVeth, err)
	}
	if err := checkLink(link, "host veth "+p.HostVeth, p.MTU, p.Gateway); err != nil {
		return err
	}
	if peer := link.Attrs().ParentIndex; peer != 0 && peer != podIndex {
		return checkFailed("host veth %s is paired with ifindex %d in the pod, not %s (ifindex %d)", p.HostVeth, peer, p.Att.IfName, podIndex)
	}
	routes, err := netlinksafe.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Dst: host32(p.PodIP)}, netlink.RT_FILTER_DST)
	if err != nil {
		return checkFailed("failed to list host routes: %v", err)
	}
	found := false
	for _, r := range routes {
		if r.LinkIndex == link.Attrs().Index && r.Table == unix.RT_TABLE_MAIN {
			found = true
		}
	}
	if !found {
		return checkFailed("host route %v/32 dev %s is missing", p.PodIP, p.HostVeth)
	}
	return nil
}

// checkLink verifies that link is an up veth with the given MTU holding
// addr/32.
func checkLink(link netlink.Link, what string, mtu int, addr netip.Addr) error {
	if _, ok := link.(*netlink.Veth); !ok {
		return checkFailed("%s is a %s, not a veth", what, link.Type())
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return checkFailed("%s is down", what)
	}
	if link.Attrs().MTU != mtu {
		return checkFailed("%s has MTU %d, want %d", what, link.Attrs().MTU, mtu)
	}
	addrs, err := netlinksafe.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return checkFailed("failed to list the addresses of %s: %v", what, err)
	}
	want := host32(addr).String()
	for _, a := range addrs {
		if a.IPNet.String() == want {
			return nil
		}
	}
	return checkFailed("%s does not hold %s", what, want)
}

func (linuxDataplane) Sweep(network string, keep map[ipam.Attachment]bool) ([]string, error) {
	links, err := netlinksafe.LinkList()
	if err != nil {
		return nil, fmt.Errorf("failed to list host links: %w", err)
	}
	var deleted []string
	var errs []error
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); !ok {
			continue
		}
		nw, att, ok := parseAlias(l.Attrs().Alias)
		if !ok || nw != network || keep[att] {
			continue
		}
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("failed to delete stale veth %s: %w", l.Attrs().Name, err))
			continue
		}
		deleted = append(deleted, l.Attrs().Name)
	}
	return deleted, errors.Join(errs...)
}
