package gossip

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Node is this agent's member of the gossip cluster: it publishes the
// node's Meta, keeps the table of other members and their leases, and
// holds this node's own lease.
//
// Concurrency: memberlist calls the delegate (delegate.go) on its receive
// loop. The delegate decodes outside any lock, updates the tables under mu
// (no I/O, no memberlist calls while holding it) and pokes two buffered
// channels: kick wakes the claim loop (claim.go), which owns every change
// of our own lease, and changes tells the agent to re-read Peers/Lease.
type Node struct {
	cfg         Config
	log         *slog.Logger
	ml          *memberlist.Memberlist
	changes     chan struct{} // to the agent; buffered(1), coalesced
	kick        chan struct{} // to the claim loop; buffered(1), coalesced
	rejoinEvery time.Duration // how often missing seeds are joined again
	proofRetry  time.Duration // how often a pending member is pinged (proof.go)
	stats       counters

	// Test hooks, set before Start.
	startIndex func(name string) uint64 // first block tried when claiming; default nameHash
	forceClaim netip.Prefix             // if valid, Start takes it without looking (to force races)

	metaMu sync.Mutex // serialises UpdateMeta callers

	lifeMu  sync.Mutex // guards started and stopped
	started bool
	stopped bool
	stop    chan struct{} // closed by Leave/Shutdown
	loops   sync.WaitGroup

	own *transport // weft's transport; nil with Config.Transport

	answers    chan answer // challenges to us, to answerLoop (proof.go); buffered
	proofMu    sync.Mutex  // guards challenges
	challenges map[[nonceLen]byte]challenge

	mu             sync.Mutex // guards the fields below
	self           Meta
	selfAddr       string               // our memberlist host:port
	selfEnc        []byte               // encodeMeta(self), served to memberlist
	members        map[string]Meta      // live members of our cluster with good meta, by name
	addrs          map[string]string    // every live memberlist member (any meta) -> host:port
	tombs          map[string]tombstone // leases of failed members, by name
	pending        map[string]Meta      // members that must answer a ping before they count (proof.go)
	gone           map[string]time.Time // members that went down, by name, and when; at most goneMax
	expired        map[string]claim     // claims whose tombstone ran out here, by name; at most goneMax (proof.go)
	foreign        map[string]bool      // members of other clusters, already logged
	staticConflict string               // last static-lease conflict logged
	peers          []Meta               // Peers() result; valid while peersOK; never mutated
	peersOK        bool                 // cleared by every change of members or self
}

// Stats counts what this node dropped or fixed, and what its transport
// carried.
type Stats struct {
	MalformedMeta   uint64  // peer meta that failed to decode; the peer is ignored
	ForeignMeta     uint64  // peer meta carrying another ClusterID; the peer is ignored
	MalformedState  uint64  // push/pull lease tables that failed to decode
	DecryptFailures uint64  // packets or streams that could not be decrypted (peer with another key or none)
	ConflictsLost   uint64  // times our lease lost a conflict to another node's
	Unproven        uint64  // members reported alive that went down again before answering a ping (a replay, or a node that failed at once)
	Reclaims        uint64  // times we claimed a new block because ours was lost or taken
	Traffic         Traffic // zero with Config.Transport
}

type counters struct {
	malformedMeta, foreignMeta, malformedState atomic.Uint64
	decrypt, conflictsLost, reclaims           atomic.Uint64
	unproven                                   atomic.Uint64
}

