package gossip

// Lease life cycle. Start obtains the first lease (static > persisted >
// claim a free block); afterwards the claim loop owns our lease: whenever
// the delegate reports a change it checks whether a live member's lease
// beats ours (rules in lease.go) and, if so, claims another free block.
// Our lease is never changed anywhere else, so there is no claim-vs-claim
// race inside one node; races between nodes are settled by the rule.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"time"
)

// Start joins the seeds, obtains the lease, publishes it and returns it.
//
// With seeds, it retries joining until at least one seed answers or ctx is
// done; the join includes a full state exchange, so on return from the join
// the member table and tombstones are what the seed knew. With no seeds
// other than ourselves the node starts a new cluster. If no block is free,
// Start waits for one until ctx is done.
func (n *Node) Start(ctx context.Context) (netip.Prefix, error) {
	n.lifeMu.Lock()
	switch {
	case n.stopped:
		n.lifeMu.Unlock()
		return netip.Prefix{}, errors.New("gossip node is shut down")
	case n.started:
		n.lifeMu.Unlock()
		return netip.Prefix{}, errors.New("gossip node already started")
	}
	n.started = true
	n.lifeMu.Unlock()

	if err := n.join(ctx); err != nil {
		return netip.Prefix{}, err
	}
	lease, err := n.obtainLease(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	n.persist()
	n.broadcastMeta()

	n.lifeMu.Lock()
	if n.stopped {
		n.lifeMu.Unlock()
		return netip.Prefix{}, errors.New("gossip node shut down during start")
	}
	n.loops.Add(3)
	go n.claimLoop()
	go n.rejoinLoop()
	go n.catchUp()
	n.lifeMu.Unlock()
	n.wake() // re-check against anything learnt while publishing
	return lease, nil
}

// otherSeeds returns the configured seeds minus our own address.
func (n *Node) otherSeeds() []string {
	n.mu.Lock()
	self := n.selfAddr
	n.mu.Unlock()
	selfAP, selfErr := netip.ParseAddrPort(self)
	var out []string
	for _, s := range n.cfg.Seeds {
		if s == self {
			continue
		}
		if ap, err := netip.ParseAddrPort(s); err == nil && selfErr == nil && ap == selfAP {
			continue
		}
		out = append(out, s)
	}
	return out
}

func (n *Node) join(ctx context.Context) error {
	seeds := n.otherSeeds()
	if len(seeds) == 0 {
		n.log.Info("no seeds; starting a new gossip cluster")
		return nil
	}
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		contacted, err := n.joinAny(seeds)
		if contacted > 0 {
			n.log.Info("joined gossip cluster", "contacted", contacted, "members", n.ml.NumMembers())
			return nil
		}
		n.log.Warn("no seed reachable; retrying", "seeds", seeds, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("failed to join gossip cluster via %v: %w (last error: %v)", seeds, ctx.Err(), err)
		case <-n.stop:
			return errors.New("gossip node shut down while joining")
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// joinAny joins every seed at once and returns as soon as one has
// answered (the others go on in the background), or when all have failed.
// memberlist's Join tries seeds one after another, and a seed whose
// packets are dropped (a partition, a powered-off node whose address is
// still listed) costs its whole TCP timeout, 10 s, before the next is
// tried.
func (n *Node) joinAny(seeds []string) (int, error) {
	type result struct {
		ok  bool
		err error
	}
	res := make(chan result, len(seeds)) // buffered: late answers never block
	for _, s := range seeds {
		go func() {
			c, err := n.ml.Join([]string{s})
			res <- result{c > 0, err}
		}()
	}
	var errs []error
	for range seeds {
		r := <-res
		if r.ok {
			return 1, nil
		}
		errs = append(errs, r.err)
	}
	return 0, errors.Join(errs...)
}

// obtainLease picks the first lease and installs it in n.self.
func (n *Node) obtainLease(ctx context.Context) (netip.Prefix, error) {
	persisted, havePersisted := n.loadPersisted()
	for {
		p, ok := n.tryObtain(persisted, havePersisted)
		if ok {
			return p, nil
		}
		havePersisted = false // it was taken; don't warn again
		n.log.Error("no free block in cluster CIDR; waiting", "clusterCIDR", n.cfg.ClusterCIDR, "blockBits", n.cfg.BlockBits)
		select {
		case <-ctx.Done():
			return netip.Prefix{}, fmt.Errorf("failed to claim a block of %s: no free block: %w", n.cfg.ClusterCIDR, ctx.Err())
		case <-n.stop:
			return netip.Prefix{}, errors.New("gossip node shut down while claiming a block")
		case <-n.kick:
		case <-time.After(time.Second):
		}
	}
}

// loadPersisted reads the lease file, ignoring (with a warning) one that is
// unreadable or no longer fits the configuration.
func (n *Node) loadPersisted() (leaseRecord, bool) {
	if n.cfg.LeaseFile == "" {
		return leaseRecord{}, false
	}
	rec, err := loadLeaseFile(n.cfg.LeaseFile, n.log)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return leaseRecord{}, false
	case err != nil:
		n.log.Warn("ignoring lease file", "err", err)
		return leaseRecord{}, false
	case rec.CIDR == n.cfg.StaticLease:
	case rec.CIDR.Bits() != n.cfg.BlockBits || !n.cfg.ClusterCIDR.Contains(rec.CIDR.Addr()):
		n.log.Warn("ignoring persisted lease outside the cluster CIDR or of another block size",
			"block", rec.CIDR, "clusterCIDR", n.cfg.ClusterCIDR, "blockBits", n.cfg.BlockBits)
		return leaseRecord{}, false
	}
	if n.cfg.StaticLease.IsValid() && rec.CIDR != n.cfg.StaticLease {
		// The externally assigned block (Kubernetes' podCIDR) is this
		// node's lease; a persisted claim of another block gives way.
		n.log.Warn("persisted lease differs from the static lease; using the static lease",
			"persisted", rec.CIDR, "static", n.cfg.StaticLease)
		return leaseRecord{}, false
	}
	return rec, true
}

func (n *Node) tryObtain(persisted leaseRecord, havePersisted bool) (netip.Prefix, bool) {
	now := time.Now()
	self := n.Self()
	var why string
	var holder string

	n.mu.Lock()
	taken, holders := n.takenLocked(now)
	chosen := false
	switch {
	case n.forceClaim.IsValid():
		self.PodCIDR, self.ClaimedAt, self.Static = n.forceClaim, now.Round(0), false
		chosen, why = true, "forced"
	case havePersisted && (persisted.CIDR == n.cfg.StaticLease || !overlapsAny(persisted.CIDR, taken)):
		self.PodCIDR, self.ClaimedAt = persisted.CIDR, persisted.ClaimedAt
		self.Static = persisted.CIDR == n.cfg.StaticLease
		chosen, why = true, "persisted"
	case havePersisted:
		holder = holders[firstOverlap(persisted.CIDR, taken)]
		n.stats.reclaims.Add(1)
	}
	if !chosen && n.cfg.StaticLease.IsValid() {
		at := now.Round(0)
		if self.Static && self.PodCIDR == n.cfg.StaticLease && !self.ClaimedAt.IsZero() {
			// Published from the first alive message (New): keep its time,
			// so Start changes nothing the others already hold. A new time
			// here was a meta update of every starting node, and a
			// reconcile on every member that heard it.
			at = self.ClaimedAt
		}
		self.PodCIDR, self.ClaimedAt, self.Static = n.cfg.StaticLease, at, true
		chosen, why = true, "static"
	}
	if !chosen {
		if p, ok := freeBlock(n.cfg.ClusterCIDR, n.cfg.BlockBits, taken, n.startIndex(n.cfg.NodeName)); ok {
			self.PodCIDR, self.ClaimedAt, self.Static = p, now.Round(0), false
			chosen, why = true, "claimed"
		}
	}
	if chosen {
		chosen = n.setSelfLocked(self) == nil
	}
	n.mu.Unlock()

	if holder != "" {
		n.log.Warn("persisted lease is held by another node; claiming another block",
			"block", persisted.CIDR, "holder", holder)
	}
	if !chosen {
		return netip.Prefix{}, false
	}
	n.log.Info("obtained lease", "block", self.PodCIDR, "how", why, "claimedAt", self.ClaimedAt, "static", self.Static)
	return self.PodCIDR, true
}

// takenLocked lists the blocks no claim may overlap: other live members'
// leases and unexpired tombstones of other nodes, with the holder of each.
// Caller holds mu.
func (n *Node) takenLocked(now time.Time) ([]netip.Prefix, []string) {
	var taken []netip.Prefix
	var holders []string
	for name, m := range n.members {
		if m.PodCIDR.IsValid() {
			taken = append(taken, m.PodCIDR)
			holders = append(holders, name)
		}
	}
	for name, t := range n.tombs {
		if !t.live(now) {
			n.expireLocked(name, t)
			continue
		}
		if name != n.cfg.NodeName {
			taken = append(taken, t.CIDR)
			holders = append(holders, name+" (failed)")
		}
	}
	return taken, holders
}

func firstOverlap(p netip.Prefix, taken []netip.Prefix) int {
	for i, t := range taken {
		if t.Overlaps(p) {
			return i
		}
	}
	return -1
}

// claimLoop re-checks our lease whenever the member table changes, and
// once a second to retry a claim that found no free block.
func (n *Node) claimLoop() {
	defer n.loops.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-n.kick:
		case <-tick.C:
		}
		n.checkLease()
	}
}

