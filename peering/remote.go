package peering

import "time"

// Defaults for ChooseRemoteGateway.
const (
	// DefaultFresh is how old the last sign of life from a remote gateway
	// may be for it to count as up: WireGuard's REJECT_AFTER_TIME, after
	// which a session with no new handshake is dead.
	DefaultFresh = 180 * time.Second
	// DefaultTryTime is how long a newly chosen remote gateway is given to
	// complete a handshake before the next one in the bundle is tried.
	DefaultTryTime = 15 * time.Second
)

// RemoteState is what the active gateway knows about one remote cluster's
// gateways when it chooses which one to send to.
type RemoteState struct {
	// Current is the gateway node in use, "" before the first choice.
	Current string
	// Since is how long Current has been in use.
	Since time.Duration
	// LastHeard maps a gateway node to the age of the last handshake with
	// it (better: of the last packet received from it, which persistent
	// keepalives keep below PersistentKeepalive while it lives). Absent
	// means never.
	LastHeard map[string]time.Duration
	// Fresh is the oldest LastHeard that still counts as up. Default
	// DefaultFresh.
	Fresh time.Duration
	// TryTime is how long a gateway nothing was heard from is kept before
	// the next is tried. Default DefaultTryTime.
	TryTime time.Duration
}

// ChooseRemoteGateway returns the node name of the remote gateway to send
// to, "" when the bundle lists none. The rule:
//
//  1. The remote gateway heard from most recently, if that is within
//     Fresh, is the remote cluster's active gateway: only the active
//     gateway configures peers, so only it completes handshakes. Ties
//     keep Current, else go to the earlier in the bundle.
//  2. Otherwise, Current while it has been tried for less than TryTime.
//  3. Otherwise the gateway after Current in bundle order (wrapping), or
//     the first when there is no Current, so that a new active gateway
//     on either side finds the other's within one TryTime per gateway.
//
// The remote active gateway keeps a persistent keepalive to the gateway it
// chose here; when that is this node, its handshake arrives at once and
// rule 1 follows it.
func ChooseRemoteGateway(gws []RemoteGateway, st RemoteState) string {
	if len(gws) == 0 {
		return ""
	}
	fresh, try := st.Fresh, st.TryTime
	if fresh <= 0 {
		fresh = DefaultFresh
	}
	if try <= 0 {
		try = DefaultTryTime
	}
	cur := -1
	for i, g := range gws {
		if g.Node == st.Current {
			cur = i
		}
	}
	best := -1
	var bestAge time.Duration
	for i, g := range gws {
		age, ok := st.LastHeard[g.Node]
		if !ok || age < 0 || age > fresh {
			continue
		}
		if best < 0 || age < bestAge || age == bestAge && i == cur {
			best, bestAge = i, age
		}
	}
	switch {
	case best >= 0:
		return gws[best].Node
	case cur >= 0 && st.Since < try:
		return gws[cur].Node
	case cur >= 0:
		return gws[(cur+1)%len(gws)].Node
	default:
		return gws[0].Node
	}
}
