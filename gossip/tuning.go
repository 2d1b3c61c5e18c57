package gossip

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultTuning is the memberlist timing New applies on top of
// memberlist.DefaultLANConfig, before Config.Tune. It is chosen for weft's
// targets up to a few thousand nodes (figures and reasoning in
// docs/gossip-tuning.md):
//
//   - a new or changed lease reaches every member within 2 s at 1,000;
//   - a member that dies without leaving is declared dead, and its lease
//     withdrawn from every member's Peers, within 5 s at 1,000;
//   - at rest a member sends under 10 kbit/s.
//
// What it changes, and why:
//
//   - Suspicion. memberlist waits SuspicionMult × max(1, log10 N) ×
//     ProbeInterval before declaring a suspect dead (at least; up to
//     SuspicionMaxTimeoutMult times that while too few others confirm).
//     With the LAN defaults (4, 1 s) that is 12 s at 1,000 members and
//     up to 72 s. ProbeInterval 500 ms with SuspicionMult 2 gives 3 s at
//     1,000 (2 s at 100, 3.7 s at 5,000). SuspicionMult 2 asks for no
//     confirmations (memberlist uses SuspicionMult-2 of them), so the
//     suspect gets exactly that long to refute.
//   - ProbeTimeout 250 ms leaves the rest of the 500 ms interval to the
//     indirect probes through IndirectChecks (3) other members and the
//     TCP fallback. Lifeguard's awareness still stretches the interval
//     up to 8× on a node that is itself slow.
//   - Dissemination. Each gossip round sends queued broadcasts to
//     GossipNodes random members; with 4 every 100 ms an update reaches
//     1,000 members in about log4(1000)+ln(1000)/4 ≈ 7 rounds. Gossip
//     sends nothing when nothing is queued, so at rest this costs nothing.
//   - Push/pull (the full-state exchange that repairs what gossip missed
//     and carries tombstones) is the dominant cost at rest: its size grows
//     with N, and memberlist already spaces it out by log2(N/32)+1 beyond
//     32 members. 60 s (so 6 min at 1,000) keeps a member under
//     10 kbit/s at 1,000; nothing weft needs quickly depends on it.
//     The seed re-join loop (partition healing) also runs at this period.
//   - GossipToTheDeadTime 15 s: a dead member still hears gossip for this
//     long (so a falsely suspected one can refute); shorter than the LAN
//     30 s because the whole failure budget is seconds.
func DefaultTuning(mc *memberlist.Config) {
	mc.ProbeInterval = 500 * time.Millisecond
	mc.ProbeTimeout = 250 * time.Millisecond
	mc.SuspicionMult = 2
	mc.SuspicionMaxTimeoutMult = 4
	mc.GossipInterval = 100 * time.Millisecond
	mc.GossipNodes = 4
	mc.RetransmitMult = 4
	mc.PushPullInterval = 60 * time.Second
	mc.GossipToTheDeadTime = 15 * time.Second
}
