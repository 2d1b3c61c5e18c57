package gossip

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestClaimRace forces every node onto the same block at once: the
// earliest claim keeps it, everyone else loses, re-claims and says so.
func TestClaimRace(t *testing.T) {
	c := newTestCluster(t)
	const count = 10
	block := pfx("10.244.0.0/24")
	seeds := []string{c.net.Addr("race-00")}
	nodes := make([]*Node, count)
	for i := range nodes {
		nodes[i] = c.node(fmt.Sprintf("race-%02d", i), seeds, nil)
		nodes[i].forceClaim = block
	}
	stop := watchPeers(t, nodes)
	c.startAll(nodes)
	waitConverged(t, 20*time.Second, nodes)
	stop()

	// Who claimed the block first, by the ClaimedAt each logged.
	var claims []claim
	for _, r := range c.log.find(slog.LevelInfo, "obtained lease") {
		at, err := time.Parse("2006-01-02 15:04:05.999999999 -0700 MST", r["claimedAt"])
		if err != nil {
			t.Fatalf("parse claimedAt %q: %v", r["claimedAt"], err)
		}
		claims = append(claims, claim{Name: r["node"], CIDR: block, ClaimedAt: at})
	}
	if len(claims) != count {
		t.Fatalf("%d forced claims logged, want %d", len(claims), count)
	}
	slices.SortFunc(claims, func(a, b claim) int {
		if beats(a, b) {
			return -1
		}
		return 1
	})
	winner := claims[0].Name
	var lost uint64
	for _, n := range nodes {
		lost += n.Stats().ConflictsLost
		if n.cfg.NodeName == winner {
			if n.Lease() != block || n.Stats().ConflictsLost != 0 {
				t.Errorf("winner %s holds %s, lost %d conflicts", winner, n.Lease(), n.Stats().ConflictsLost)
			}
		} else if n.Stats().Reclaims == 0 {
			t.Errorf("loser %s never re-claimed", n.cfg.NodeName)
		}
	}
	if lost < count-1 {
		t.Errorf("%d conflicts lost in total, want at least %d", lost, count-1)
	}
	warns := c.log.find(slog.LevelWarn, "lost lease conflict; re-claiming")
	if len(warns) == 0 {
		t.Fatal("no loser logged its conflict")
	}
	for _, w := range warns {
		if w["block"] != block.String() || w["winner"] == "" || w["loser"] == "" || w["winner"] == w["loser"] {
			t.Errorf("conflict log lacks block or names: %v", w)
		}
	}
}

// TestPartitionHeal lets two halves that cannot see each other claim the
// same blocks, then heals the split: the rule picks the same winners
// everywhere and the losers move.
func TestPartitionHeal(t *testing.T) {
	c := newTestCluster(t)
	groups := map[string]int{"a0": 0, "a1": 0, "b0": 1, "b1": 1}
	c.net.Partition(true, groups)
	tiny := func(cfg *Config) {
		cfg.ClusterCIDR = pfx("10.244.0.0/22") // four blocks for four nodes
	}
	a0 := c.node("a0", nil, tiny)
	b0 := c.node("b0", nil, tiny)
	a1 := c.node("a1", []string{c.net.Addr("a0"), c.net.Addr("b0")}, tiny)
	b1 := c.node("b1", []string{c.net.Addr("b0"), c.net.Addr("a0")}, tiny)
	all := []*Node{a0, a1, b0, b1}
	for _, n := range all {
		n.startIndex = func(string) uint64 { return 0 }
	}
	c.startAll(all)
	waitConverged(t, 10*time.Second, []*Node{a0, a1})
	waitConverged(t, 10*time.Second, []*Node{b0, b1})

	// Both halves use blocks 0 and 1.
	before := map[netip.Prefix][]claim{}
	for _, n := range all {
		s := n.Self()
		before[s.PodCIDR] = append(before[s.PodCIDR], claimOf(s))
	}
	if len(before) != 2 {
		t.Fatalf("halves did not collide: %v", before)
	}
	winners := map[string]netip.Prefix{}
	for p, cs := range before {
		if len(cs) != 2 {
			t.Fatalf("block %s held by %v", p, cs)
		}
		w := cs[0]
		if beats(cs[1], cs[0]) {
			w = cs[1]
		}
		winners[w.Name] = p
	}

	stop := watchPeers(t, all)
	c.net.Partition(false, nil)
	waitConverged(t, 20*time.Second, all)
	stop()
	var lost uint64
	for _, n := range all {
		lost += n.Stats().ConflictsLost
		if p, ok := winners[n.cfg.NodeName]; ok && n.Lease() != p {
			t.Errorf("winner %s moved from %s to %s", n.cfg.NodeName, p, n.Lease())
		}
	}
	if lost < 2 {
		t.Errorf("%d conflicts lost, want at least 2", lost)
	}
}

