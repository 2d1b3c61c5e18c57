package gossip

import (
	"testing"
	"time"
)

// TestBootAcrossRestart: every run of a node publishes its own non-zero
// Boot, UpdateMeta keeps it, and the other members see the new one when a
// node restarts faster than they detect its failure.
func TestBootAcrossRestart(t *testing.T) {
	c := newTestCluster(t)
	seeds := []string{c.net.Addr("n0")}
	n0 := c.node("n0", nil, nil)
	c.start(n0)
	r := c.node("r", seeds, nil)
	c.start(r)
	boot := r.Self().Boot
	if boot == 0 {
		t.Fatal("a started node publishes Boot 0")
	}
	if err := r.UpdateMeta(func(m *Meta) { m.PublicKey, m.Boot = "pk-new", boot+1 }); err != nil {
		t.Fatal(err)
	}
	if got := r.Self().Boot; got != boot {
		t.Fatalf("UpdateMeta changed Boot to %d, want %d kept", got, boot)
	}
	peerBoot := func() uint32 {
		for _, m := range n0.Peers() {
			if m.Name == "r" {
				return m.Boot
			}
		}
		return 0
	}
	eventually(t, 10*time.Second, func() bool { return peerBoot() == boot }, "n0 does not see r's Boot %d", boot)

	if err := r.Shutdown(); err != nil {
		t.Fatal(err)
	}
	r2 := c.node("r", seeds, nil)
	c.start(r2)
	next := r2.Self().Boot
	if next == 0 || next == boot {
		t.Fatalf("restarted node publishes Boot %d (before: %d)", next, boot)
	}
	eventually(t, 10*time.Second, func() bool { return peerBoot() == next }, "n0 does not see r's new Boot %d", next)
}
