//go:build linux

package gossip

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var (
	simMembers = flag.String("sim.members", "", "TestGossipScaleSimulated: comma-separated cluster sizes (default: a small harness check)")
	simRest    = flag.Duration("sim.rest", 60*time.Second, "TestGossipScaleSimulated: simulated time to measure traffic at rest; push/pull runs every 60 s x (log2(N/32)+1), so a window of that length includes one round of it")
)

// TestGossipScaleSimulated runs the scale benchmark's phases (scale_test.go)
// on a simulated clock (testing/synctest): every member is weft's real
// gossip layer on real memberlist, but time advances only while every
// goroutine is waiting, as if each member had a machine of its own. That
// removes what makes BenchmarkGossipScale unusable at 1,000 members on a
// small machine (members starving each other of CPU, so probes time out and
// live members are suspected) while keeping every protocol timer, message
// and byte real. Times printed are protocol times; CPU is real CPU per
// simulated second.
//
//	go test -run 'GossipScaleSimulated' -v ./gossip/ -args -sim.members 1000
func TestGossipScaleSimulated(t *testing.T) {
	sizes := *simMembers
	if sizes == "" {
		if testing.Short() {
			t.Skip("short mode: the simulated scale check runs in the full suite")
		}
		sizes = "40"
	}
	for _, f := range strings.Split(sizes, ",") {
		size, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || size < 4 {
			t.Fatalf("-sim.members: bad size %q", f)
		}
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			wall := time.Now()
			synctest.Test(t, func(t *testing.T) {
				// Time stops when this function returns, and the bubble
				// must end with no goroutine left: give memberlist's
				// in-flight probes and timers a simulated minute after
				// every member is shut down.
				defer time.Sleep(time.Minute)
				s := runScale(t, scaleOpts{
					members: size, rest: *simRest, samples: 3,
					restart: 2 * time.Second, tuning: "weft", parallel: 64,
					print: func(format string, args ...any) { fmt.Printf("[sim] "+format+"\n", args...) },
				})
				if s.leaseP100 <= 0 || s.deadP100 <= 0 || s.churnSeconds <= 0 || s.restBytes <= 0 {
					t.Fatalf("a phase measured nothing: %+v", s)
				}
			})
			fmt.Printf("[sim] %d members simulated in %.1fs of wall time\n", size, time.Since(wall).Seconds())
		})
	}
}
