// Package tunnel connects this node to every other node. A Backend owns one
// network device (WireGuard or VXLAN) and the routes to peers' pod blocks.
//
// The agent calls Setup once, then Apply with the full desired peer set on
// every change and on every resync tick. Apply is idempotent: it re-reads the
// kernel (and the WireGuard device) and repairs drift, adds what is missing
// and removes what departed peers left behind.
package tunnel

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// Local describes this node to its backend.
type Local struct {
	// Name is this node's name.
	Name string
	// UnderlayIP is the address other nodes reach this node at.
	UnderlayIP netip.Addr
	// UnderlayMTU is the MTU of the underlay interface; 0 means detect it
	// from the interface that holds UnderlayIP.
	UnderlayMTU int
	// PodCIDR is this node's leased block.
	PodCIDR netip.Prefix
	// Gateway is this node's address inside PodCIDR (first usable address).
	// The backend assigns it (as /32) to its device so that traffic from the
	// node to remote pods carries an address the remote side routes back.
	Gateway netip.Addr
}

// Info is what Setup reports back: what the node publishes in gossip and the
// MTU that pods must use.
type Info struct {
	// PublicKey is the WireGuard public key (base64), empty for VXLAN.
	PublicKey string
	// VTEPMAC is the VXLAN device's MAC, nil for WireGuard.
	VTEPMAC net.HardwareAddr
	// Port is the UDP port the tunnel listens on.
	Port int
	// MTU is the tunnel device MTU (underlay MTU minus Overhead); pods use it.
	MTU int
}

// Peer is another node as the backend needs to know it.
type Peer struct {
	Name       string
	UnderlayIP netip.Addr
	// Port is the peer's tunnel UDP port (WireGuard listen port, VXLAN dst port).
	Port      int
	PublicKey string           // WireGuard
	VTEPMAC   net.HardwareAddr // VXLAN
	PodCIDR   netip.Prefix
	// Boot identifies the run of the peer's agent (gossip.Meta.Boot; 0
	// unknown). A change means the peer restarted and lost its tunnel
	// state: a WireGuard backend starts a new session with it at once
	// rather than keep sending on keys the peer no longer has.
	Boot uint32
	// Extra are networks beyond this node's cluster reached through the
	// peer (the remote clusters' CIDRs, when the peer is the active
	// peering gateway): routed to it like PodCIDR and, over WireGuard,
	// added to its AllowedIPs so that replies from them are accepted.
	Extra []netip.Prefix
}

// PeerStats is the live state of one peer's tunnel.
type PeerStats struct {
	Name          string
	Endpoint      string
	LastHandshake time.Time // zero for VXLAN or before the first handshake
	RxBytes       int64
	TxBytes       int64
}

// Backend is one tunnel implementation.
type Backend interface {
	// Name is "wireguard" or "vxlan".
	Name() string
	// Setup creates (or adopts) the device, assigns local.Gateway, brings it
	// up with the right MTU and returns what to publish.
	Setup(ctx context.Context, local Local) (Info, error)
	// Apply makes the device, routes and neighbour state match peers
	// exactly. It is idempotent and repairs drift.
	Apply(ctx context.Context, peers []Peer) error
	// Stats reports per-peer counters.
	Stats(ctx context.Context) ([]PeerStats, error)
	// Overhead is the bytes of encapsulation per packet for the underlay
	// address family Setup was given (IPv4 before Setup).
	Overhead() int
	// Close stops the backend. With remove=true it deletes the device and
	// every route it made; with remove=false (agent restart) it leaves the
	// data plane in place so pods keep connectivity.
	Close(remove bool) error
}
