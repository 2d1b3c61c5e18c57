// Package dataplane applies tunnel plans to the kernel and to WireGuard
// devices. OS access sits behind three small interfaces (Routes, Neighbors,
// WireGuard) with fakes beside them (fake.go), so the Sync functions — the
// read-diff-write loop that repairs drift — are unit-tested without root.
//
// Every Sync re-reads what is installed, diffs it against the plan with the
// pure tunnel.Diff* functions, deletes what is stale, then installs what is
// missing. A failing entry does not stop the others; all errors are joined.
package dataplane

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/weftnet/weft/tunnel"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// ErrNotFound is returned (wrapped) by deletes of entries that are already
// gone; Sync treats it as success.
var ErrNotFound = errors.New("not found")

// Routes reads and writes weft's routes (tagged tunnel.RouteProtocol, main
// table) on one device.
type Routes interface {
	ListRoutes(linkIndex int) ([]tunnel.Route, error)
	ReplaceRoute(r tunnel.Route) error
	DeleteRoute(r tunnel.Route) error
}

// Neighbors reads and writes permanent neighbour entries and FDB entries on
// one device.
type Neighbors interface {
	ListNeighbors(linkIndex int) ([]tunnel.Neighbor, error)
	SetNeighbor(linkIndex int, n tunnel.Neighbor) error
	DeleteNeighbor(linkIndex int, n tunnel.Neighbor) error
	ListFDB(linkIndex int) ([]tunnel.FDBEntry, error)
	SetFDB(linkIndex int, f tunnel.FDBEntry) error
	DeleteFDB(linkIndex int, f tunnel.FDBEntry) error
}

// WireGuard is the part of *wgctrl.Client weft uses.
type WireGuard interface {
	Device(name string) (*wgtypes.Device, error)
	ConfigureDevice(name string, cfg wgtypes.Config) error
	Close() error
}

// SyncRoutes makes the weft routes on linkIndex exactly desired.
func SyncRoutes(rc Routes, linkIndex int, desired []tunnel.Route) error {
	want := make([]tunnel.Route, len(desired))
	for i, r := range desired {
		r.LinkIndex = linkIndex
		want[i] = r
	}
	rc, done := withSocket(rc)
	defer done()
	actual, err := rc.ListRoutes(linkIndex)
	if err != nil {
		return fmt.Errorf("failed to list routes: %w", err)
	}
	add, del := tunnel.DiffRoutes(want, actual)
	var errs []error
	for _, r := range del {
		if err := rc.DeleteRoute(r); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("failed to delete route %v: %w", r, err))
		}
	}
	for _, r := range add {
		if err := rc.ReplaceRoute(r); err != nil {
			errs = append(errs, fmt.Errorf("failed to install route %v: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// SyncNeighbors makes the permanent neighbours on linkIndex exactly desired.
func SyncNeighbors(nc Neighbors, linkIndex int, desired []tunnel.Neighbor) error {
	nc, done := withSocket(nc)
	defer done()
	actual, err := nc.ListNeighbors(linkIndex)
	if err != nil {
		return fmt.Errorf("failed to list neighbours: %w", err)
	}
	add, del := tunnel.DiffNeighbors(desired, actual)
	var errs []error
	for _, n := range del {
		if err := nc.DeleteNeighbor(linkIndex, n); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("failed to delete neighbour %v lladdr %v: %w", n.IP, n.MAC, err))
		}
	}
	for _, n := range add {
		if err := nc.SetNeighbor(linkIndex, n); err != nil {
			errs = append(errs, fmt.Errorf("failed to set neighbour %v lladdr %v: %w", n.IP, n.MAC, err))
		}
	}
	return errors.Join(errs...)
}

// SyncFDB makes the FDB entries on linkIndex exactly desired.
func SyncFDB(nc Neighbors, linkIndex int, desired []tunnel.FDBEntry) error {
	nc, done := withSocket(nc)
	defer done()
	actual, err := nc.ListFDB(linkIndex)
	if err != nil {
		return fmt.Errorf("failed to list FDB entries: %w", err)
	}
	add, del := tunnel.DiffFDB(desired, actual)
	var errs []error
	for _, f := range del {
		if err := nc.DeleteFDB(linkIndex, f); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("failed to delete FDB entry %v dst %v: %w", f.MAC, f.Dst, err))
		}
	}
	for _, f := range add {
		if err := nc.SetFDB(linkIndex, f); err != nil {
			errs = append(errs, fmt.Errorf("failed to set FDB entry %v dst %v: %w", f.MAC, f.Dst, err))
		}
	}
	return errors.Join(errs...)
}

