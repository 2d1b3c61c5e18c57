package gossip

// Proof of life for members that a replay could bring back.
//
// memberlist's encryption (AES-GCM with the shared key) has no replay
// protection, so anyone on the path can capture gossip and send it again,
// from any address. While memberlist knows a member, that changes nothing:
// it ignores an alive message whose incarnation is not newer than the one
// it holds, and an address change of a member that is not dead
// (DeadNodeReclaimTime is 0). But memberlist forgets a dead member after
// GossipToTheDeadTime, and then a replayed alive message of it reads as a
// new member: its old meta, with its old lease, whose earlier ClaimedAt
// beats the node that holds the block now. The holder loses it, every node
// routes it to an endpoint nobody answers at, and once memberlist declares
// the ghost dead again its block is held as a tombstone for LeaseGrace.
//
// A replay cannot answer a challenge: a random nonce, sent to the address
// inside the alive message (not to the sender of the packet) and naming
// the member, which the member sends back encrypted with its name. (A
// memberlist ping is not enough: its ack carries only a sequence number,
// which counts up from 0 in every run, so a replayed old ack answers a new
// node's first pings.) So a member reported alive counts (enters members,
// Peers, the claim rules) only after it has answered a challenge, if a
// replay could be what brought it:
//
//   - we saw it go down (gone), or hold a tombstone of its lease: the two
//     ways a node has of knowing the name had an earlier life;
//   - its lease overlaps a live one (ours or a member's): the case where
//     an old claim does harm, and the only one a node that restarted and
//     knows no history can recognise.
//
// A new member with a free block, the case of every join at scale, counts
// at once. A real node that restarted or comes back from a partition
// answers within one round trip. One that does not is left out until
// memberlist declares it dead, and then forgotten without a tombstone.
//
// Tombstones travel in push/pull streams, which a replay can send again
// too: a tombstone of a claim whose grace has already run out on this node
// is not taken back (expired), so a replay cannot pin a freed block for
// another grace. A node that restarted has no such memory, and takes a
// replayed tombstone once, for at most its grace: it holds a free block
// from new claims, never takes one from a live holder.
//
// Challenges and answers are memberlist user messages (UDP, encrypted):
//
//	version(1) kind(1) nonce(16) len name [len replyAddr]  -- replyAddr in challenges only

import (
	crand "crypto/rand"
	"time"

	"github.com/hashicorp/memberlist"
)

// goneMax bounds how many departed names a node remembers.
const goneMax = 4096

// mustProveLocked reports whether m, reported alive and not yet a member,
// must answer a ping before it counts. Caller holds mu.
func (n *Node) mustProveLocked(m Meta) bool {
	if _, ok := n.gone[m.Name]; ok {
		return true
	}
	if _, ok := n.tombs[m.Name]; ok {
		return true
	}
	if !m.PodCIDR.IsValid() {
		return false
	}
	if n.self.PodCIDR.IsValid() && n.self.PodCIDR.Overlaps(m.PodCIDR) {
		return true
	}
	for name, o := range n.members {
		if name != m.Name && o.PodCIDR.IsValid() && o.PodCIDR.Overlaps(m.PodCIDR) {
			return true
		}
	}
	return false
}

// markGoneLocked remembers that name went down at now, forgetting the
// oldest name beyond goneMax. Caller holds mu.
func (n *Node) markGoneLocked(name string, now time.Time) {
	n.gone[name] = now
	if len(n.gone) <= goneMax {
		return
	}
	oldest, at := "", now
	for k, t := range n.gone {
		if t.Before(at) {
			oldest, at = k, t
		}
	}
	delete(n.gone, oldest)
}

const (
	proofVersion   byte = 1
	proofChallenge byte = 1
	proofAnswer    byte = 2
	nonceLen            = 16
)

// challenge is one outstanding proof of life.
type challenge struct {
	name string
	done chan struct{} // closed by the answer
}

// answer is a challenge we received for ourselves, to be answered.
type answer struct {
	nonce [nonceLen]byte
	to    string // host:port
}

func encodeProof(kind byte, nonce [nonceLen]byte, name, reply string) []byte {
	b := append([]byte{proofVersion, kind}, nonce[:]...)
	b = appendString(b, name)
	if kind == proofChallenge {
		b = appendString(b, reply)
	}
	return b
}

