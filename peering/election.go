package peering

// Member is one node of the local cluster as gossip shows it.
type Member struct {
	Name string
	// Eligible: the node may be a gateway (its label or config says so).
	Eligible bool
	// Alive: gossip sees the node alive.
	Alive bool
	// Active: the node publishes that it is the active gateway, i.e. it
	// elected itself at its last reconcile.
	Active bool
}

// ElectGateway returns the cluster's active gateway, or "" when no member
// is both eligible and alive. Every node computes it alike from the same
// gossip view:
//
//  1. The candidates are the members that are eligible and alive.
//  2. If candidates publish Active, the one with the lowest name among
//     them wins. This is the stickiness: a node that took over keeps the
//     role when a lower-named gateway comes back, so a flapping node does
//     not move the peering back and forth. When two claim at once (a
//     healed partition), the lowest name wins and the other stops
//     claiming at its next reconcile.
//  3. Otherwise the candidate with the lowest name wins.
//
// When the active gateway dies, every node sees it dead in the same gossip
// round and elects the next at its next reconcile. A member listed twice
// counts once: it is a candidate if any of its entries is.
func ElectGateway(members []Member) string {
	best, bestActive := "", false
	for _, m := range members {
		if !m.Eligible || !m.Alive || m.Name == "" {
			continue
		}
		switch {
		case best == "",
			m.Active && !bestActive,
			m.Active == bestActive && m.Name < best:
			best, bestActive = m.Name, m.Active
		case m.Name == best && m.Active:
			bestActive = true
		}
	}
	return best
}