// New validates cfg and creates the memberlist instance (listening, but not
// joined to anyone). Call Start to join and obtain a lease.
func New(cfg Config) (*Node, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "gossip", "node", cfg.NodeName),
		changes:    make(chan struct{}, 1),
		kick:       make(chan struct{}, 1),
		startIndex: nameHash,
		stop:       make(chan struct{}),
		self:       cfg.Meta,
		members:    make(map[string]Meta),
		addrs:      make(map[string]string),
		tombs:      make(map[string]tombstone),
		pending:    make(map[string]Meta),
		answers:    make(chan answer, 64),
		challenges: make(map[[nonceLen]byte]challenge),
		gone:       make(map[string]time.Time),
		expired:    make(map[string]claim),
		foreign:    make(map[string]bool),
	}
	if n.self.Boot == 0 {
		n.self.Boot = newBoot()
	}
	if cfg.StaticLease.IsValid() {
		// An externally assigned block is ours before any exchange (static
		// beats every claim), so publish it from the first alive message:
		// the join's state exchange then carries it to the seeds, instead
		// of a later update that some members hear only by gossip.
		n.self.PodCIDR, n.self.Static, n.self.ClaimedAt = cfg.StaticLease, true, time.Now().Round(0)
	}
	if n.selfEnc, err = encodeMeta(n.self); err != nil {
		return nil, fmt.Errorf("invalid gossip config: Meta: %w", err)
	}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr.String()
	mc.BindPort = cfg.BindPort
	mc.AdvertisePort = cfg.BindPort
	if cfg.AdvertiseAddr.IsValid() {
		mc.AdvertiseAddr = cfg.AdvertiseAddr.String()
	}
	if !cfg.InsecureNoEncryption {
		kr, err := memberlist.NewKeyring(nil, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("failed to create gossip keyring: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	d := delegate{n}
	mc.Delegate = d
	mc.Events = d
	mc.Logger = log.New(&logBridge{
		log:              n.log.With("source", "memberlist"),
		onDecryptFailure: func() { n.stats.decrypt.Add(1) },
	}, "", 0)
	var own *transport
	if mc.Transport = cfg.Transport; mc.Transport == nil {
		if own, err = newTransport(cfg.BindAddr, cfg.BindPort, mc.Logger); err != nil {
			return nil, fmt.Errorf("gossip transport: %w", err)
		}
		mc.Transport = own
		n.own = own
	}
	DefaultTuning(mc)
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	n.proofRetry = mc.ProbeInterval
	n.rejoinEvery = mc.PushPullInterval
	if cfg.RejoinInterval > 0 {
		n.rejoinEvery = cfg.RejoinInterval
	}
	if n.rejoinEvery <= 0 {
		n.rejoinEvery = 30 * time.Second
	}
	if n.ml, err = memberlist.Create(mc); err != nil {
		if own != nil {
			own.Shutdown()
		}
		return nil, fmt.Errorf("failed to create memberlist for %q: %w", cfg.NodeName, err)
	}
	n.loops.Add(1)
	go n.answerLoop()
	return n, nil
}

// Lease returns the current lease; it is invalid before Start and while no
// block is free, and it changes if this node loses a conflict.
func (n *Node) Lease() netip.Prefix {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.self.PodCIDR
}

// Self returns a copy of the Meta this node publishes.
func (n *Node) Self() Meta {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.self.clone()
}

// Peers returns the live members other than self, of the same ClusterID,
// whose valid lease wins every conflict with another live member (self
// included), sorted by name. No two returned blocks overlap.
//
// The table is recomputed (O(N log N)) only after a change of the members
// or of our own lease; otherwise a call costs one copy.
func (n *Node) Peers() []Meta {
	n.mu.Lock()
	if !n.peersOK {
		n.peers, n.peersOK = n.computePeersLocked(), true
	}
	ps := n.peers
	n.mu.Unlock()
	out := make([]Meta, len(ps))
	for i, m := range ps {
		out[i] = m.clone()
	}
	return out
}

// computePeersLocked builds the Peers table. Caller holds mu.
func (n *Node) computePeersLocked() []Meta {
	cs := make([]claim, 0, len(n.members)+1)
	cs = append(cs, claimOf(n.self))
	for _, m := range n.members {
		cs = append(cs, claimOf(m))
	}
	lost := losers(cs)
	out := make([]Meta, 0, len(n.members))
	for name, m := range n.members {
		if m.PodCIDR.IsValid() && !lost[name] {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Meta) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Changes is signalled (buffered, coalesced) when Peers or Lease may have
// changed. It is never closed.
func (n *Node) Changes() <-chan struct{} { return n.changes }

// Members returns the number of live memberlist members, self included.
func (n *Node) Members() int { return n.ml.NumMembers() }

// Stats returns a snapshot of the counters.
func (n *Node) Stats() Stats {
	var tr Traffic
	if n.own != nil {
		tr = n.own.traffic.snapshot()
	}
	return Stats{
		Traffic:         tr,
		MalformedMeta:   n.stats.malformedMeta.Load(),
		ForeignMeta:     n.stats.foreignMeta.Load(),
		MalformedState:  n.stats.malformedState.Load(),
		DecryptFailures: n.stats.decrypt.Load(),
		ConflictsLost:   n.stats.conflictsLost.Load(),
		Reclaims:        n.stats.reclaims.Load(),
		Unproven:        n.stats.unproven.Load(),
	}
}

// UpdateMeta changes the endpoint fields (UnderlayIP, TunnelPort,
// PublicKey, VTEPMAC) and gossips them. f runs on a copy without locks
// held; changes it makes to Name, ClusterID, Boot or the lease are ignored.
func (n *Node) UpdateMeta(f func(*Meta)) error {
	n.metaMu.Lock()
	defer n.metaMu.Unlock()
	m := n.Self()
	f(&m)
	m = m.clone()

	n.mu.Lock()
	m.Name, m.ClusterID, m.Boot = n.self.Name, n.self.ClusterID, n.self.Boot
	m.PodCIDR, m.ClaimedAt, m.Static = n.self.PodCIDR, n.self.ClaimedAt, n.self.Static
	err := n.setSelfLocked(m)
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("failed to update gossip meta: %w", err)
	}
	n.broadcastMeta()
	return nil
}

// newBoot returns a random, non-zero Meta.Boot for a new run of the agent.
func newBoot() uint32 {
	for {
		if b := rand.Uint32(); b != 0 {
			return b
		}
	}
}

// setSelfLocked replaces our Meta and its encoding. Caller holds mu.
func (n *Node) setSelfLocked(m Meta) error {
	enc, err := encodeMeta(m)
	if err != nil {
		return err
	}
	n.self, n.selfEnc = m, enc
	n.peersOK = false
	return nil
}

// broadcastMeta announces our current Meta: it queues memberlist's alive
// message and pushes our state to a few random members at once.
//
// The queue alone is too slow right after a join. A joiner learns the
// whole cluster from its seeds' state, and memberlist re-broadcasts an
// alive message for every member it learns that way, so the joiner's queue
// holds one message per member, each with retransmits to spare, and our
// own update waits its turn among them: 2.5–3.5 s at 1,000 members in the
// simulated benchmark, against a 2 s target. A full state exchange
// (memberlist's Join with a live member, which changes nothing else) puts
// the update straight into members whose queues are idle, and they gossip
// it on at once.
func (n *Node) broadcastMeta() {
	n.lifeMu.Lock()
	stopped := n.stopped
	n.lifeMu.Unlock()
	if stopped {
		return
	}
	// Queue the update without waiting for it to drain; the push below
	// does not depend on the queue.
	if err := n.ml.UpdateNode(time.Millisecond); err != nil {
		n.log.Debug("meta update queued for broadcast", "err", err)
	}
	if peers := n.randomMembers(announcePushes); len(peers) > 0 {
		if _, err := n.ml.Join(peers); err != nil {
			n.log.Debug("meta push to random members failed; the broadcast queue still carries it", "peers", peers, "err", err)
		}
	}
	n.notify()
}

// announcePushes is how many random members a meta update is pushed to by
// full state exchange (see broadcastMeta).
const announcePushes = 2

// randomMembers returns up to k addresses of live members other than us,
// chosen at random.
func (n *Node) randomMembers(k int) []string {
	n.mu.Lock()
	all := make([]string, 0, len(n.addrs))
	for name, a := range n.addrs {
		if name != n.cfg.NodeName {
			all = append(all, a)
		}
	}
	n.mu.Unlock()
	rand.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:min(k, len(all))]
}

func (n *Node) notify() {
	select {
	case n.changes <- struct{}{}:
	default:
	}
}

func (n *Node) wake() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Leave announces a clean departure, which frees our lease on the other
// nodes at once, then shuts down. It first publishes meta without a lease
// (so the others hold no tombstone for it), then leaves memberlist; each
// step waits up to timeout for its broadcast. The lease file is kept, so a
// restart reuses the block if it is still free.
func (n *Node) Leave(timeout time.Duration) error {
	if !n.halt() {
		return nil
	}
	var errs []error
	n.mu.Lock()
	released := n.self.clone()
	block := released.PodCIDR
	released.PodCIDR, released.ClaimedAt, released.Static = netip.Prefix{}, time.Time{}, false
	err := n.setSelfLocked(released)
	n.mu.Unlock()
	if err == nil && block.IsValid() {
		if err := n.ml.UpdateNode(timeout); err != nil {
			errs = append(errs, fmt.Errorf("failed to announce release of %s: %w", block, err))
		}
	}
	if err := n.ml.Leave(timeout); err != nil {
		errs = append(errs, fmt.Errorf("failed to announce leave: %w", err))
	}
	if err := n.ml.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("failed to shut down memberlist: %w", err))
	}
	n.log.Info("left gossip cluster")
	return errors.Join(errs...)
}

// Shutdown stops at once without telling anyone; the others will detect
// the failure and hold our lease for LeaseGrace.
func (n *Node) Shutdown() error {
	if !n.halt() {
		return nil
	}
	if err := n.ml.Shutdown(); err != nil {
		return fmt.Errorf("failed to shut down memberlist: %w", err)
	}
	return nil
}

// halt stops the background loops; false if already stopped.
func (n *Node) halt() bool {
	n.lifeMu.Lock()
	if n.stopped {
		n.lifeMu.Unlock()
		return false
	}
	n.stopped = true
	close(n.stop)
	n.lifeMu.Unlock()
	n.loops.Wait()
	return true
}
