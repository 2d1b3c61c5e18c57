//go:build linux

package gossip

// The gossip scale benchmark: N members of weft's real gossip layer (New,
// Start, the lease logic, encryption, DefaultTuning) in one process on
// the in-memory transport (memnet_test.go), which counts every byte sent.
//
//	go test -run '^$' -bench GossipScale -benchtime 1x ./gossip/
//	go test -run '^$' -bench 'GossipScale/1000$' -benchtime 1x ./gossip/
//	go test -run '^$' -bench GossipScale -benchtime 1x ./gossip/ -args -members 5000 -rest 30s
//
// Phases, each printed as a readable line and reported as metrics:
//
//	setup  start N members (3 seeds, bounded parallelism) until every
//	       member's Peers() holds the N-1 others; heap, RSS, goroutines
//	rest   bytes sent per member per second over -rest, nothing changing
//	lease  a new node joins and claims; time until 99% / 100% of the
//	       members' Peers() hold its lease (from the call to Start)
//	dead   a member stops without leaving; time until 99% / 100% of the
//	       others' Peers() no longer hold it
//	churn  10% of the members stop and start again (-restart later);
//	       bytes per member per second until everyone converged again
//
// Every member shares the machine's GOMAXPROCS cores with all the others,
// so the timings include CPU starvation that a real cluster (one member
// per machine) does not have; each phase prints the cores it used, and a
// phase that used nearly all of them is starved.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

var (
	scaleMembers  = flag.String("members", "100,1000", "GossipScale: comma-separated cluster sizes")
	scaleRest     = flag.Duration("rest", 20*time.Second, "GossipScale: how long to measure traffic at rest")
	scaleSamples  = flag.Int("samples", 3, "GossipScale: joins and deaths measured per size")
	scaleRestart  = flag.Duration("restart", 2*time.Second, "GossipScale: downtime of a churned member")
	scaleTuning   = flag.String("tuning", "weft", "GossipScale: weft (DefaultTuning) or lan (memberlist.DefaultLANConfig)")
	scaleParallel = flag.Int("parallel", 64, "GossipScale: members started at once during setup")
)

func BenchmarkGossipScale(b *testing.B) {
	for _, f := range strings.Split(*scaleMembers, ",") {
		size, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || size < 4 {
			b.Fatalf("-members: bad size %q", f)
		}
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			for range b.N {
				s := runScale(b, scaleOpts{
					members: size, rest: *scaleRest, samples: *scaleSamples,
					restart: *scaleRestart, tuning: *scaleTuning, parallel: *scaleParallel,
					print: func(format string, args ...any) { fmt.Printf(format+"\n", args...) },
				})
				s.report(b)
			}
		})
	}
}

// TestScaleHarness runs the benchmark's phases on a small cluster so the
// harness cannot rot; it asserts only that every phase converged.
func TestScaleHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	s := runScale(t, scaleOpts{
		members: 12, rest: time.Second, samples: 1, restart: 200 * time.Millisecond,
		tuning: "weft", parallel: 6, print: t.Logf,
	})
	if s.leaseP100 <= 0 || s.deadP100 <= 0 || s.churnSeconds <= 0 || s.restBytes <= 0 {
		t.Fatalf("a phase measured nothing: %+v", s)
	}
}

type scaleOpts struct {
	members, samples, parallel int
	rest, restart              time.Duration
	tuning                     string
	print                      func(format string, args ...any)
}

// scaleResult holds the figures of one run; times in seconds, traffic in
// bits per member per second.
type scaleResult struct {
	setupSeconds, heapMiB, rssMiB, goroutines float64
	restBits, restBytes, restCores, restCPUms float64
	leaseP99, leaseP100, deadP99, deadP100    float64
	churnBits, churnSeconds, churnCores       float64
	falseDeaths, settleSeconds                float64
}

func (s scaleResult) report(b *testing.B) {
	for _, m := range []struct {
		v    float64
		unit string
	}{
		{s.leaseP99, "lease-p99-s"}, {s.leaseP100, "lease-p100-s"},
		{s.deadP99, "dead-p99-s"}, {s.deadP100, "dead-p100-s"},
		{s.restBits, "rest-bit/s/member"}, {s.churnBits, "churn-bit/s/member"},
		{s.churnSeconds, "churn-converge-s"}, {s.restCores, "rest-cores"},
		{s.restCPUms, "rest-cpu-ms/s/member"}, {s.heapMiB, "heap-MiB"}, {s.rssMiB, "rss-MiB"},
		{s.goroutines, "goroutines"}, {s.setupSeconds, "setup-s"}, {s.falseDeaths, "false-deaths"},
		{s.settleSeconds, "settle-s"},
	} {
		b.ReportMetric(m.v, m.unit)
	}
	b.ReportMetric(0, "ns/op") // wall time of the whole run means nothing
}

