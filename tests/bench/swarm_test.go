package bench

// The gossip swarm: a child process (this test binary re-executed inside
// the benchmark's network namespace) that hosts many members of weft's real
// gossip layer on real UDP/TCP sockets, one port each on one address, so
// that a real `weft agent` beside it sees a cluster of that many nodes.
// The members announce the synthetic peers' names, WireGuard keys,
// underlay addresses and pod blocks (as static leases), so the agent
// programs one tunnel peer and one route per member.
//
// The swarm is scaffolding, not the thing measured: its members use a
// relaxed timing (probes every 30 s, not weft's 500 ms) so that hundreds of
// them fit on a small machine beside the agent. The agent under test
// runs weft's own tuning.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/weftnet/weft/gossip"
	"github.com/weftnet/weft/tunnel"
)

const envSwarm = "WEFT_BENCH_SWARM"

// swarmParams is what the parent passes to the swarm (as a JSON file named
// by envSwarm).
type swarmParams struct {
	KeyFile     string
	Addr        netip.Addr
	BasePort    int
	ClusterCIDR netip.Prefix
	Peers       []tunnel.Peer
}

// swarmSeeds are the addresses of the first members, the agent's seeds.
func (p swarmParams) swarmSeeds() []string {
	var s []string
	for i := range min(3, len(p.Peers)) {
		s = append(s, netip.AddrPortFrom(p.Addr, uint16(p.BasePort+i)).String())
	}
	return s
}

// relaxedTuning keeps the swarm cheap: it probes and pushes rarely and does
// not gossip. Its members need not hear each other quickly: every member joins
// through the first one, which so learns them all, and the agent gets the
// whole table from it in its own join.
func relaxedTuning(mc *memberlist.Config) {
	mc.ProbeInterval = 30 * time.Second
	mc.ProbeTimeout = 5 * time.Second
	mc.SuspicionMult = 10
	mc.DisableTcpPings = true
	// No gossip at all: a joiner's queue holds a re-broadcast of every
	// member, and draining 999 of those kept the swarm too busy to answer
	// the agent's probes within its 250 ms. The swarm's members learn each
	// other by their joins' state exchanges; the agent learns them all
	// from its own join.
	mc.GossipInterval = 0
	mc.PushPullInterval = 10 * time.Minute
}

// runSwarm starts every member, prints "ready N" once the first member
// counts them all, and runs until its standard input closes.
func runSwarm() int {
	var prm swarmParams
	raw, err := os.ReadFile(os.Getenv(envSwarm))
	if err == nil {
		err = json.Unmarshal(raw, &prm)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "swarm: bad parameters file %s: %v\n", os.Getenv(envSwarm), err)
		return 1
	}
	key, err := gossip.LoadKey(prm.KeyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "swarm: %v\n", err)
		return 1
	}
	seeds := prm.swarmSeeds()[:1]
	nodes := make([]*gossip.Node, len(prm.Peers))
	start := func(i int) error {
		p := prm.Peers[i]
		seeds := seeds
		if i == 0 {
			seeds = nil // the first member starts the cluster
		}
		n, err := gossip.New(gossip.Config{
			NodeName: p.Name, ClusterID: "bench", Key: key,
			BindAddr: prm.Addr, BindPort: prm.BasePort + i, Seeds: seeds,
			ClusterCIDR: prm.ClusterCIDR, BlockBits: p.PodCIDR.Bits(), StaticLease: p.PodCIDR,
			LeaseGrace: time.Hour,
			Meta:       gossip.Meta{UnderlayIP: p.UnderlayIP, TunnelPort: p.Port, PublicKey: p.PublicKey, VTEPMAC: p.VTEPMAC},
			Tune:       relaxedTuning,
		})
		if err != nil {
			return fmt.Errorf("member %s: %w", p.Name, err)
		}
		nodes[i] = n
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := n.Start(ctx); err != nil {
			return fmt.Errorf("member %s: %w", p.Name, err)
		}
		return nil
	}
	defer func() {
		for _, n := range nodes {
			if n != nil {
				_ = n.Shutdown()
			}
		}
	}()
	if err := start(0); err != nil {
		fmt.Fprintf(os.Stderr, "swarm: %v\n", err)
		return 1
	}
	// Start the rest a few at a time; each join is a full state exchange.
	var wg sync.WaitGroup
	errs := make(chan error, len(prm.Peers))
	sem := make(chan struct{}, 4)
	for i := 1; i < len(prm.Peers); i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := start(i); err != nil {
				errs <- err
			}
			if i%100 == 0 {
				fmt.Fprintf(os.Stderr, "swarm: %d members started, %s\n", i, time.Now().Format(time.TimeOnly))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Fprintf(os.Stderr, "swarm: %v\n", err)
		return 1
	}
	deadline := time.Now().Add(5 * time.Minute)
	for nodes[0].Members() < len(nodes) {
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "swarm: only %d of %d members after 5 minutes\n", nodes[0].Members(), len(nodes))
			return 1
		}
		time.Sleep(100 * time.Millisecond) // polling a count
	}
	// Every member exchanges full state with a random other 2 s and 10 s
	// after its Start (gossip's catch-up): let the last of those pass, so
	// the swarm is quiet and answers the agent's probes in time.
	time.Sleep(11 * time.Second)
	fmt.Printf("ready %d\n", len(nodes))
	// Run until the parent closes our standard input.
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
	}
	return 0
}
