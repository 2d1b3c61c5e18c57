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
// PushPullInterval; this is what heals a partition.
//
// Timings are memberlist.DefaultLANConfig (probe every 1s, push/pull every
// 30s, gossip every 200ms); a failed node is declared dead after a few
// seconds (more in large clusters). Config.Tune adjusts them.
package gossip
