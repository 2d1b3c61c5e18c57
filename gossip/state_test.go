package gossip

import (
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	now := time.Now()
	in := []tombstone{
		{claim: claim{Name: "a", CIDR: pfx("10.244.1.0/24"), ClaimedAt: time.Unix(100, 5)}, Expires: now.Add(90 * time.Second)},
		{claim: claim{Name: "b", CIDR: pfx("10.244.2.0/24"), Static: true}, Expires: now.Add(time.Hour)},
		{claim: claim{Name: "c", CIDR: pfx("10.244.3.0/24")}, Expires: now.Add(-time.Second)},
	}
	b, err := encodeState(in, now)
	if err != nil {
		t.Fatal(err)
	}
	// The receiver's clock is an hour ahead: only remaining time matters.
	later := now.Add(time.Hour)
	got, err := decodeState(b, later, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d tombstones, want 2 (expired one dropped): %+v", len(got), got)
	}
	if got[0].Name != "a" || got[0].CIDR != in[0].CIDR || !got[0].ClaimedAt.Equal(in[0].ClaimedAt) {
		t.Errorf("tombstone a = %+v", got[0])
	}
	if d := got[0].Expires.Sub(later); d < 89*time.Second || d > 90*time.Second {
		t.Errorf("a expires in %s, want ~90s", d)
	}
	if d := got[1].Expires.Sub(later); d != 5*time.Minute || !got[1].Static {
		t.Errorf("b: expires in %s (want capped to 5m), static %v", d, got[1].Static)
	}
}

func TestDecodeStateBad(t *testing.T) {
	for _, b := range []string{
		``, `{`, `[]`, `{"v":0}`,
		`{"v":1,"tombstones":[{"name":"","cidr":"10.0.0.0/24","remainingMs":5}]}`,
		`{"v":1,"tombstones":[{"name":"a","cidr":"10.0.0.1/24","remainingMs":5}]}`,
		`{"v":1,"tombstones":[{"name":"a","cidr":"nope","remainingMs":5}]}`,
	} {
		if _, err := decodeState([]byte(b), time.Now(), time.Minute); err == nil {
			t.Errorf("decodeState(%q) succeeded", b)
		}
	}
	got, err := decodeState([]byte(`{"v":1,"tombstones":[{"name":"a","cidr":"10.0.0.0/24","remainingMs":9223372036854775807}]}`), time.Now(), time.Minute)
	if err != nil || len(got) != 1 || time.Until(got[0].Expires) > time.Minute {
		t.Errorf("huge remaining: %+v, %v", got, err)
	}
}
