package peering

import (
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// GatewayCounters is one peer of the peering WireGuard device as read from
// the device.
type GatewayCounters struct {
	PublicKey     wgtypes.Key
	LastHandshake time.Time // zero before the first
	RxBytes       int64
}

// Liveness turns successive reads of the peering device into how long ago
// each remote gateway was last heard from: the later of its last handshake
// and the last read at which its receive counter had grown. With
// keepalives on, a live gateway's counter grows every PersistentKeepalive,
// so a dead one is noticed long before its handshake expires. Not safe for
// concurrent use; the agent loop owns it.
type Liveness struct {
	marks map[wgtypes.Key]rxMark
}

type rxMark struct {
	rx    int64
	grown time.Time // zero until the counter was seen to grow
}

// Observe records counters read at now and returns, per public key, the
// age of the last sign of life; a key never heard from is absent. Keys not
// in counters are forgotten. A counter that went down (the peer was
// re-created) starts afresh.
func (l *Liveness) Observe(now time.Time, counters []GatewayCounters) map[wgtypes.Key]time.Duration {
	next := make(map[wgtypes.Key]rxMark, len(counters))
	ages := make(map[wgtypes.Key]time.Duration, len(counters))
	for _, c := range counters {
		m := rxMark{rx: c.RxBytes}
		if prev, ok := l.marks[c.PublicKey]; ok && c.RxBytes >= prev.rx {
			m.grown = prev.grown
			if c.RxBytes > prev.rx {
				m.grown = now
			}
		}
		next[c.PublicKey] = m
		last := c.LastHandshake
		if m.grown.After(last) {
			last = m.grown
		}
		if !last.IsZero() {
			ages[c.PublicKey] = max(now.Sub(last), 0)
		}
	}
	l.marks = next
	return ages
}

// HeardByNode maps ages by public key (from Observe) to peer's gateway
// node names, as ChooseRemoteGateway takes them.
func HeardByNode(peer Peer, ages map[wgtypes.Key]time.Duration) map[string]time.Duration {
	out := make(map[string]time.Duration, len(peer.Gateways))
	for _, g := range peer.Gateways {
		if age, ok := ages[g.PublicKey]; ok {
			out[g.Node] = age
		}
	}
	return out
}