// TestDeadNodeLease: a failed node drops out of Peers, its block stays
// reserved (also for newcomers, who learn the tombstone in push/pull)
// until LeaseGrace ends, then it can be claimed.
func TestDeadNodeLease(t *testing.T) {
	c := newTestCluster(t)
	const grace = 4 * time.Second
	withGrace := func(cfg *Config) { cfg.LeaseGrace = grace }
	seeds := []string{c.net.Addr("n0")}
	var nodes []*Node
	for i := range 4 {
		nodes = append(nodes, c.node(fmt.Sprintf("n%d", i), seeds, withGrace))
	}
	c.startAll(nodes)
	waitConverged(t, 10*time.Second, nodes)

	dead := nodes[3]
	block := dead.Lease()
	if err := dead.Shutdown(); err != nil {
		t.Fatal(err)
	}
	live := nodes[:3]
	waitConverged(t, 15*time.Second, live)
	for _, n := range live {
		if !n.reserved(block) {
			t.Fatalf("%s does not hold the dead node's block %s in reserve", n.cfg.NodeName, block)
		}
	}

	// A newcomer that never saw the dead node, steered at its block.
	idx := blockIndex(pfx("10.244.0.0/16"), block)
	fresh := c.node("fresh", seeds, withGrace)
	fresh.startIndex = func(string) uint64 { return idx }
	if got := c.start(fresh); got == block {
		t.Fatalf("newcomer claimed %s during the grace period", block)
	}

	eventually(t, grace+5*time.Second, func() bool { return !nodes[0].reserved(block) }, "tombstone did not expire")
	late := c.node("late", seeds, withGrace)
	late.startIndex = func(string) uint64 { return idx }
	if got := c.start(late); got != block {
		t.Fatalf("after the grace period the newcomer got %s, want %s", got, block)
	}
	waitConverged(t, 10*time.Second, append(slices.Clone(live), fresh, late))
}

// TestLeaveFreesLease: a clean leave frees the block at once, despite a
// long grace period.
func TestLeaveFreesLease(t *testing.T) {
	c := newTestCluster(t)
	seeds := []string{c.net.Addr("n0")}
	var nodes []*Node
	for i := range 3 {
		nodes = append(nodes, c.node(fmt.Sprintf("n%d", i), seeds, nil)) // LeaseGrace 1h
	}
	c.startAll(nodes)
	waitConverged(t, 10*time.Second, nodes)

	leaver := nodes[2]
	block := leaver.Lease()
	if err := leaver.Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, 5*time.Second, nodes[:2])
	for _, n := range nodes[:2] {
		if n.reserved(block) {
			t.Fatalf("%s still reserves %s after a clean leave", n.cfg.NodeName, block)
		}
	}
	next := c.node("next", seeds, nil)
	next.startIndex = func(string) uint64 { return blockIndex(pfx("10.244.0.0/16"), block) }
	if got := c.start(next); got != block {
		t.Fatalf("newcomer got %s, want the freed %s", got, block)
	}
}

