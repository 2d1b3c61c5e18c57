package gossip

import (
	"io"
	"log"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// rogue is a memberlist delegate that publishes garbage.
type rogue struct{ meta, state []byte }

func (r rogue) NodeMeta(int) []byte             { return r.meta }
func (r rogue) NotifyMsg([]byte)                {}
func (r rogue) GetBroadcasts(int, int) [][]byte { return nil }
func (r rogue) LocalState(bool) []byte          { return r.state }
func (r rogue) MergeRemoteState([]byte, bool)   {}

// TestMalformedPeer: a member with undecodable meta and lease table is
// ignored and counted; nothing panics.
func TestMalformedPeer(t *testing.T) {
	c := newTestCluster(t)
	n0 := c.node("n0", nil, nil)
	n1 := c.node("n1", []string{c.net.Addr("n0")}, nil)
	c.startAll([]*Node{n0, n1})

	mc := memberlist.DefaultLocalConfig()
	fastTune(mc)
	mc.Name = "rogue"
	mc.Transport = c.net.NewTransport("rogue")
	mc.SecretKey = testKey
	mc.Logger = log.New(io.Discard, "", 0)
	mc.Delegate = rogue{meta: []byte{1, 0, 200, 'x'}, state: []byte("{not json")}
	ml, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join([]string{c.net.Addr("n0")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool {
		s := n0.Stats()
		return s.MalformedMeta > 0 && s.MalformedState > 0 && n1.Stats().MalformedMeta > 0
	}, "malformed input not counted: %+v", n0.Stats())
	waitConverged(t, 5*time.Second, []*Node{n0, n1})
	if n0.Members() != 3 {
		t.Errorf("Members() = %d, want 3 (the rogue is a member, just not a peer)", n0.Members())
	}
	if len(c.log.find(slog.LevelWarn, "ignoring member with malformed meta")) == 0 {
		t.Error("malformed meta not logged")
	}
}

// TestForeignCluster: a member of another cluster (same key) never
// becomes a peer, and is logged once.
func TestForeignCluster(t *testing.T) {
	c := newTestCluster(t)
	n0 := c.node("n0", nil, nil)
	n1 := c.node("n1", []string{c.net.Addr("n0")}, nil)
	other := c.node("other", []string{c.net.Addr("n0")}, func(cfg *Config) { cfg.ClusterID = "elsewhere" })
	c.startAll([]*Node{n0, n1, other})
	waitConverged(t, 10*time.Second, []*Node{n0, n1})
	if err := other.UpdateMeta(func(m *Meta) { m.TunnelPort = 1234 }); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return n0.Stats().ForeignMeta >= 2 }, "foreign meta not counted: %+v", n0.Stats())
	if slices.Contains(names(n0.Peers()), "other") || len(other.Peers()) != 0 {
		t.Errorf("foreign member became a peer: %v / %v", names(n0.Peers()), names(other.Peers()))
	}
	logged := 0
	for _, r := range c.log.find(slog.LevelWarn, "ignoring member of another cluster") {
		if r["node"] == "n0" && r["peer"] == "other" {
			logged++
		}
	}
	if logged != 1 {
		t.Errorf("foreign member logged %d times by n0, want 1", logged)
	}
}
