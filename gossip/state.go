package gossip

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// The lease table exchanged in memberlist push/pull (LocalState /
// MergeRemoteState). Live leases travel in node meta; this carries what
// meta cannot: tombstones of failed nodes, so a newcomer does not claim a
// block whose owner died a minute ago. Expiry travels as a remaining
// duration, because the nodes' wall clocks need not agree.
type wireState struct {
	Version    int         `json:"v"`
	Tombstones []wireTombs `json:"tombstones,omitempty"`
}

type wireTombs struct {
	Name        string       `json:"name"`
	CIDR        netip.Prefix `json:"cidr"`
	ClaimedAtNS int64        `json:"claimedAt"`
	Static      bool         `json:"static,omitempty"`
	RemainingMS int64        `json:"remainingMs"`
}

const stateVersion = 1

func encodeState(tombs []tombstone, now time.Time) ([]byte, error) {
	w := wireState{Version: stateVersion}
	for _, t := range tombs {
		var ns int64
		if !t.ClaimedAt.IsZero() {
			ns = t.ClaimedAt.UnixNano()
		}
		w.Tombstones = append(w.Tombstones, wireTombs{
			Name: t.Name, CIDR: t.CIDR, ClaimedAtNS: ns, Static: t.Static,
			RemainingMS: t.Expires.Sub(now).Milliseconds(),
		})
	}
	return json.Marshal(w)
}

// decodeState parses a peer's lease table. Remaining durations are capped
// at maxGrace so a peer cannot pin a block for longer than this node would.
func decodeState(b []byte, now time.Time, maxGrace time.Duration) ([]tombstone, error) {
	var w wireState
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("malformed lease table: %w", err)
	}
	if w.Version < 1 {
		return nil, fmt.Errorf("malformed lease table: version %d", w.Version)
	}
	out := make([]tombstone, 0, len(w.Tombstones))
	for _, t := range w.Tombstones {
		if t.Name == "" || !t.CIDR.IsValid() || t.CIDR != t.CIDR.Masked() {
			return nil, fmt.Errorf("malformed lease table: bad tombstone %q %s", t.Name, t.CIDR)
		}
		if t.RemainingMS <= 0 {
			continue
		}
		remaining := maxGrace
		if t.RemainingMS < int64(maxGrace/time.Millisecond) {
			remaining = time.Duration(t.RemainingMS) * time.Millisecond
		}
		var at time.Time
		if t.ClaimedAtNS != 0 {
			at = time.Unix(0, t.ClaimedAtNS)
		}
		out = append(out, tombstone{
			claim:   claim{Name: t.Name, CIDR: t.CIDR, ClaimedAt: at, Static: t.Static},
			Expires: now.Add(remaining),
		})
	}
	return out, nil
}