func decodeProof(b []byte) (kind byte, nonce [nonceLen]byte, name, reply string, ok bool) {
	r := metaReader{b: b}
	if r.byte() != proofVersion {
		return 0, nonce, "", "", false
	}
	kind = r.byte()
	copy(nonce[:], r.take(nonceLen))
	name = string(r.bytes())
	if kind == proofChallenge {
		reply = string(r.bytes())
	}
	if r.err != nil || r.off != len(b) || (kind != proofChallenge && kind != proofAnswer) {
		return 0, nonce, "", "", false
	}
	return kind, nonce, name, reply, true
}

// handleProof takes a challenge or answer from memberlist's receive loop.
// It does not block: a challenge to us is queued for answerLoop (dropped
// if the queue is full; the challenger asks again), an answer closes its
// challenge.
func (n *Node) handleProof(b []byte) {
	kind, nonce, name, reply, ok := decodeProof(b)
	if !ok {
		return
	}
	switch kind {
	case proofChallenge:
		if name != n.cfg.NodeName || reply == "" {
			return
		}
		select {
		case n.answers <- answer{nonce: nonce, to: reply}:
		default:
		}
	case proofAnswer:
		n.proofMu.Lock()
		c, ok := n.challenges[nonce]
		if ok && c.name == name {
			delete(n.challenges, nonce)
			close(c.done)
		}
		n.proofMu.Unlock()
	}
}

// answerLoop sends the answers to challenges for us.
func (n *Node) answerLoop() {
	defer n.loops.Done()
	for {
		select {
		case <-n.stop:
			return
		case a := <-n.answers:
			msg := encodeProof(proofAnswer, a.nonce, n.cfg.NodeName, "")
			if err := n.ml.SendToAddress(memberlist.Address{Addr: a.to}, msg); err != nil {
				n.log.Debug("failed to answer a challenge", "to", a.to, "err", err)
			}
		}
	}
}

// expireLocked drops the expired tombstone t of name and remembers its
// claim. Caller holds mu.
func (n *Node) expireLocked(name string, t tombstone) {
	delete(n.tombs, name)
	n.expired[name] = t.claim
	if len(n.expired) > goneMax {
		for k := range n.expired { // any one: a bound, not an order
			if k != name {
				delete(n.expired, k)
				break
			}
		}
	}
}

func sameClaim(a, b claim) bool {
	return a.Name == b.Name && a.CIDR == b.CIDR && a.ClaimedAt.Equal(b.ClaimedAt) && a.Static == b.Static
}

// prove challenges a pending member at addr (host:port) until it answers,
// then admits it with the meta it has published by then; it gives up when
// the member is no longer pending (memberlist declared it dead) or the
// node stops.
func (n *Node) prove(name, addr string) {
	n.lifeMu.Lock()
	if n.stopped {
		n.lifeMu.Unlock()
		return
	}
	n.loops.Add(1)
	n.lifeMu.Unlock()
	go func() {
		defer n.loops.Done()
		start := time.Now()
		for attempt := 1; ; attempt++ {
			var nonce [nonceLen]byte
			_, _ = crand.Read(nonce[:])
			c := challenge{name: name, done: make(chan struct{})}
			n.proofMu.Lock()
			n.challenges[nonce] = c
			n.proofMu.Unlock()
			n.mu.Lock()
			reply := n.selfAddr
			n.mu.Unlock()
			if err := n.ml.SendToAddress(memberlist.Address{Addr: addr, Name: name}, encodeProof(proofChallenge, nonce, name, reply)); err != nil {
				n.log.Debug("failed to send a challenge", "peer", name, "addr", addr, "err", err)
			}
			answered := false
			select {
			case <-n.stop:
			case <-c.done:
				answered = true
			case <-time.After(n.proofRetry):
			}
			n.proofMu.Lock()
			delete(n.challenges, nonce)
			n.proofMu.Unlock()
			n.mu.Lock()
			meta, still := n.pending[name]
			if !still {
				n.mu.Unlock()
				return
			}
			if answered {
				n.admitLocked(meta, false)
				n.log.Debug("member answered its challenge; counted", "peer", name, "after", time.Since(start), "attempts", attempt)
				return
			}
			n.mu.Unlock()
			select {
			case <-n.stop:
				return
			default:
			}
		}
	}()
}
