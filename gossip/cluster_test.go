package gossip

import (
	"fmt"
	"testing"
	"time"
)

func TestConvergence(t *testing.T) {
	c := newTestCluster(t)
	const count = 32
	var seeds []string
	for i := range 3 {
		seeds = append(seeds, c.net.Addr(fmt.Sprintf("node-%02d", i)))
	}
	nodes := make([]*Node, count)
	for i := range nodes {
		nodes[i] = c.node(fmt.Sprintf("node-%02d", i), seeds, nil)
	}
	start := time.Now()
	stop := watchPeers(t, nodes)
	c.startAll(nodes)
	waitConverged(t, 20*time.Second, nodes)
	stop()
	t.Logf("%d nodes converged in %s", count, time.Since(start))
	for _, n := range nodes {
		if got := n.Members(); got != count {
			t.Errorf("%s: Members() = %d, want %d", n.cfg.NodeName, got, count)
		}
	}
}