// checkLease re-claims if a live member's lease beats ours, or if we have
// none (no block was free).
func (n *Node) checkLease() {
	now := time.Now()
	n.mu.Lock()
	self := n.self.clone()
	var rival claim
	lost := false
	if self.PodCIDR.IsValid() {
		// Read in place: this runs every second and on every member
		// change, and a copy of every claim is about 100 KB at 1,000
		// members.
		rival, lost = strongestRival(claimOf(self), func(yield func(claim) bool) {
			for _, m := range n.members {
				if !yield(claimOf(m)) {
					return
				}
			}
		})
		if !lost {
			n.mu.Unlock()
			return
		}
	}
	if lost && self.Static {
		key := rival.Name + " " + rival.CIDR.String()
		repeat := key == n.staticConflict
		n.staticConflict = key
		n.mu.Unlock()
		if !repeat {
			n.log.Error("static lease loses a conflict; it cannot be re-claimed, peers will not route to it",
				"block", self.PodCIDR, "winner", rival.Name, "winnerBlock", rival.CIDR, "loser", self.Name)
		}
		return
	}
	old := self.PodCIDR
	taken, _ := n.takenLocked(now)
	p, ok := freeBlock(n.cfg.ClusterCIDR, n.cfg.BlockBits, taken, n.startIndex(n.cfg.NodeName))
	if ok {
		self.PodCIDR, self.ClaimedAt, self.Static = p, now.Round(0), false
	} else {
		self.PodCIDR, self.ClaimedAt, self.Static = netip.Prefix{}, time.Time{}, false
	}
	if lost || ok {
		n.stats.reclaims.Add(1)
	}
	if lost {
		n.stats.conflictsLost.Add(1)
	}
	changed := old != self.PodCIDR
	if changed {
		_ = n.setSelfLocked(self) // only the lease changed; it encodes
	}
	n.mu.Unlock()

	if lost {
		n.log.Warn("lost lease conflict; re-claiming",
			"block", old, "winner", rival.Name, "winnerBlock", rival.CIDR, "loser", self.Name)
	}
	switch {
	case ok && changed:
		n.log.Info("claimed block", "block", p, "previous", old)
	case !ok && old.IsValid():
		n.log.Error("no free block in cluster CIDR; this node has no lease until one frees",
			"clusterCIDR", n.cfg.ClusterCIDR, "blockBits", n.cfg.BlockBits)
	}
	if changed {
		n.persist()
		n.broadcastMeta()
	}
}