// eventCounter is a slog handler that counts records by message.
type eventCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *eventCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *eventCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.n[r.Message]++
	c.mu.Unlock()
	return nil
}
func (c *eventCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *eventCounter) WithGroup(string) slog.Handler      { return c }
func (c *eventCounter) count(msg string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[msg]
}

// Messages the lease logic logs when a member with / without a lease is
// declared failed (delegate.go).
const (
	msgFailedLease   = "member failed; lease held"
	msgFailedNoLease = "member gone; it held no lease"
)

// peerLease is Peers() for one name without copying the table: what
// Peers() would say about name now.
func (n *Node) peerLease(name string) (netip.Prefix, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.peersOK {
		n.peers, n.peersOK = n.computePeersLocked(), true
	}
	i, ok := slices.BinarySearchFunc(n.peers, name, func(m Meta, s string) int { return strings.Compare(m.Name, s) })
	if !ok {
		return netip.Prefix{}, false
	}
	return n.peers[i].PodCIDR, true
}

func (n *Node) peerCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.peersOK {
		n.peers, n.peersOK = n.computePeersLocked(), true
	}
	return len(n.peers)
}

// lanTune restores memberlist's LAN timings over DefaultTuning.
func lanTune(mc *memberlist.Config) {
	d := memberlist.DefaultLANConfig()
	mc.ProbeInterval, mc.ProbeTimeout = d.ProbeInterval, d.ProbeTimeout
	mc.SuspicionMult, mc.SuspicionMaxTimeoutMult = d.SuspicionMult, d.SuspicionMaxTimeoutMult
	mc.GossipInterval, mc.GossipNodes, mc.RetransmitMult = d.GossipInterval, d.GossipNodes, d.RetransmitMult
	mc.PushPullInterval, mc.GossipToTheDeadTime = d.PushPullInterval, d.GossipToTheDeadTime
}

type scaleCluster struct {
	tb     testing.TB
	opts   scaleOpts
	net    *memNet
	events *eventCounter
	seeds  []string
	nodes  map[string]*Node
	mu     sync.Mutex
}

func (c *scaleCluster) newNode(name string) *Node {
	seeds := c.seeds
	if len(c.nodes) == 0 {
		seeds = nil // the first member starts the cluster
	}
	var tune func(*memberlist.Config)
	if c.opts.tuning == "lan" {
		tune = lanTune
	}
	n, err := New(Config{
		NodeName:    name,
		ClusterID:   "scale",
		Key:         testKey,
		Seeds:       seeds,
		ClusterCIDR: netip.MustParsePrefix("10.0.0.0/8"),
		BlockBits:   24,
		LeaseGrace:  time.Hour,
		Meta: Meta{
			UnderlayIP: netip.MustParseAddr("192.0.2.1"), TunnelPort: 51820,
			PublicKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", // a WireGuard key's length
		},
		Transport: c.net.NewTransport(name),
		Tune:      tune,
		Logger:    slog.New(c.events),
	})
	if err != nil {
		c.tb.Fatalf("New(%s): %v", name, err)
	}
	c.mu.Lock()
	c.nodes[name] = n
	c.mu.Unlock()
	return n
}

// startMany starts the named members, at most parallel at once.
func (c *scaleCluster) startMany(names []string, parallel int) {
	sem := make(chan struct{}, parallel)
	errs := make(chan error, len(names))
	for _, name := range names {
		n := c.newNode(name)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, err := n.Start(ctx)
			if err != nil {
				err = fmt.Errorf("Start(%s): %w", name, err)
			}
			errs <- err
		}()
	}
	for range names {
		if err := <-errs; err != nil {
			c.tb.Fatal(err)
		}
	}
}

func (c *scaleCluster) live() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	return out
}

