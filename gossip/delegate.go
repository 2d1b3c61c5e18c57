package gossip

import (
	"net/netip"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. They run on memberlist's
// receive loop, some while memberlist holds its own node lock: they must
// not block, must not call back into memberlist, and must copy what they
// keep. Each one decodes outside n.mu, updates the tables under it, and
// pokes the buffered channels.
type delegate struct{ n *Node }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
)

func (d delegate) NodeMeta(limit int) []byte {
	d.n.mu.Lock()
	b := slices.Clone(d.n.selfEnc)
	d.n.mu.Unlock()
	if len(b) > limit {
		return nil // cannot happen: encodeMeta enforces MetaMaxSize
	}
	return b
}

func (d delegate) NotifyMsg(b []byte) { d.n.handleProof(b) }

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState sends our tombstones in push/pull.
func (d delegate) LocalState(join bool) []byte {
	n := d.n
	now := time.Now()
	n.mu.Lock()
	tombs := make([]tombstone, 0, len(n.tombs))
	for name, t := range n.tombs {
		if !t.live(now) {
			n.expireLocked(name, t)
			continue
		}
		tombs = append(tombs, t)
	}
	n.mu.Unlock()
	b, err := encodeState(tombs, now)
	if err != nil {
		n.log.Error("failed to encode lease table", "err", err)
		return nil
	}
	return b
}

// MergeRemoteState learns a peer's tombstones. Tombstones of members we
// see alive, and our own, are ignored.
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	n := d.n
	if len(buf) == 0 {
		return
	}
	now := time.Now()
	tombs, err := decodeState(buf, now, n.cfg.LeaseGrace)
	if err != nil {
		n.stats.malformedState.Add(1)
		n.log.Warn("ignoring lease table from peer", "err", err)
		return
	}
	changed := false
	n.mu.Lock()
	for _, t := range tombs {
		if _, alive := n.members[t.Name]; alive || t.Name == n.cfg.NodeName {
			continue
		}
		if old, ok := n.tombs[t.Name]; ok && !old.live(now) {
			n.expireLocked(t.Name, old)
		}
		if e, ok := n.expired[t.Name]; ok && sameClaim(e, t.claim) {
			continue // its grace has run out here already: a replay, or a peer that heard of it late
		}
		if mergeTombstone(n.tombs, t, now) {
			changed = true
		}
	}
	n.mu.Unlock()
	if changed {
		n.wake()
		n.notify()
	}
}

func (d delegate) NotifyJoin(node *memberlist.Node)   { d.n.memberUp(node) }
func (d delegate) NotifyUpdate(node *memberlist.Node) { d.n.memberUp(node) }
func (d delegate) NotifyLeave(node *memberlist.Node)  { d.n.memberDown(node) }

// memberUp records a live member's meta.
func (n *Node) memberUp(node *memberlist.Node) {
	if node.Name == n.cfg.NodeName {
		// memberlist announces us to ourselves in Create; keep our
		// address (LocalNode() would be read without memberlist's lock).
		n.mu.Lock()
		n.selfAddr = node.Address()
		n.mu.Unlock()
		return
	}
	name := node.Name
	n.mu.Lock()
	n.addrs[name] = node.Address()
	n.mu.Unlock()
	meta, err := decodeMeta(node.Meta)
	if err != nil {
		n.stats.malformedMeta.Add(1)
		n.mu.Lock()
		_, known := n.members[name]
		delete(n.members, name)
		delete(n.pending, name)
		n.peersOK = n.peersOK && !known
		n.mu.Unlock()
		n.log.Warn("ignoring member with malformed meta", "peer", name, "err", err)
		n.notify()
		return
	}
	if meta.ClusterID != n.cfg.ClusterID {
		n.stats.foreignMeta.Add(1)
		n.mu.Lock()
		first := !n.foreign[name]
		n.foreign[name] = true
		_, known := n.members[name]
		delete(n.members, name)
		delete(n.pending, name)
		n.peersOK = n.peersOK && !known
		n.mu.Unlock()
		if first {
			n.log.Warn("ignoring member of another cluster", "peer", name, "clusterID", meta.ClusterID)
		}
		return
	}
	meta.Name = name
	if !meta.UnderlayIP.IsValid() {
		if a, ok := netip.AddrFromSlice(node.Addr); ok {
			meta.UnderlayIP = a.Unmap()
		}
	}
	n.mu.Lock()
	_, known := n.members[name]
	if !known && n.mustProveLocked(meta) {
		_, waiting := n.pending[name]
		n.pending[name] = meta
		n.mu.Unlock()
		if !waiting {
			n.prove(name, node.Address())
		}
		return
	}
	n.admitLocked(meta, known)
}

// admitLocked records a live member's meta and unlocks mu. Caller holds mu.
func (n *Node) admitLocked(meta Meta, known bool) {
	name := meta.Name
	n.members[name] = meta
	n.peersOK = false
	delete(n.tombs, name)
	delete(n.expired, name)
	delete(n.pending, name)
	delete(n.gone, name)
	// Only a claim overlapping ours can take our lease; the claim loop
	// need not scan every member on every update (O(N) each, O(N²) while
	// a large cluster joins).
	own := n.self.PodCIDR
	rival := !own.IsValid() || meta.PodCIDR.IsValid() && meta.PodCIDR.Overlaps(own)
	n.mu.Unlock()
	if !known {
		n.log.Debug("member up", "peer", name, "block", meta.PodCIDR)
	}
	if rival {
		n.wake()
	}
	n.notify()
}

// memberDown forgets a member. A failed member's lease becomes a tombstone
// for LeaseGrace. A member that leaves cleanly has already published meta
// without a lease (see Leave), so nothing is held for it.
//
// We cannot tell "left" from "failed" by node.State here: in memberlist
// v0.7.0 the Node handed to NotifyLeave carries a State field that
// memberlist never updates (its nodeState.State shadows it).
func (n *Node) memberDown(node *memberlist.Node) {
	if node.Name == n.cfg.NodeName {
		return
	}
	name := node.Name
	now := time.Now()
	n.mu.Lock()
	meta, ok := n.members[name]
	_, unproven := n.pending[name]
	delete(n.members, name)
	delete(n.pending, name)
	delete(n.addrs, name)
	delete(n.foreign, name)
	n.markGoneLocked(name, now)
	n.peersOK = n.peersOK && !ok
	hold := ok && meta.PodCIDR.IsValid()
	if hold {
		n.tombs[name] = tombstone{claim: claimOf(meta), Expires: now.Add(n.cfg.LeaseGrace)}
	}
	// A departure cannot take our lease; it matters to the claim loop
	// only while we have none (and then the block stays held as a
	// tombstone anyway, unless the member left cleanly).
	noLease := !n.self.PodCIDR.IsValid()
	n.mu.Unlock()
	switch {
	case unproven:
		n.stats.unproven.Add(1)
		n.log.Warn("member reported alive went down before answering a ping; ignored (a replayed message, or a node that failed at once)", "peer", name)
	case hold:
		n.log.Info("member failed; lease held", "peer", name, "block", meta.PodCIDR, "grace", n.cfg.LeaseGrace)
	case ok:
		n.log.Info("member gone; it held no lease", "peer", name)
	}
	if noLease {
		n.wake()
	}
	n.notify()
}