// SyncWGPeers makes the peers of WireGuard device name exactly desired.
// lastSet holds the endpoints set by the previous call (see
// tunnel.DiffWGPeers); the returned map is the one to pass next time.
func SyncWGPeers(wg WireGuard, name string, desired []tunnel.WGPeer, lastSet map[wgtypes.Key]netip.AddrPort) (map[wgtypes.Key]netip.AddrPort, error) {
	dev, err := wg.Device(name)
	if err != nil {
		return lastSet, fmt.Errorf("failed to read WireGuard device %s: %w", name, err)
	}
	return SyncWGPeersOf(wg, dev, desired, lastSet)
}

// SyncWGPeersOf is SyncWGPeers for a device the caller has just read
// (reading 1000 peers back costs more than diffing them).
func SyncWGPeersOf(wg WireGuard, dev *wgtypes.Device, desired []tunnel.WGPeer, lastSet map[wgtypes.Key]netip.AddrPort) (map[wgtypes.Key]netip.AddrPort, error) {
	name := dev.Name
	actual := make([]tunnel.WGPeer, 0, len(dev.Peers))
	for _, p := range dev.Peers {
		actual = append(actual, PeerFromWG(p))
	}
	changes := tunnel.DiffWGPeers(desired, actual, lastSet)
	next := lastSet // never mutated, so shared while nothing changes
	if !endpointsAre(lastSet, desired) {
		next = make(map[wgtypes.Key]netip.AddrPort, len(desired))
		for _, d := range desired {
			next[d.PublicKey] = d.Endpoint
		}
	}
	if len(changes) == 0 {
		return next, nil
	}
	if err := wg.ConfigureDevice(name, wgtypes.Config{Peers: changes}); err != nil {
		return lastSet, fmt.Errorf("failed to configure peers of WireGuard device %s: %w", name, err)
	}
	return next, nil
}

// endpointsAre reports whether set holds exactly desired's endpoints.
func endpointsAre(set map[wgtypes.Key]netip.AddrPort, desired []tunnel.WGPeer) bool {
	if set == nil || len(set) != len(desired) {
		return false
	}
	for _, d := range desired {
		if e, ok := set[d.PublicKey]; !ok || e != d.Endpoint {
			return false
		}
	}
	return true
}

// PeersToWarm are the peers of desired that dev (as read before the sync
// that added them) did not have, and whose public key sorts after self's:
// of two nodes that add each other, exactly one starts the handshake.
func PeersToWarm(self wgtypes.Key, dev *wgtypes.Device, desired []tunnel.WGPeer) []wgtypes.Key {
	have := make(map[wgtypes.Key]bool, len(dev.Peers))
	for _, p := range dev.Peers {
		have[p.PublicKey] = true
	}
	var out []wgtypes.Key
	for _, d := range desired {
		if !have[d.PublicKey] && d.PersistentKeepalive == 0 && bytes.Compare(self[:], d.PublicKey[:]) < 0 {
			out = append(out, d.PublicKey)
		}
	}
	return out
}