// persist writes our lease to the lease file, if configured.
func (n *Node) persist() {
	if n.cfg.LeaseFile == "" {
		return
	}
	self := n.Self()
	if !self.PodCIDR.IsValid() {
		return
	}
	if err := writeLeaseFile(n.cfg.LeaseFile, leaseRecord{CIDR: self.PodCIDR, ClaimedAt: self.ClaimedAt}); err != nil {
		n.log.Error("failed to persist lease", "err", err)
	}
}

// rejoinLoop joins seeds that are not live members every push/pull
// interval. memberlist alone does not reconnect to nodes it declared dead,
// so without this a healed partition would stay split.
func (n *Node) rejoinLoop() {
	defer n.loops.Done()
	if len(n.otherSeeds()) == 0 {
		return
	}
	tick := time.NewTicker(n.rejoinEvery)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		// Not n.ml.Members(): its nodes are shared with memberlist and
		// read without its lock.
		live := make(map[string]bool)
		n.mu.Lock()
		for _, a := range n.addrs {
			live[a] = true
		}
		n.mu.Unlock()
		var missing []string
		for _, s := range n.otherSeeds() {
			if !live[s] {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			continue
		}
		if contacted, err := n.ml.Join(missing); contacted > 0 {
			n.log.Debug("rejoined seeds", "seeds", missing, "contacted", contacted)
		} else {
			n.log.Debug("seeds still unreachable", "seeds", missing, "err", err)
		}
	}
}

// catchUpAfter are the delays after Start at which the node exchanges full
// state with one random live member.
//
// A member that joins while others do (a DaemonSet rollout, many agents
// restarting) is unknown to most of the cluster for the first gossip
// rounds, so nobody gossips to it the updates made in that window — such
// as a concurrent joiner's lease — and the state it got from its seeds at
// join predates them. Without these exchanges such a lease stays missing
// from its Peers until the next periodic push/pull, minutes away in a
// large cluster (the benchmark saw 200 s at 100 members). By the first
// exchange the member's own join has spread, so it hears everything that
// follows by gossip.
var catchUpAfter = []time.Duration{2 * time.Second, 10 * time.Second}

func (n *Node) catchUp() {
	defer n.loops.Done()
	start := time.Now()
	for _, d := range catchUpAfter {
		select {
		case <-n.stop:
			return
		case <-time.After(time.Until(start.Add(d))):
		}
		n.mu.Lock()
		var peer string
		for _, a := range n.addrs { // map order: a random member
			peer = a
			break
		}
		n.mu.Unlock()
		if peer == "" {
			continue
		}
		// Join with a live member is memberlist's only public full-state
		// exchange; it changes nothing else.
		if _, err := n.ml.Join([]string{peer}); err != nil {
			n.log.Debug("catch-up state exchange failed", "peer", peer, "err", err)
		}
	}
}
