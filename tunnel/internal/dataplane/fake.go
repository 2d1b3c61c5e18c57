package dataplane

import (
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/weftnet/weft/tunnel"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

var (
	_ Routes    = (*FakeRoutes)(nil)
	_ Neighbors = (*FakeNeighbors)(nil)
	_ WireGuard = (*FakeWireGuard)(nil)
)

// FakeRoutes is an in-memory Routes. Routes holds weft's routes; Err, when
// set, is returned by every call.
type FakeRoutes struct {
	mu     sync.Mutex
	Routes []tunnel.Route
	Err    error
	Calls  int // mutating calls, to check idempotence
}

func (f *FakeRoutes) ListRoutes(linkIndex int) ([]tunnel.Route, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	var out []tunnel.Route
	for _, r := range f.Routes {
		if r.LinkIndex == linkIndex {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *FakeRoutes) ReplaceRoute(r tunnel.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	if f.Err != nil {
		return f.Err
	}
	// Like the kernel, a route is keyed by its destination (one table,
	// one metric).
	f.Routes = slices.DeleteFunc(f.Routes, func(x tunnel.Route) bool { return x.Dst == r.Dst })
	f.Routes = append(f.Routes, r)
	return nil
}

func (f *FakeRoutes) DeleteRoute(r tunnel.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	if f.Err != nil {
		return f.Err
	}
	n := len(f.Routes)
	f.Routes = slices.DeleteFunc(f.Routes, func(x tunnel.Route) bool { return x == r })
	if len(f.Routes) == n {
		return fmt.Errorf("route %v: %w", r, ErrNotFound)
	}
	return nil
}

// FakeNeighbors is an in-memory Neighbors for one or more devices.
type FakeNeighbors struct {
	mu    sync.Mutex
	Neigh map[int][]tunnel.Neighbor
	FDB   map[int][]tunnel.FDBEntry
	Err   error
	Calls int
}

func (f *FakeNeighbors) init() {
	if f.Neigh == nil {
		f.Neigh = map[int][]tunnel.Neighbor{}
	}
	if f.FDB == nil {
		f.FDB = map[int][]tunnel.FDBEntry{}
	}
}

func (f *FakeNeighbors) ListNeighbors(linkIndex int) ([]tunnel.Neighbor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if f.Err != nil {
		return nil, f.Err
	}
	return slices.Clone(f.Neigh[linkIndex]), nil
}

func (f *FakeNeighbors) SetNeighbor(linkIndex int, n tunnel.Neighbor) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.Calls++
	if f.Err != nil {
		return f.Err
	}
	l := slices.DeleteFunc(f.Neigh[linkIndex], func(x tunnel.Neighbor) bool { return x.IP == n.IP })
	f.Neigh[linkIndex] = append(l, tunnel.Neighbor{IP: n.IP, MAC: slices.Clone(n.MAC)})
	return nil
}

func (f *FakeNeighbors) DeleteNeighbor(linkIndex int, n tunnel.Neighbor) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.Calls++
	if f.Err != nil {
		return f.Err
	}
	l := f.Neigh[linkIndex]
	n0 := len(l)
	f.Neigh[linkIndex] = slices.DeleteFunc(l, func(x tunnel.Neighbor) bool { return x.IP == n.IP })
	if len(f.Neigh[linkIndex]) == n0 {
		return fmt.Errorf("neighbour %v: %w", n.IP, ErrNotFound)
	}
	return nil
}

func (f *FakeNeighbors) ListFDB(linkIndex int) ([]tunnel.FDBEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	if f.Err != nil {
		return nil, f.Err
	}
	return slices.Clone(f.FDB[linkIndex]), nil
}

func (f *FakeNeighbors) SetFDB(linkIndex int, e tunnel.FDBEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.Calls++
	if f.Err != nil {
		return f.Err
	}
	// Replace semantics: one destination per MAC.
	l := slices.DeleteFunc(f.FDB[linkIndex], func(x tunnel.FDBEntry) bool { return macEq(x.MAC, e.MAC) })
	f.FDB[linkIndex] = append(l, tunnel.FDBEntry{MAC: slices.Clone(e.MAC), Dst: e.Dst})
	return nil
}

func (f *FakeNeighbors) DeleteFDB(linkIndex int, e tunnel.FDBEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.Calls++
	if f.Err != nil {
		return f.Err
	}
	l := f.FDB[linkIndex]
	n0 := len(l)
	f.FDB[linkIndex] = slices.DeleteFunc(l, func(x tunnel.FDBEntry) bool { return macEq(x.MAC, e.MAC) && x.Dst == e.Dst })
	if len(f.FDB[linkIndex]) == n0 {
		return fmt.Errorf("FDB entry %v: %w", e.MAC, ErrNotFound)
	}
	return nil
}

func macEq(a, b net.HardwareAddr) bool { return slices.Equal(a, b) }

// FakeWireGuard is an in-memory WireGuard holding devices by name; it
// applies wgtypes.Config the way wireguard-go does.
type FakeWireGuard struct {
	mu      sync.Mutex
	Devices map[string]*wgtypes.Device
	Calls   int // ConfigureDevice calls
	Closed  bool
}

// NewFakeWireGuard returns a fake with empty devices of the given names.
func NewFakeWireGuard(names ...string) *FakeWireGuard {
	f := &FakeWireGuard{Devices: map[string]*wgtypes.Device{}}
	for _, n := range names {
		f.Devices[n] = &wgtypes.Device{Name: n, Type: wgtypes.Userspace}
	}
	return f
}

func (f *FakeWireGuard) Device(name string) (*wgtypes.Device, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.Devices[name]
	if !ok {
		return nil, fmt.Errorf("device %s: %w", name, ErrNotFound)
	}
	cp := *d
	cp.Peers = slices.Clone(d.Peers)
	for i := range cp.Peers {
		cp.Peers[i].AllowedIPs = slices.Clone(cp.Peers[i].AllowedIPs)
	}
	return &cp, nil
}

func (f *FakeWireGuard) ConfigureDevice(name string, cfg wgtypes.Config) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	d, ok := f.Devices[name]
	if !ok {
		return fmt.Errorf("device %s: %w", name, ErrNotFound)
	}
	if cfg.PrivateKey != nil {
		d.PrivateKey = *cfg.PrivateKey
		d.PublicKey = cfg.PrivateKey.PublicKey()
	}
	if cfg.ListenPort != nil {
		d.ListenPort = *cfg.ListenPort
	}
	if cfg.ReplacePeers {
		d.Peers = nil
	}
	for _, pc := range cfg.Peers {
		i := slices.IndexFunc(d.Peers, func(p wgtypes.Peer) bool { return p.PublicKey == pc.PublicKey })
		if pc.Remove {
			if i >= 0 {
				d.Peers = slices.Delete(d.Peers, i, i+1)
			}
			continue
		}
		if i < 0 {
			if pc.UpdateOnly {
				continue
			}
			d.Peers = append(d.Peers, wgtypes.Peer{PublicKey: pc.PublicKey})
			i = len(d.Peers) - 1
		}
		p := &d.Peers[i]
		if pc.Endpoint != nil {
			e := *pc.Endpoint
			p.Endpoint = &e
		}
		if pc.ReplaceAllowedIPs {
			p.AllowedIPs = nil
		}
		p.AllowedIPs = append(p.AllowedIPs, pc.AllowedIPs...)
		if pc.PersistentKeepaliveInterval != nil {
			p.PersistentKeepaliveInterval = *pc.PersistentKeepaliveInterval
		}
	}
	return nil
}

func (f *FakeWireGuard) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Closed = true
	return nil
}
