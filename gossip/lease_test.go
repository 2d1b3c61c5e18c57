package gossip

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestBeats(t *testing.T) {
	tests := []struct {
		name string
		a, b claim
		want bool
	}{
		{"earlier claim wins", claim{Name: "b", ClaimedAt: t0}, claim{Name: "a", ClaimedAt: t0.Add(time.Nanosecond)}, true},
		{"later claim loses", claim{Name: "a", ClaimedAt: t0.Add(time.Second)}, claim{Name: "b", ClaimedAt: t0}, false},
		{"tie: lower name wins", claim{Name: "a", ClaimedAt: t0}, claim{Name: "b", ClaimedAt: t0}, true},
		{"tie: higher name loses", claim{Name: "b", ClaimedAt: t0}, claim{Name: "a", ClaimedAt: t0}, false},
		{"static beats earlier claim", claim{Name: "z", ClaimedAt: t0.Add(time.Hour), Static: true}, claim{Name: "a", ClaimedAt: t0}, true},
		{"claim loses to static", claim{Name: "a", ClaimedAt: t0}, claim{Name: "z", ClaimedAt: t0.Add(time.Hour), Static: true}, false},
		{"static vs static: earlier wins", claim{Name: "z", ClaimedAt: t0, Static: true}, claim{Name: "a", ClaimedAt: t0.Add(1), Static: true}, true},
		{"unset ClaimedAt loses", claim{Name: "a"}, claim{Name: "b", ClaimedAt: t0}, false},
		{"set beats unset", claim{Name: "b", ClaimedAt: t0}, claim{Name: "a"}, true},
		{"both unset: name", claim{Name: "a"}, claim{Name: "b"}, true},
		{"other time zone, same instant: name", claim{Name: "a", ClaimedAt: t0.In(time.FixedZone("x", 3600))}, claim{Name: "b", ClaimedAt: t0}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := beats(tt.a, tt.b); got != tt.want {
				t.Errorf("beats(%+v, %+v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if tt.a.Name != tt.b.Name && beats(tt.b, tt.a) == tt.want {
				t.Errorf("beats is not antisymmetric for %+v, %+v", tt.a, tt.b)
			}
		})
	}
}

func TestLosers(t *testing.T) {
	tests := []struct {
		name string
		in   []claim
		want []string
	}{
		{"disjoint", []claim{
			{Name: "a", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0},
			{Name: "b", CIDR: pfx("10.0.1.0/24"), ClaimedAt: t0},
		}, nil},
		{"same block: later loses", []claim{
			{Name: "a", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0.Add(time.Second)},
			{Name: "b", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0},
		}, []string{"a"}},
		{"three on one block", []claim{
			{Name: "c", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0},
			{Name: "a", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0.Add(time.Second)},
			{Name: "b", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0},
		}, []string{"a", "c"}},
		{"static wide block beats nested claims", []claim{
			{Name: "s", CIDR: pfx("10.0.0.0/16"), ClaimedAt: t0.Add(time.Hour), Static: true},
			{Name: "a", CIDR: pfx("10.0.3.0/24"), ClaimedAt: t0},
			{Name: "b", CIDR: pfx("10.1.0.0/24"), ClaimedAt: t0},
		}, []string{"a"}},
		{"nested claim older than the wide one", []claim{
			{Name: "w", CIDR: pfx("10.0.0.0/16"), ClaimedAt: t0.Add(time.Hour)},
			{Name: "a", CIDR: pfx("10.0.3.0/24"), ClaimedAt: t0},
			{Name: "b", CIDR: pfx("10.0.4.0/24"), ClaimedAt: t0.Add(2 * time.Hour)},
		}, []string{"b", "w"}},
		{"invalid CIDR ignored", []claim{
			{Name: "a", ClaimedAt: t0},
			{Name: "b", ClaimedAt: t0},
		}, nil},
		{"v4 and v6 never conflict", []claim{
			{Name: "a", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0},
			{Name: "b", CIDR: pfx("fd00::/64"), ClaimedAt: t0},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lost := losers(tt.in)
			var got []string
			for n := range lost {
				got = append(got, n)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("losers = %v, want %v", got, tt.want)
			}
			// Survivors never overlap, and input order does not matter.
			var kept []claim
			for _, c := range tt.in {
				if !lost[c.Name] && c.CIDR.IsValid() {
					kept = append(kept, c)
				}
			}
			for i, a := range kept {
				for _, b := range kept[i+1:] {
					if a.CIDR.Overlaps(b.CIDR) {
						t.Errorf("survivors %s and %s overlap", a.Name, b.Name)
					}
				}
			}
			rev := slices.Clone(tt.in)
			slices.Reverse(rev)
			if l2 := losers(rev); len(l2) != len(lost) {
				t.Errorf("losers depends on input order: %v vs %v", l2, lost)
			}
		})
	}
}

func TestStrongestRival(t *testing.T) {
	self := claim{Name: "m", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0.Add(time.Minute)}
	others := []claim{
		{Name: "late", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0.Add(time.Hour)},
		{Name: "early", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0.Add(time.Second)},
		{Name: "earliest", CIDR: pfx("10.0.0.0/24"), ClaimedAt: t0},
		{Name: "elsewhere", CIDR: pfx("10.0.1.0/24")},
		{Name: "m", CIDR: pfx("10.0.0.0/24")}, // ourselves, stale
	}
	r, ok := strongestRival(self, slices.Values(others))
	if !ok || r.Name != "earliest" {
		t.Fatalf("strongestRival = %v, %v; want earliest", r, ok)
	}
	if _, ok := strongestRival(self, slices.Values(others[:1])); ok {
		t.Fatalf("a later claim must not beat us")
	}
}

