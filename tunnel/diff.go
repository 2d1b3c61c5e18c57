package tunnel

// Diffing is pure too: given the desired entries and the ones read back
// from the kernel (only weft's own: routes tagged RouteProtocol, permanent
// neighbours and FDB entries on weft's device, peers on weft's WireGuard
// device), say what to install and what to delete. Appliers delete first,
// then install, so an entry whose attributes changed is replaced cleanly.

import (
	"net"
	"net/netip"
	"slices"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// DiffRoutes returns the desired routes missing from actual (add) and the
// actual routes that are not exactly desired (del).
func DiffRoutes(desired, actual []Route) (add, del []Route) {
	return diffExact(desired, actual, func(r Route) Route { return r })
}

// DiffNeighbors returns the neighbours to set and those to delete.
func DiffNeighbors(desired, actual []Neighbor) (add, del []Neighbor) {
	return diffExact(desired, actual, func(n Neighbor) neighKey {
		return neighKey{n.IP, macKey(n.MAC)}
	})
}

// DiffFDB returns the FDB entries to set and those to delete.
func DiffFDB(desired, actual []FDBEntry) (add, del []FDBEntry) {
	return diffExact(desired, actual, func(f FDBEntry) fdbKey {
		return fdbKey{macKey(f.MAC), f.Dst}
	})
}

type neighKey struct {
	ip  netip.Addr
	mac [6]byte
}

type fdbKey struct {
	mac [6]byte
	dst netip.Addr
}

func macKey(m net.HardwareAddr) [6]byte {
	var k [6]byte
	copy(k[:], m)
	return k
}

func diffExact[T any, K comparable](desired, actual []T, key func(T) K) (add, del []T) {
	// One map, from each desired key to whether actual has it yet: a
	// resync diffs a thousand routes every interval, and this is garbage.
	const (
		missing = 1 // desired, not (yet) in actual
		present = 2 // desired, and in actual once already
	)
	state := make(map[K]uint8, len(desired))
	for _, d := range desired {
		state[key(d)] = missing
	}
	for _, a := range actual {
		k := key(a)
		if state[k] != missing {
			del = append(del, a) // unwanted, or a duplicate of a wanted one
			continue
		}
		state[k] = present
	}
	for _, d := range desired {
		if k := key(d); state[k] == missing {
			add = append(add, d)
			state[k] = present
		}
	}
	return add, del
}

// DiffWGPeers returns the wgtypes.PeerConfig changes that turn the device's
// actual peers into the desired ones: add missing peers, replace allowed IPs
// that differ, remove peers nobody publishes any more.
//
// Endpoints: WireGuard updates a peer's endpoint to wherever its last
// authenticated packet came from (roaming, NAT). So an existing peer's
// endpoint is only reset when it has none, or when the endpoint the peer
// publishes differs from the one set at the last Apply (lastSet, keyed by
// public key; nil after a restart, which resets every endpoint once).
func DiffWGPeers(desired, actual []WGPeer, lastSet map[wgtypes.Key]netip.AddrPort) []wgtypes.PeerConfig {
	have := make(map[wgtypes.Key]int, len(actual)) // index in actual
	for i, a := range actual {
		have[a.PublicKey] = i
	}
	wanted := make([]bool, len(actual))
	var out []wgtypes.PeerConfig
	for _, d := range desired {
		var a WGPeer
		i, ok := have[d.PublicKey]
		if ok {
			a, wanted[i] = actual[i], true
		}
		pc := wgtypes.PeerConfig{PublicKey: d.PublicKey}
		changed := false
		prev, known := lastSet[d.PublicKey]
		if !ok || !a.Endpoint.IsValid() || !known || prev != d.Endpoint {
			if !ok || a.Endpoint != d.Endpoint {
				pc.Endpoint = net.UDPAddrFromAddrPort(d.Endpoint)
				changed = true
			}
		}
		if !ok || !samePrefixes(a.AllowedIPs, d.AllowedIPs) {
			pc.ReplaceAllowedIPs = true
			for _, p := range d.AllowedIPs {
				pc.AllowedIPs = append(pc.AllowedIPs, prefixToIPNet(p))
			}
			changed = true
		}
		if ok && a.PersistentKeepalive != d.PersistentKeepalive || !ok && d.PersistentKeepalive != 0 {
			ka := d.PersistentKeepalive
			pc.PersistentKeepaliveInterval = &ka
			changed = true
		}
		if changed {
			out = append(out, pc)
		}
	}
	for i, a := range actual {
		if !wanted[i] {
			out = append(out, wgtypes.PeerConfig{PublicKey: a.PublicKey, Remove: true})
		}
	}
	return out
}

func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) == len(b) && slices.EqualFunc(a, b, func(x, y netip.Prefix) bool { return x.Masked() == y.Masked() }) {
		return true // the usual case, and no garbage
	}
	norm := func(ps []netip.Prefix) []netip.Prefix {
		out := make([]netip.Prefix, len(ps))
		for i, p := range ps {
			out[i] = p.Masked()
		}
		slices.SortFunc(out, func(x, y netip.Prefix) int { return x.Compare(y) })
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

func prefixToIPNet(p netip.Prefix) net.IPNet {
	p = p.Masked()
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
