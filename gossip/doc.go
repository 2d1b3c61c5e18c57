// Package gossip finds the other weft agents and leases pod subnets over
// hashicorp/memberlist.
//
// Every node publishes a small versioned Meta (meta.go) in memberlist's
// node metadata: its underlay endpoint, tunnel key or VTEP MAC, and its
// lease (block, ClaimedAt, Static). Every node builds the same peer table
// from these, so Peers() agrees everywhere once gossip has converged.
//
// Leases (lease.go, claim.go). Start reuses the persisted lease unless a
// live node or an unexpired tombstone of another node holds it; otherwise
// it takes the static lease (Kubernetes podCIDR); otherwise it claims a
// free block, trying blocks from hash(name) onwards. Overlapping claims are
// settled by one rule: Static beats claimed, then earlier ClaimedAt, then
// lower Name. The loser re-claims; Peers() leaves out every claim that
// loses a conflict, so it never holds two overlapping blocks.
//
// A failed node's lease is kept as a tombstone for LeaseGrace. Tombstones
// travel in memberlist push/pull with their remaining time, so newcomers
// learn them. A node that calls Leave first publishes meta without a lease,
// which frees its block at once. (memberlist v0.7.0 does not tell the
// NotifyLeave callback whether a node left or failed: the State field of
// the Node it passes is never updated.)
//
// memberlist alone does not reconnect to members it declared dead, so the
// node re-joins configured seeds that are not live members every
// RejoinInterval (default PushPullInterval); this is what heals a
// partition. Start joins all seeds at once, so seeds whose packets are
// dropped do not delay the join by a TCP timeout each.
//
// memberlist's encryption does not stop replays. A member that a replayed
// alive message could have brought back (one this node saw go down or
// holds a tombstone of, or whose lease overlaps a live one) counts only
// after it answers a challenge sent to its address (proof.go).
//
// A member that has just joined exchanges full state with one random live
// member 2 s and 10 s after Start (catchUp in claim.go): while its own join
// spreads, nobody gossips to it, so it would otherwise miss updates made in
// that window (a concurrent joiner's lease) until the next push/pull.
//
// Timings are memberlist.DefaultLANConfig with DefaultTuning (tuning.go)
// on top: probe every 500ms, suspicion 2 x log10(N) probe intervals,
// gossip to 4 members every 100ms, push/pull every 60s (scaled up by
// memberlist beyond 32 members). At 1,000 members a new lease reaches
// every member in about a second and a failed member is withdrawn in
// about 4s; docs/gossip-tuning.md has the figures. Config.Tune adjusts
// them further.
package gossip