func TestFreeBlock(t *testing.T) {
	cluster := pfx("10.244.0.0/16")
	tests := []struct {
		name   string
		bits   int
		taken  []netip.Prefix
		start  uint64
		want   netip.Prefix
		wantOK bool
	}{
		{"first", 24, nil, 0, pfx("10.244.0.0/24"), true},
		{"start index", 24, nil, 7, pfx("10.244.7.0/24"), true},
		{"start wraps modulo", 24, nil, 256 + 3, pfx("10.244.3.0/24"), true},
		{"skips taken", 24, []netip.Prefix{pfx("10.244.7.0/24"), pfx("10.244.8.0/24")}, 7, pfx("10.244.9.0/24"), true},
		{"wraps around the end", 24, []netip.Prefix{pfx("10.244.255.0/24")}, 255, pfx("10.244.0.0/24"), true},
		{"wider taken prefix covers blocks", 24, []netip.Prefix{pfx("10.244.0.0/20")}, 0, pfx("10.244.16.0/24"), true},
		{"narrower taken prefix blocks its block", 24, []netip.Prefix{pfx("10.244.0.128/25")}, 0, pfx("10.244.1.0/24"), true},
		{"all taken", 24, []netip.Prefix{pfx("10.0.0.0/8")}, 0, netip.Prefix{}, false},
		{"whole cluster is one block", 16, nil, 5, pfx("10.244.0.0/16"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := freeBlock(cluster, tt.bits, tt.taken, tt.start)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("freeBlock = %s, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestBlockAtIPv6(t *testing.T) {
	got := blockAt(pfx("fd00:10::/48"), 64, 0x1234)
	if want := pfx("fd00:10:0:1234::/64"); got != want {
		t.Fatalf("blockAt = %s, want %s", got, want)
	}
	if n := blockCount(pfx("fd00:10::/48"), 64); n != 1<<16 {
		t.Fatalf("blockCount = %d", n)
	}
}

func TestTombstoneExpiryAndMerge(t *testing.T) {
	now := t0
	ts := func(name, cidr string, claimed, expires time.Time) tombstone {
		return tombstone{claim: claim{Name: name, CIDR: pfx(cidr), ClaimedAt: claimed}, Expires: expires}
	}
	if !ts("a", "10.0.0.0/24", t0, now.Add(time.Second)).live(now) {
		t.Errorf("unexpired tombstone not live")
	}
	if ts("a", "10.0.0.0/24", t0, now).live(now) {
		t.Errorf("tombstone live at its expiry")
	}

	tests := []struct {
		name    string
		have    []tombstone
		in      tombstone
		changed bool
		want    tombstone
	}{
		{"new", nil, ts("a", "10.0.0.0/24", t0, now.Add(time.Minute)), true, ts("a", "10.0.0.0/24", t0, now.Add(time.Minute))},
		{"expired incoming ignored", nil, ts("a", "10.0.0.0/24", t0, now), false, tombstone{}},
		{"later expiry of same lease extends",
			[]tombstone{ts("a", "10.0.0.0/24", t0, now.Add(time.Minute))},
			ts("a", "10.0.0.0/24", t0, now.Add(time.Hour)), true, ts("a", "10.0.0.0/24", t0, now.Add(time.Hour))},
		{"earlier expiry of same lease ignored",
			[]tombstone{ts("a", "10.0.0.0/24", t0, now.Add(time.Hour))},
			ts("a", "10.0.0.0/24", t0, now.Add(time.Minute)), false, ts("a", "10.0.0.0/24", t0, now.Add(time.Hour))},
		{"newer lease of the node replaces",
			[]tombstone{ts("a", "10.0.0.0/24", t0, now.Add(time.Hour))},
			ts("a", "10.0.5.0/24", t0.Add(time.Hour), now.Add(time.Minute)), true, ts("a", "10.0.5.0/24", t0.Add(time.Hour), now.Add(time.Minute))},
		{"older lease ignored",
			[]tombstone{ts("a", "10.0.5.0/24", t0.Add(time.Hour), now.Add(time.Minute))},
			ts("a", "10.0.0.0/24", t0, now.Add(time.Hour)), false, ts("a", "10.0.5.0/24", t0.Add(time.Hour), now.Add(time.Minute))},
		{"replaces an expired one",
			[]tombstone{ts("a", "10.0.5.0/24", t0.Add(time.Hour), now)},
			ts("a", "10.0.0.0/24", t0, now.Add(time.Hour)), true, ts("a", "10.0.0.0/24", t0, now.Add(time.Hour))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			have := map[string]tombstone{}
			for _, h := range tt.have {
				have[h.Name] = h
			}
			if got := mergeTombstone(have, tt.in, now); got != tt.changed {
				t.Errorf("changed = %v, want %v", got, tt.changed)
			}
			if got := have["a"]; got != tt.want {
				t.Errorf("have[a] = %+v, want %+v", got, tt.want)
			}
		})
	}
}