// Restarted are the peers of desired that dev has and that restarted since
// the last sync (their Boot changed from one published value to another),
// and whose public key sorts after self's. Such a peer's new device has
// none of the session keys dev still holds for it, and drops whatever
// arrives on them; WireGuard itself would notice only at its next rekey or
// after 15 s without an answer. Of the two ends, the one whose key sorts
// first starts the new session, as for a new peer (PeersToWarm); the other
// keeps its old session until the new one replaces it, so that its own
// traffic does not start a handshake that crosses the first.
func Restarted(self wgtypes.Key, dev *wgtypes.Device, desired []tunnel.WGPeer, lastBoot map[wgtypes.Key]uint32) []wgtypes.Key {
	if len(lastBoot) == 0 {
		return nil
	}
	var out []wgtypes.Key
	for _, d := range desired {
		was := lastBoot[d.PublicKey]
		if was == 0 || d.Boot == 0 || was == d.Boot || bytes.Compare(self[:], d.PublicKey[:]) >= 0 {
			continue
		}
		if slices.ContainsFunc(dev.Peers, func(p wgtypes.Peer) bool { return p.PublicKey == d.PublicKey }) {
			out = append(out, d.PublicKey)
		}
	}
	return out
}

// BootsOf returns desired's Boot by key, or last itself when it already
// holds exactly that (the usual resync, which then allocates nothing).
func BootsOf(desired []tunnel.WGPeer, last map[wgtypes.Key]uint32) map[wgtypes.Key]uint32 {
	same := len(last) == len(desired)
	for i := 0; same && i < len(desired); i++ {
		b, ok := last[desired[i].PublicKey]
		same = ok && b == desired[i].Boot
	}
	if same {
		return last
	}
	out := make(map[wgtypes.Key]uint32, len(desired))
	for _, d := range desired {
		out[d.PublicKey] = d.Boot
	}
	return out
}

// WarmPeers starts a handshake with each of keys now, rather than when the
// first packet for it arrives: turning a persistent keepalive on sends one
// keepalive at once (which needs a session), and turning it off again
// leaves the peer as planned. When two nodes first send to each other at
// the same moment, both initiate, each answers the other, and neither
// completes: WireGuard recovers only at its next retry, 5 s later, and
// again only if they do not collide again. A session set up when the peer
// is added, by one side only (PeersToWarm), avoids that.
func WarmPeers(wg WireGuard, name string, keys []wgtypes.Key) error {
	if len(keys) == 0 {
		return nil
	}
	set := func(d time.Duration) error {
		pcs := make([]wgtypes.PeerConfig, len(keys))
		for i, k := range keys {
			pcs[i] = wgtypes.PeerConfig{PublicKey: k, UpdateOnly: true, PersistentKeepaliveInterval: &d}
		}
		return wg.ConfigureDevice(name, wgtypes.Config{Peers: pcs})
	}
	if err := set(time.Second); err != nil {
		return fmt.Errorf("failed to start handshakes on %s: %w", name, err)
	}
	if err := set(0); err != nil {
		return fmt.Errorf("failed to turn keepalives off again on %s: %w", name, err)
	}
	return nil
}

// PeerFromWG converts a peer read from a device.
func PeerFromWG(p wgtypes.Peer) tunnel.WGPeer {
	out := tunnel.WGPeer{PublicKey: p.PublicKey, PersistentKeepalive: p.PersistentKeepaliveInterval}
	if p.Endpoint != nil {
		ap := p.Endpoint.AddrPort()
		out.Endpoint = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	for _, n := range p.AllowedIPs {
		if pfx, ok := PrefixFromIPNet(&n); ok {
			out.AllowedIPs = append(out.AllowedIPs, pfx)
		}
	}
	return out
}

// PrefixFromIPNet converts n (IPv4 kept as 4 bytes).
func PrefixFromIPNet(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	addr = addr.Unmap()
	if addr.Is4() && ones > 32 {
		ones -= 96
	}
	return netip.PrefixFrom(addr, ones).Masked(), true
}

// IPNet converts p.
func IPNet(p netip.Prefix) *net.IPNet {
	p = p.Masked()
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// IP converts a (nil for the zero Addr).
func IP(a netip.Addr) net.IP {
	if !a.IsValid() {
		return nil
	}
	return net.IP(a.Unmap().AsSlice())
}

// AddrFromIP converts ip (zero Addr for nil).
func AddrFromIP(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}
