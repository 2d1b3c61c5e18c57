package gossip

import (
	"net/netip"
	"testing"
	"time"
)

// TestMustProve: which members reported alive must answer a challenge
// before they count.
func TestMustProve(t *testing.T) {
	p := netip.MustParsePrefix
	n := &Node{
		self:    Meta{Name: "self", PodCIDR: p("10.244.1.0/24")},
		members: map[string]Meta{"m": {Name: "m", PodCIDR: p("10.244.2.0/24")}},
		tombs:   map[string]tombstone{"dead": {claim: claim{Name: "dead", CIDR: p("10.244.3.0/24")}, Expires: time.Now().Add(time.Hour)}},
		gone:    map[string]time.Time{"left": time.Now()},
	}
	for _, tc := range []struct {
		m    Meta
		want bool
	}{
		{Meta{Name: "new", PodCIDR: p("10.244.9.0/24")}, false}, // a join with a free block
		{Meta{Name: "new"}, false},                              // a join before its claim
		{Meta{Name: "new", PodCIDR: p("10.244.1.0/24")}, true},  // overlaps our lease
		{Meta{Name: "new", PodCIDR: p("10.244.2.0/25")}, true},  // overlaps a member's
		{Meta{Name: "dead", PodCIDR: p("10.244.9.0/24")}, true}, // we hold its tombstone
		{Meta{Name: "left"}, true},                              // we saw it go
		{Meta{Name: "m", PodCIDR: p("10.244.2.0/24")}, false},   // its own lease is no rival
	} {
		if got := n.mustProveLocked(tc.m); got != tc.want {
			t.Errorf("mustProve(%s %s) = %v, want %v", tc.m.Name, tc.m.PodCIDR, got, tc.want)
		}
	}
}

func TestGoneIsBounded(t *testing.T) {
	n := &Node{gone: map[string]time.Time{}}
	t0 := time.Now()
	for i := range goneMax + 10 {
		n.markGoneLocked(string(rune('a'+i%26))+time.Duration(i).String(), t0.Add(time.Duration(i)))
	}
	if len(n.gone) != goneMax {
		t.Fatalf("remembers %d names, want %d", len(n.gone), goneMax)
	}
	if _, ok := n.gone["a0s"]; ok {
		t.Error("the oldest name was kept")
	}
}

// TestProofMessages: challenges and answers round-trip, and anything else
// is rejected.
func TestProofMessages(t *testing.T) {
	var nonce [nonceLen]byte
	copy(nonce[:], "0123456789abcdef")
	kind, got, name, reply, ok := decodeProof(encodeProof(proofChallenge, nonce, "n1", "192.0.2.1:7946"))
	if !ok || kind != proofChallenge || got != nonce || name != "n1" || reply != "192.0.2.1:7946" {
		t.Errorf("challenge: %v %x %q %q %v", kind, got, name, reply, ok)
	}
	kind, got, name, reply, ok = decodeProof(encodeProof(proofAnswer, nonce, "n1", "ignored"))
	if !ok || kind != proofAnswer || got != nonce || name != "n1" || reply != "" {
		t.Errorf("answer: %v %x %q %q %v", kind, got, name, reply, ok)
	}
	good := encodeProof(proofAnswer, nonce, "n1", "")
	for _, b := range [][]byte{nil, {proofVersion}, good[:len(good)-1], append(good, 0), append([]byte{9}, good[1:]...), append([]byte{proofVersion, 7}, good[2:]...)} {
		if _, _, _, _, ok := decodeProof(b); ok {
			t.Errorf("decodeProof(%x) accepted", b)
		}
	}
}

// TestExpiredTombstoneNotTakenBack: a lease table carrying a tombstone
// whose grace has run out here (a replayed push/pull) is ignored; a
// tombstone of a newer claim of the same node is taken.
func TestExpiredTombstoneNotTakenBack(t *testing.T) {
	c := newTestCluster(t)
	n := c.node("n0", nil, nil)
	block := netip.MustParsePrefix("10.244.7.0/24")
	at := time.Unix(1700000000, 0)
	now := time.Now()
	n.mu.Lock()
	n.tombs["dead"] = tombstone{claim: claim{Name: "dead", CIDR: block, ClaimedAt: at}, Expires: now.Add(-time.Second)}
	n.mu.Unlock()
	replayed, err := encodeState([]tombstone{{claim: claim{Name: "dead", CIDR: block, ClaimedAt: at}, Expires: now.Add(time.Minute)}}, now)
	if err != nil {
		t.Fatal(err)
	}
	delegate{n}.MergeRemoteState(replayed, false)
	if n.reserved(block) {
		t.Fatal("a replayed tombstone whose grace had run out holds the block again")
	}
	newer, _ := encodeState([]tombstone{{claim: claim{Name: "dead", CIDR: block, ClaimedAt: at.Add(time.Hour)}, Expires: now.Add(time.Minute)}}, now)
	delegate{n}.MergeRemoteState(newer, false)
	if !n.reserved(block) {
		t.Fatal("the tombstone of a newer claim was not taken")
	}
}
