// Package vxlan is the unencrypted tunnel backend for trusted networks: one
// VXLAN device with learning off, programmed flannel-style — per peer a
// permanent neighbour (peer gateway → peer VTEP MAC), an FDB entry (peer
// VTEP MAC → peer underlay address) and an on-link route to the peer's pod
// block via its gateway.
//
// Concurrency: one mutex serialises Setup, Apply, Stats and Close; Apply
// holds it across netlink calls (the agent loop is its only caller).
// Every netlink call acts in the calling thread's network namespace: run the
// agent in the node's namespace, and lock the OS thread around any setns.
package vxlan

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/tunnel/internal/dataplane"
)

// Defaults for zero Config fields.
const (
	DefaultInterface = "weft-vxlan"
	DefaultPort      = 4789
	DefaultVNI       = 1
)

// ErrClosed is returned by calls after Close.
var ErrClosed = errors.New("vxlan backend is closed")

// Backend is the VXLAN tunnel.Backend.
type Backend struct {
	name string
	port int
	vni  int
	log  *slog.Logger

	// OS hooks, replaced in unit tests.
	routes dataplane.Routes
	neigh  dataplane.Neighbors

	mu        sync.Mutex
	local     tunnel.Local
	mtu       int
	mac       net.HardwareAddr
	vtepIndex int // underlay interface
	linkIndex int // the VXLAN device, refreshed every Apply
	setup     bool
	closed    bool
	peers     []tunnel.Peer // last planned, for Stats
}

var _ tunnel.Backend = (*Backend)(nil)

// New validates cfg and returns an unstarted backend; Setup creates the
// device. Zero fields take the defaults above; KeyFile is unused.
func New(cfg tunnel.Config) (tunnel.Backend, error) {
	cfg, log, err := cfg.Resolve("vxlan", DefaultInterface, DefaultPort)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		name: cfg.Interface, port: cfg.Port, vni: cfg.VNI,
		routes: dataplane.Netlink{}, neigh: dataplane.Netlink{},
		log: log,
	}
	if b.vni == 0 {
		b.vni = DefaultVNI
	}
	if b.vni < 1 || b.vni > 1<<24-1 {
		return nil, fmt.Errorf("vxlan: field VNI %d is out of range 1-16777215", cfg.VNI)
	}
	return b, nil
}

// Name returns "vxlan".
func (b *Backend) Name() string { return "vxlan" }

// Overhead is 50 bytes for an IPv4 underlay, 70 for IPv6 (known after
// Setup; 50 before).
func (b *Backend) Overhead() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return overhead(b.local.UnderlayIP)
}

// overhead is UDP (8), the VXLAN header (8) and the inner Ethernet header
// (14) over the outer IP header.
func overhead(underlay netip.Addr) int { return tunnel.Overhead(underlay, 8+8+14) }

// MACFor is the VTEP MAC of a node: derived from its name, locally
// administered and unicast, so it survives restarts and re-creation.
func MACFor(node string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("weft-vxlan-vtep:" + node))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

// Setup creates (or adopts) the VXLAN device on the interface holding
// local.UnderlayIP, assigns local.Gateway, sets the MTU and brings it up.
func (b *Backend) Setup(ctx context.Context, local tunnel.Local) (tunnel.Info, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return tunnel.Info{}, ErrClosed
	}
	if err := validateLocal(local); err != nil {
		return tunnel.Info{}, err
	}
	underlay, err := dataplane.UnderlayLink(local.UnderlayIP)
	if err != nil {
		return tunnel.Info{}, fmt.Errorf("failed to find the underlay interface: %w", err)
	}
	underlayMTU := local.UnderlayMTU
	if underlayMTU == 0 {
		underlayMTU = underlay.Attrs().MTU
	}
	mtu := underlayMTU - overhead(local.UnderlayIP)
	if mtu < 576 {
		return tunnel.Info{}, fmt.Errorf("vxlan: underlay MTU %d leaves a tunnel MTU of %d, too small", underlayMTU, mtu)
	}
	b.local, b.mtu, b.mac, b.vtepIndex = local, mtu, MACFor(local.Name), underlay.Attrs().Index
	if err := b.ensureDeviceLocked(); err != nil {
		return tunnel.Info{}, err
	}
	b.setup = true
	b.log.Info("vxlan device ready", "vni", b.vni, "port", b.port, "mtu", mtu, "mac", b.mac.String(), "gateway", local.Gateway)
	return tunnel.Info{VTEPMAC: append(net.HardwareAddr(nil), b.mac...), Port: b.port, MTU: mtu}, nil
}

func validateLocal(l tunnel.Local) error {
	switch {
	case l.Name == "":
		return errors.New("tunnel setup: field Name is empty")
	case !l.UnderlayIP.IsValid():
		return errors.New("tunnel setup: field UnderlayIP is not set")
	case l.UnderlayMTU < 0:
		return fmt.Errorf("tunnel setup: field UnderlayMTU %d is negative", l.UnderlayMTU)
	case !l.PodCIDR.IsValid():
		return errors.New("tunnel setup: field PodCIDR is not a valid CIDR")
	case !l.Gateway.IsValid() || !l.PodCIDR.Contains(l.Gateway):
		return fmt.Errorf("tunnel setup: field Gateway %v is not inside PodCIDR %v", l.Gateway, l.PodCIDR)
	}
	return nil
}