// TestRestartKeepsLease: a node that dies and comes back with its lease
// file gets the same block and keeps its ClaimedAt.
func TestRestartKeepsLease(t *testing.T) {
	c := newTestCluster(t)
	file := filepath.Join(t.TempDir(), "lease.json")
	seeds := []string{c.net.Addr("n0")}
	n0 := c.node("n0", nil, nil)
	c.start(n0)
	withFile := func(cfg *Config) { cfg.LeaseFile = file }
	r := c.node("r", seeds, withFile)
	block := c.start(r)
	claimedAt := r.Self().ClaimedAt
	if err := r.Shutdown(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { return len(n0.Peers()) == 0 }, "n0 still sees the dead node")

	r2 := c.node("r", seeds, withFile)
	if got := c.start(r2); got != block {
		t.Fatalf("restarted with %s, want %s", got, block)
	}
	if s := r2.Self(); !s.ClaimedAt.Equal(claimedAt) {
		t.Errorf("ClaimedAt %s, want the persisted %s", s.ClaimedAt, claimedAt)
	}
	if st := r2.Stats(); st.Reclaims != 0 {
		t.Errorf("Reclaims = %d", st.Reclaims)
	}
	waitConverged(t, 10*time.Second, []*Node{n0, r2})
}

// TestPersistedLeaseTaken: a persisted block that a live node holds is
// given up for another.
func TestPersistedLeaseTaken(t *testing.T) {
	c := newTestCluster(t)
	n0 := c.node("n0", nil, nil)
	held := c.start(n0)
	file := filepath.Join(t.TempDir(), "lease.json")
	if err := writeLeaseFile(file, leaseRecord{CIDR: held, ClaimedAt: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	n1 := c.node("n1", []string{c.net.Addr("n0")}, func(cfg *Config) { cfg.LeaseFile = file })
	got := c.start(n1)
	if got == held {
		t.Fatalf("took %s, which n0 holds", got)
	}
	if n1.Stats().Reclaims != 1 {
		t.Errorf("Reclaims = %d, want 1", n1.Stats().Reclaims)
	}
	rec, err := readLeaseFile(file)
	if err != nil || rec.CIDR != got {
		t.Errorf("lease file holds %v (%v), want %s", rec.CIDR, err, got)
	}
	waitConverged(t, 10*time.Second, []*Node{n0, n1})
}

// TestStaticLeaseWins: a node with a Kubernetes-assigned block displaces
// a gossip claim on it, however old.
func TestStaticLeaseWins(t *testing.T) {
	c := newTestCluster(t)
	n0 := c.node("n0", nil, nil)
	block := c.start(n0)
	s := c.node("s", []string{c.net.Addr("n0")}, func(cfg *Config) { cfg.StaticLease = block })
	if got := c.start(s); got != block || !s.Self().Static {
		t.Fatalf("static node got %s (static %v)", got, s.Self().Static)
	}
	waitConverged(t, 10*time.Second, []*Node{n0, s})
	if n0.Lease() == block || n0.Stats().ConflictsLost != 1 {
		t.Errorf("n0 holds %s after losing %d conflicts", n0.Lease(), n0.Stats().ConflictsLost)
	}
}

// TestStaticLeaseReplacesPersisted: a node whose persisted lease differs
// from its static (Kubernetes-assigned) block takes the static block, and
// persists it.
func TestStaticLeaseReplacesPersisted(t *testing.T) {
	c := newTestCluster(t)
	file := filepath.Join(t.TempDir(), "lease.json")
	old := netip.MustParsePrefix("10.244.7.0/24")
	static := netip.MustParsePrefix("10.244.9.0/24")
	if err := writeLeaseFile(file, leaseRecord{CIDR: old, ClaimedAt: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	n := c.node("n0", nil, func(cfg *Config) { cfg.LeaseFile, cfg.StaticLease = file, static })
	if got := c.start(n); got != static || !n.Self().Static {
		t.Fatalf("got %s (static %v), want the static lease %s over the persisted %s", got, n.Self().Static, static, old)
	}
	if rec, err := readLeaseFile(file); err != nil || rec.CIDR != static {
		t.Errorf("lease file holds %v (%v), want %s", rec.CIDR, err, static)
	}
}

// TestWrongKey: a node with another key cannot join; the members count
// the packets they could not decrypt.
func TestWrongKey(t *testing.T) {
	c := newTestCluster(t)
	seeds := []string{c.net.Addr("n0")}
	n0 := c.node("n0", nil, nil)
	n1 := c.node("n1", seeds, nil)
	c.startAll([]*Node{n0, n1})
	bad := c.node("intruder", seeds, func(cfg *Config) { cfg.Key = []byte("fedcba9876543210fedcba9876543210") })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := bad.Start(ctx); err == nil {
		t.Fatal("node with the wrong key joined")
	}
	eventually(t, 5*time.Second, func() bool { return n0.Stats().DecryptFailures > 0 }, "n0 counted no decrypt failures")
	if n0.Members() != 2 || slices.Contains(names(n0.Peers()), "intruder") {
		t.Errorf("n0 sees %d members, peers %v", n0.Members(), names(n0.Peers()))
	}
	if !c.log.logged(slog.LevelWarn, "decrypt") {
		t.Error("decrypt failure not logged at warn or above")
	}
}

// TestUpdateMeta: endpoint changes reach the other nodes and wake them.
func TestUpdateMeta(t *testing.T) {
	c := newTestCluster(t)
	n0 := c.node("n0", nil, nil)
	n1 := c.node("n1", []string{c.net.Addr("n0")}, nil)
	c.startAll([]*Node{n0, n1})
	waitConverged(t, 10*time.Second, []*Node{n0, n1})
	for len(n0.Changes()) > 0 {
		<-n0.Changes()
	}
	block := n1.Lease()
	if err := n1.UpdateMeta(func(m *Meta) {
		m.PublicKey = "new-key"
		m.TunnelPort = 51999
		m.PodCIDR = pfx("10.9.9.0/24") // ignored: the lease is not the caller's
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		p := n0.Peers()
		return len(p) == 1 && p[0].PublicKey == "new-key" && p[0].TunnelPort == 51999 && p[0].PodCIDR == block
	}, "n0 did not see the new meta: %+v", n0.Peers())
	select {
	case <-n0.Changes():
	default:
		t.Error("Changes() not signalled")
	}
	if err := n1.UpdateMeta(func(m *Meta) { m.PublicKey = string(make([]byte, 400)) + string(make([]byte, 400)) }); err == nil {
		t.Error("oversized meta accepted")
	}
}

// TestStaticLeaseInFirstAlive: a static lease is in the meta memberlist
// sends from its first alive message, before Start, so the join's state
// exchange carries it to the seeds.
func TestStaticLeaseInFirstAlive(t *testing.T) {
	c := newTestCluster(t)
	block := netip.MustParsePrefix("10.244.42.0/24")
	s := c.node("s", nil, func(cfg *Config) { cfg.StaticLease = block })
	m, err := decodeMeta(delegate{s}.NodeMeta(metaMaxSize))
	if err != nil {
		t.Fatal(err)
	}
	if m.PodCIDR != block || !m.Static {
		t.Errorf("meta before Start holds %v (static %v), want %v static", m.PodCIDR, m.Static, block)
	}
}

// TestStaticLeaseStartKeepsMeta: Start with a static lease publishes the
// meta the first alive message already carried, ClaimedAt included, so the
// others see no update (an update is a reconcile on every member).
func TestStaticLeaseStartKeepsMeta(t *testing.T) {
	c := newTestCluster(t)
	block := netip.MustParsePrefix("10.244.42.0/24")
	s := c.node("s", nil, func(cfg *Config) { cfg.StaticLease = block })
	before := delegate{s}.NodeMeta(metaMaxSize)
	time.Sleep(2 * time.Millisecond) // a later clock, which a new ClaimedAt would show
	if got := c.start(s); got != block {
		t.Fatalf("lease %v, want %v", got, block)
	}
	after := delegate{s}.NodeMeta(metaMaxSize)
	if !bytes.Equal(before, after) {
		mb, _ := decodeMeta(before)
		ma, _ := decodeMeta(after)
		t.Errorf("Start changed the published meta:\nbefore %+v\nafter  %+v", mb, ma)
	}
}
