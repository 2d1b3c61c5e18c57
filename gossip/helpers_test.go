package gossip

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/weftnet/weft/internal/poll"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// fastTune shortens memberlist's timings so failure detection and
// convergence take a second or two in process.
func fastTune(mc *memberlist.Config) {
	mc.ProbeInterval = 400 * time.Millisecond
	mc.ProbeTimeout = 300 * time.Millisecond
	mc.GossipInterval = 50 * time.Millisecond
	mc.GossipNodes = 3
	mc.PushPullInterval = 2 * time.Second
	mc.SuspicionMult = 3
	mc.SuspicionMaxTimeoutMult = 3
	mc.RetransmitMult = 3
	mc.IndirectChecks = 2
	mc.TCPTimeout = 2 * time.Second
	mc.GossipToTheDeadTime = 5 * time.Second
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	poll.True(t, d, 20*time.Millisecond, fmt.Sprintf(format, args...), cond)
}

// recorder is an slog handler that keeps records for assertions and
// prints them when WEFT_TEST_LOG is set.
type recorder struct {
	mu    *sync.Mutex
	recs  *[]slog.Record
	attrs []slog.Attr
	print bool
}

func newRecorder() *recorder {
	return &recorder{mu: new(sync.Mutex), recs: new([]slog.Record), print: os.Getenv("WEFT_TEST_LOG") != ""}
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool {
	return r.print || l >= slog.LevelInfo
}

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(r.attrs...)
	r.mu.Lock()
	*r.recs = append(*r.recs, rec)
	r.mu.Unlock()
	if r.print {
		var b strings.Builder
		rec.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		fmt.Fprintf(os.Stderr, "%s %s %s%s\n", rec.Time.Format("15:04:05.000"), rec.Level, rec.Message, b.String())
	}
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(slices.Clone(r.attrs), as...)
	return &c
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

// find returns the attributes of records with message msg at level.
func (r *recorder) find(level slog.Level, msg string) []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]string
	for _, rec := range *r.recs {
		if rec.Level != level || rec.Message != msg {
			continue
		}
		m := map[string]string{}
		rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		out = append(out, m)
	}
	return out
}

// testCluster creates nodes on one memNet.
type testCluster struct {
	t   *testing.T
	net *memNet
	log *recorder
}

func newTestCluster(t *testing.T) *testCluster {
	return &testCluster{t: t, net: newMemNet(), log: newRecorder()}
}

// node creates (but does not start) a node; mod may adjust its config.
func (c *testCluster) node(name string, seeds []string, mod func(*Config)) *Node {
	c.t.Helper()
	cfg := Config{
		NodeName:    name,
		ClusterID:   "test",
		Key:         testKey,
		Seeds:       seeds,
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		LeaseGrace:  time.Hour,
		Meta:        Meta{UnderlayIP: netip.MustParseAddr("192.0.2.1"), TunnelPort: 51820, PublicKey: "pk-" + name},
		Transport:   c.net.NewTransport(name),
		Tune:        fastTune,
		Logger:      slog.New(c.log),
	}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		c.t.Fatalf("New(%s): %v", name, err)
	}
	c.t.Cleanup(func() { _ = n.Shutdown() })
	return n
}

// start starts n and fails the test on error.
func (c *testCluster) start(n *Node) netip.Prefix {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := n.Start(ctx)
	if err != nil {
		c.t.Fatalf("Start(%s): %v", n.cfg.NodeName, err)
	}
	return p
}

// startAll starts nodes concurrently.
func (c *testCluster) startAll(nodes []*Node) {
	c.t.Helper()
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			_, err := n.Start(ctx)
			if err != nil {
				err = fmt.Errorf("Start(%s): %w", n.cfg.NodeName, err)
			}
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			c.t.Fatal(err)
		}
	}
}

// converged reports whether every node in nodes has a lease, no two leases
// overlap, and every node's Peers() is exactly the others with their
// current leases.
func converged(nodes []*Node) (bool, string) {
	for i, a := range nodes {
		la := a.Lease()
		if !la.IsValid() {
			return false, a.cfg.NodeName + " has no lease"
		}
		for _, b := range nodes[i+1:] {
			if la.Overlaps(b.Lease()) {
				return false, fmt.Sprintf("%s and %s both hold %s", a.cfg.NodeName, b.cfg.NodeName, la)
			}
		}
	}
	for _, a := range nodes {
		var want []string
		for _, b := range nodes {
			if b != a {
				want = append(want, b.cfg.NodeName+"="+b.Lease().String())
			}
		}
		slices.Sort(want)
		var got []string
		for _, p := range a.Peers() {
			got = append(got, p.Name+"="+p.PodCIDR.String())
		}
		if !slices.Equal(got, want) {
			return false, fmt.Sprintf("%s sees %v, want %v", a.cfg.NodeName, got, want)
		}
	}
	return true, ""
}

func waitConverged(t *testing.T, d time.Duration, nodes []*Node) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, why := converged(nodes)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster did not converge within %s: %s", d, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// blockIndex is the index of block p in cluster (IPv4 only).
func blockIndex(cluster netip.Prefix, p netip.Prefix) uint64 {
	a, b := cluster.Addr().As4(), p.Addr().As4()
	x := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	y := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	return uint64((y - x) >> (32 - p.Bits()))
}

// reserved reports whether n would refuse to claim p now.
func (n *Node) reserved(p netip.Prefix) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	taken, _ := n.takenLocked(time.Now())
	return overlapsAny(p, taken)
}

// names returns the names in metas.
func names(ms []Meta) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// watchPeers checks, until the returned stop is called, that no node's
// Peers() ever holds two overlapping blocks.
func watchPeers(t *testing.T, nodes []*Node) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	finished := make(chan string)
	go func() {
		var bad string
		for {
			for _, n := range nodes {
				ps := n.Peers()
				for i, a := range ps {
					for _, b := range ps[i+1:] {
						if a.PodCIDR.Overlaps(b.PodCIDR) && bad == "" {
							bad = fmt.Sprintf("%s: Peers() has %s=%s and %s=%s", n.cfg.NodeName, a.Name, a.PodCIDR, b.Name, b.PodCIDR)
						}
					}
				}
			}
			select {
			case <-done:
				finished <- bad
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() {
		close(done)
		if bad := <-finished; bad != "" {
			t.Error(bad)
		}
	}
}

// logged reports whether a record at level or above mentions substr.
func (r *recorder) logged(level slog.Level, substr string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range *r.recs {
		if rec.Level >= level && strings.Contains(strings.ToLower(rec.Message), substr) {
			return true
		}
	}
	return false
}