// ensureDeviceLocked creates the device, adopts a matching one, or
// re-creates one whose VXLAN parameters differ (they cannot be changed in
// place); then sets MAC, address, MTU and up.
func (b *Backend) ensureDeviceLocked() error {
	want := &netlink.Vxlan{
		LinkAttrs:    netlink.LinkAttrs{Name: b.name, MTU: b.mtu, HardwareAddr: b.mac},
		VxlanId:      b.vni,
		VtepDevIndex: b.vtepIndex,
		SrcAddr:      dataplane.IP(b.local.UnderlayIP),
		Port:         b.port,
		Learning:     false,
	}
	link, err := netlink.LinkByName(b.name)
	switch {
	case err == nil:
		have, ok := link.(*netlink.Vxlan)
		if !ok {
			return fmt.Errorf("interface %s exists and is a %q device, not vxlan; delete it or choose another Interface", b.name, link.Type())
		}
		if have.VxlanId != want.VxlanId || have.VtepDevIndex != want.VtepDevIndex || have.Port != want.Port ||
			!have.SrcAddr.Equal(want.SrcAddr) || have.Learning {
			b.log.Warn("vxlan device has other parameters, re-creating it",
				"vni", have.VxlanId, "port", have.Port, "local", have.SrcAddr, "vtepIndex", have.VtepDevIndex)
			if err := netlink.LinkDel(link); err != nil {
				return fmt.Errorf("failed to delete mismatched interface %s: %w", b.name, err)
			}
			link = nil
		}
	case !dataplane.IsNotFound(err):
		return fmt.Errorf("failed to look up interface %s: %w", b.name, err)
	default:
		link = nil
	}
	if link == nil {
		if err := netlink.LinkAdd(want); err != nil {
			return fmt.Errorf("failed to create vxlan interface %s (vni %d, port %d): %w", b.name, b.vni, b.port, err)
		}
		if link, err = netlink.LinkByName(b.name); err != nil {
			return fmt.Errorf("failed to look up interface %s: %w", b.name, err)
		}
	}
	if link.Attrs().HardwareAddr.String() != b.mac.String() {
		if err := netlink.LinkSetHardwareAddr(link, b.mac); err != nil {
			return fmt.Errorf("failed to set MAC %v on %s: %w", b.mac, b.name, err)
		}
	}
	if err := dataplane.ConfigureLink(link, b.local.Gateway, b.mtu); err != nil {
		return err
	}
	b.linkIndex = link.Attrs().Index
	return nil
}

// Apply makes FDB entries, neighbours and routes on the device match peers
// exactly; a device deleted by hand is re-created. Peers the planner
// rejects are logged and left out.
func (b *Backend) Apply(ctx context.Context, peers []tunnel.Peer) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if !b.setup {
		return errors.New("vxlan: Apply before Setup")
	}
	if err := b.ensureDeviceLocked(); err != nil {
		return err
	}
	return b.syncLocked(peers)
}

// syncLocked plans and applies; unit tests drive it with fakes.
func (b *Backend) syncLocked(peers []tunnel.Peer) error {
	plan := tunnel.PlanVXLAN(b.local, peers)
	for _, s := range plan.Skipped {
		b.log.Warn("not routing to peer", "peer", s.Name, "reason", s.Reason)
	}
	b.peers = b.peers[:0]
	skipped := make(map[string]bool, len(plan.Skipped))
	for _, s := range plan.Skipped {
		skipped[s.Name] = true
	}
	for _, p := range peers {
		if !skipped[p.Name] {
			b.peers = append(b.peers, p)
		}
	}
	// FDB and neighbours before routes, so a new route never sends to a
	// gateway the device cannot resolve.
	return errors.Join(
		dataplane.SyncFDB(b.neigh, b.linkIndex, plan.FDB),
		dataplane.SyncNeighbors(b.neigh, b.linkIndex, plan.Neighbors),
		dataplane.SyncRoutes(b.routes, b.linkIndex, plan.Routes),
	)
}

// Stats lists the routed peers with their underlay endpoint. VXLAN keeps no
// per-peer counters or handshakes, so those are zero.
func (b *Backend) Stats(ctx context.Context) ([]tunnel.PeerStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	out := make([]tunnel.PeerStats, 0, len(b.peers))
	for _, p := range b.peers {
		out = append(out, tunnel.PeerStats{
			Name:     p.Name,
			Endpoint: netip.AddrPortFrom(p.UnderlayIP.Unmap(), uint16(b.port)).String(),
		})
	}
	return out, nil
}

// Close stops the backend. remove=true deletes weft's routes and the device
// (its neighbour and FDB entries go with it); remove=false leaves the data
// plane as it is so pods keep connectivity across an agent restart.
func (b *Backend) Close(remove bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if !remove {
		return nil
	}
	var errs []error
	if b.linkIndex != 0 {
		errs = append(errs, dataplane.SyncRoutes(b.routes, b.linkIndex, nil))
	}
	if link, err := netlink.LinkByName(b.name); err == nil {
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("failed to delete interface %s: %w", b.name, err))
		}
	} else if !dataplane.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("failed to look up interface %s: %w", b.name, err))
	}
	return errors.Join(errs...)
}