// waitFull waits until every live member's Peers() holds all the others
// and memberlist counts them all.
func (c *scaleCluster) waitFull(d time.Duration) bool {
	deadline := time.Now().Add(d)
	lastReport := time.Now()
	for {
		nodes := c.live()
		ok := true
		for _, n := range nodes {
			if n.peerCount() != len(nodes)-1 || n.Members() != len(nodes) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			c.opts.print("not converged: %s", c.lagging(nodes))
			return false
		}
		if time.Since(lastReport) > 10*time.Second {
			lastReport = time.Now()
			c.opts.print("converging: %s", c.lagging(nodes))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lagging describes the members whose view is incomplete.
func (c *scaleCluster) lagging(nodes []*Node) string {
	var behind []string
	missing := map[string]int{}
	for _, n := range nodes {
		if n.peerCount() == len(nodes)-1 && n.Members() == len(nodes) {
			continue
		}
		behind = append(behind, fmt.Sprintf("%s(peers %d, members %d)", n.cfg.NodeName, n.peerCount(), n.Members()))
		for _, m := range nodes {
			if m == n {
				continue
			}
			if _, ok := n.peerLease(m.cfg.NodeName); !ok {
				missing[m.cfg.NodeName]++
			}
		}
	}
	var detail []string
	for _, n := range nodes {
		if n.peerCount() == len(nodes)-1 {
			continue
		}
		for _, m := range nodes {
			if _, ok := n.peerLease(m.cfg.NodeName); ok || m == n {
				continue
			}
			n.mu.Lock()
			meta, ok := n.members[m.cfg.NodeName]
			self := n.self
			n.mu.Unlock()
			var mlMeta Meta
			for _, x := range n.ml.Members() {
				if x.Name == m.cfg.NodeName {
					mlMeta, _ = decodeMeta(x.Meta)
				}
			}
			detail = append(detail, fmt.Sprintf("%s holds %s: %v %s; memberlist has %s (self %s %v)", n.cfg.NodeName, m.cfg.NodeName, ok, meta.PodCIDR, mlMeta.PodCIDR, self.PodCIDR, self.ClaimedAt))
		}
		break
	}
	var miss []string
	for name, k := range missing {
		miss = append(miss, fmt.Sprintf("%s(lease %s) unseen by %d", name, c.nodes[name].Lease(), k))
	}
	slices.Sort(miss)
	return fmt.Sprintf("%d of %d members incomplete, e.g. %v; missing: %v; %v", len(behind), len(nodes), behind[:min(3, len(behind))], miss[:min(5, len(miss))], detail[:min(2, len(detail))])
}

// arrivals polls cond on each node until it holds for all of them or d
// passes, and returns when it first held for each (sorted) and how many
// never saw it.
func arrivals(t0 time.Time, nodes []*Node, d time.Duration, cond func(*Node) bool) ([]time.Duration, int) {
	pending := slices.Clone(nodes)
	var got []time.Duration
	for len(pending) > 0 && time.Since(t0) < d {
		now := time.Since(t0)
		pending = slices.DeleteFunc(pending, func(n *Node) bool {
			if cond(n) {
				got = append(got, now)
				return true
			}
			return false
		})
		time.Sleep(5 * time.Millisecond)
	}
	slices.Sort(got)
	return got, len(pending)
}

// quantile returns the time by which q of total had arrived (-1 if never).
func quantile(got []time.Duration, total int, q float64) float64 {
	k := int(float64(total)*q + 0.999999)
	if k < 1 {
		k = 1
	}
	if k > len(got) {
		return -1
	}
	return got[k-1].Seconds()
}

type usage struct {
	wall  time.Time
	cpu   time.Duration
	bytes netBytes
}

func (c *scaleCluster) usage() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return usage{wall: time.Now(), cpu: cpu, bytes: c.net.Bytes()}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func rssMiB() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range bytes.Split(b, []byte("\n")) {
		if f := strings.Fields(string(line)); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func runScale(tb testing.TB, o scaleOpts) scaleResult {
	var s scaleResult
	N := o.members
	c := &scaleCluster{tb: tb, opts: o, net: newMemNet(), events: &eventCounter{n: map[string]int{}}, nodes: map[string]*Node{}}
	defer func() {
		for _, n := range c.live() {
			_ = n.Shutdown()
		}
	}()
	name := func(i int) string { return fmt.Sprintf("node-%05d", i) }
	for i := range 3 {
		c.seeds = append(c.seeds, c.net.Addr(name(i)))
	}
	o.print("gossip scale: %d members, tuning %s, GOMAXPROCS %d, NumCPU %d, load %s",
		N, o.tuning, runtime.GOMAXPROCS(0), runtime.NumCPU(), loadavg())

	// Setup.
	t0 := time.Now()
	c.startMany([]string{name(0)}, 1)
	rest := make([]string, 0, N-1)
	for i := 1; i < N; i++ {
		rest = append(rest, name(i))
	}
	c.startMany(rest, o.parallel)
	started := time.Since(t0)
	if !c.waitFull(5 * time.Minute) {
		tb.Fatalf("%d members did not converge within 5m of starting", N)
	}
	s.setupSeconds = time.Since(t0).Seconds()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.heapMiB = float64(ms.HeapInuse) / (1 << 20)
	s.rssMiB = rssMiB()
	s.goroutines = float64(runtime.NumGoroutine())
	o.print("setup: %d members started in %.1fs, converged in %.1fs; heap %.0f MiB (%.0f KiB/member), RSS %.0f MiB, %d goroutines (%.1f/member)",
		N, started.Seconds(), s.setupSeconds, s.heapMiB, s.heapMiB*1024/float64(N), s.rssMiB, int(s.goroutines), s.goroutines/float64(N))

	// Let the start-up broadcasts drain before measuring rest: a member
	// that joins re-broadcasts an alive message for every member it
	// learnt in the join's state exchange, so N members starting at once
	// keep every queue busy for a while. At rest a member sends only its
	// probes and their acks (about 2 per probe interval: 4 packets/s with
	// weft's 500 ms); gossip sends nothing with an empty queue. Rest
	// begins after a 5 s window with under 6 packets/s per member.
	settle0 := time.Now()
	prev := c.usage()
	var pktRate, bitRate float64
	for time.Since(settle0) < 30*time.Minute {
		time.Sleep(5 * time.Second)
		u := c.usage()
		d, wall := u.bytes.sub(prev.bytes), u.wall.Sub(prev.wall).Seconds()
		prev = u
		pktRate = float64(d.Packets) / float64(N) / wall
		bitRate = 8 * float64(d.total()) / float64(N) / wall
		if pktRate < 6 {
			break
		}
	}
	s.settleSeconds = time.Since(settle0).Seconds()
	o.print("settle: start-up gossip drained after %.0fs (last 5 s: %.1f packets/s, %.0f bit/s per member)", s.settleSeconds, pktRate, bitRate)

	// Rest.
	deaths0 := c.events.count(msgFailedLease) + c.events.count(msgFailedNoLease)
	u0 := c.usage()
	time.Sleep(o.rest)
	u1 := c.usage()
	wall := u1.wall.Sub(u0.wall).Seconds()
	d := u1.bytes.sub(u0.bytes)
	s.restBytes = float64(d.total()) / float64(N) / wall
	s.restBits = 8 * s.restBytes
	s.restCores = (u1.cpu - u0.cpu).Seconds() / wall
	s.restCPUms = 1000 * s.restCores / float64(N)
	falseRest := c.events.count(msgFailedLease) + c.events.count(msgFailedNoLease) - deaths0
	o.print("rest: %.0f bit/s per member (%.0f B/s: packets %.0f B/s in %.1f pkt/s, push/pull streams %.0f B/s in %.3f/s), dropped %d packets; CPU %.2f cores (%.2f ms/s per member); false deaths %d; %.0fs, load %s",
		s.restBits, s.restBytes, float64(d.Packet)/float64(N)/wall, float64(d.Packets)/float64(N)/wall,
		float64(d.Stream)/float64(N)/wall, float64(d.Streams)/float64(N)/wall, d.Dropped,
		s.restCores, s.restCPUms, falseRest, wall, loadavg())

	// New lease.
	for k := range o.samples {
		others := c.live()
		n := c.newNode(fmt.Sprintf("new-%d", k))
		t0 := time.Now()
		startErr := make(chan error, 1)
		var lease atomic.Value
		var startTook time.Duration
		go func() {
			p, err := n.Start(context.Background())
			startTook = time.Since(t0)
			lease.Store(p)
			startErr <- err
		}()
		got, missing := arrivals(t0, others, 60*time.Second, func(m *Node) bool {
			p, ok := m.peerLease(n.cfg.NodeName)
			return ok && p.IsValid()
		})
		if err := <-startErr; err != nil {
			tb.Fatalf("Start(%s): %v", n.cfg.NodeName, err)
		}
		p99, p100 := quantile(got, len(others), 0.99), quantile(got, len(others), 1)
		if missing > 0 {
			p100 = -1
		}
		o.print("lease %d: %s claimed %v; in 99%% of %d members' Peers after %.2fs, in 100%% after %.2fs (Start returned after %.2fs; %d never); load %s",
			k, n.cfg.NodeName, lease.Load(), len(others), p99, p100, startTook.Seconds(), missing, loadavg())
		s.leaseP99, s.leaseP100 = worst(s.leaseP99, p99), worst(s.leaseP100, p100)
		time.Sleep(time.Second)
	}

	// Dead member.
	deathsBefore := c.events.count(msgFailedLease) + c.events.count(msgFailedNoLease)
	expected := 0 // each remaining member logs each victim's death once
	for k := range o.samples {
		all := c.live()
		var victim *Node
		for _, n := range all {
			if !slices.Contains(c.seeds, c.net.Addr(n.cfg.NodeName)) && !strings.HasPrefix(n.cfg.NodeName, "new-") {
				victim = n
				break
			}
		}
		others := slices.DeleteFunc(slices.Clone(all), func(n *Node) bool { return n == victim })
		c.mu.Lock()
		delete(c.nodes, victim.cfg.NodeName)
		c.mu.Unlock()
		t0 := time.Now()
		_ = victim.Shutdown()
		expected += len(others)
		got, missing := arrivals(t0, others, 2*time.Minute, func(m *Node) bool {
			_, ok := m.peerLease(victim.cfg.NodeName)
			return !ok
		})
		p99, p100 := quantile(got, len(others), 0.99), quantile(got, len(others), 1)
		if missing > 0 {
			p100 = -1
		}
		o.print("dead %d: %s withdrawn from 99%% of %d members' Peers after %.2fs, from 100%% after %.2fs (%d never); load %s",
			k, victim.cfg.NodeName, len(others), p99, p100, missing, loadavg())
		s.deadP99, s.deadP100 = worst(s.deadP99, p99), worst(s.deadP100, p100)
		time.Sleep(time.Second)
	}
	// Every live member logs each victim's death once; more is a live
	// member wrongly declared dead (and then refuting).
	deaths := c.events.count(msgFailedLease) + c.events.count(msgFailedNoLease) - deathsBefore
	s.falseDeaths = float64(falseRest + max(0, deaths-expected))

	// Churn: 10% stop without leaving and start again o.restart later.
	var churn []string
	for _, n := range c.live() {
		if len(churn) >= max(1, N/10) {
			break
		}
		if !slices.Contains(c.seeds, c.net.Addr(n.cfg.NodeName)) {
			churn = append(churn, n.cfg.NodeName)
		}
	}
	o.print("churning %v", churn)
	u0 = c.usage()
	for _, nm := range churn {
		c.mu.Lock()
		n := c.nodes[nm]
		delete(c.nodes, nm)
		c.mu.Unlock()
		_ = n.Shutdown()
	}
	time.Sleep(o.restart)
	c.startMany(churn, o.parallel)
	if !c.waitFull(5 * time.Minute) {
		tb.Fatalf("churn: %d members did not converge within 5m", N)
	}
	u1 = c.usage()
	wall = u1.wall.Sub(u0.wall).Seconds()
	d = u1.bytes.sub(u0.bytes)
	members := float64(len(c.live()))
	s.churnSeconds = wall
	s.churnBits = 8 * float64(d.total()) / members / wall
	s.churnCores = (u1.cpu - u0.cpu).Seconds() / wall
	o.print("churn: %d members stopped, restarted %s later; all converged after %.1fs; %.0f bit/s per member (packets %.0f B/s, streams %.0f B/s), dropped %d packets; CPU %.2f cores; load %s",
		len(churn), o.restart, wall, s.churnBits, float64(d.Packet)/members/wall, float64(d.Stream)/members/wall, d.Dropped, s.churnCores, loadavg())
	return s
}

// worst keeps the larger figure; -1 (never) is worst of all.
func worst(a, b float64) float64 {
	if a < 0 || b < 0 {
		return -1
	}
	return max(a, b)
}
