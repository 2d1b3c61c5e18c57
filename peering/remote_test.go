package peering

import (
	"testing"
	"time"
)

func TestChooseRemoteGateway(t *testing.T) {
	gws := []RemoteGateway{{Node: "w1"}, {Node: "w2"}, {Node: "w3"}}
	s := time.Second
	tests := []struct {
		name string
		gws  []RemoteGateway
		st   RemoteState
		want string
	}{
		{name: "no gateways", st: RemoteState{Current: "w1"}, want: ""},
		{name: "first choice: first in bundle", gws: gws, want: "w1"},
		{name: "most recent fresh handshake wins", gws: gws,
			st: RemoteState{Current: "w1", Since: time.Hour, LastHeard: map[string]time.Duration{"w1": 100 * s, "w2": 3 * s}}, want: "w2"},
		{name: "remote failover: the new active gateway's handshake is followed at once", gws: gws,
			st: RemoteState{Current: "w2", Since: time.Hour, LastHeard: map[string]time.Duration{"w2": 30 * s, "w3": 1 * s}}, want: "w3"},
		{name: "stale handshakes do not count", gws: gws,
			st: RemoteState{Current: "w2", Since: 5 * s, LastHeard: map[string]time.Duration{"w1": 200 * s}}, want: "w2"},
		{name: "tie keeps current", gws: gws,
			st: RemoteState{Current: "w3", Since: time.Hour, LastHeard: map[string]time.Duration{"w1": 2 * s, "w3": 2 * s}}, want: "w3"},
		{name: "tie without current: bundle order", gws: gws,
			st: RemoteState{Current: "w1", Since: time.Hour, LastHeard: map[string]time.Duration{"w2": 2 * s, "w3": 2 * s}}, want: "w2"},
		{name: "nothing heard: current is given TryTime", gws: gws,
			st: RemoteState{Current: "w1", Since: 14 * s}, want: "w1"},
		{name: "nothing heard after TryTime: next", gws: gws,
			st: RemoteState{Current: "w1", Since: 15 * s}, want: "w2"},
		{name: "next wraps", gws: gws,
			st: RemoteState{Current: "w3", Since: 20 * s}, want: "w1"},
		{name: "current gone from the bundle: first", gws: gws,
			st: RemoteState{Current: "w9", Since: 1 * s}, want: "w1"},
		{name: "custom fresh and try", gws: gws,
			st: RemoteState{Current: "w1", Since: 3 * s, Fresh: 60 * s, TryTime: 2 * s, LastHeard: map[string]time.Duration{"w2": 61 * s}}, want: "w2"},
		{name: "negative age ignored", gws: gws,
			st: RemoteState{Current: "w2", Since: 1 * s, LastHeard: map[string]time.Duration{"w1": -1}}, want: "w2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ChooseRemoteGateway(tt.gws, tt.st); got != tt.want {
				t.Errorf("ChooseRemoteGateway = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestChooseRemoteGatewaySearch: a new local active gateway that hears
// nothing walks the bundle one TryTime per gateway until a handshake
// succeeds, then stays.
func TestChooseRemoteGatewaySearch(t *testing.T) {
	gws := []RemoteGateway{{Node: "w1"}, {Node: "w2"}, {Node: "w3"}}
	active := "w3" // only the remote active gateway completes handshakes
	st := RemoteState{LastHeard: map[string]time.Duration{}}
	var tried []string
	for tick := 0; tick < 12; tick++ { // 5 s reconcile ticks
		got := ChooseRemoteGateway(gws, st)
		if got != st.Current {
			st.Current, st.Since = got, 0
			tried = append(tried, got)
		}
		if got == active {
			st.LastHeard[active] = 0
		}
		st.Since += 5 * time.Second
		for k := range st.LastHeard {
			st.LastHeard[k] += 5 * time.Second
		}
	}
	if want := []string{"w1", "w2", "w3"}; len(tried) != 3 || tried[0] != want[0] || tried[1] != want[1] || tried[2] != want[2] {
		t.Errorf("tried %v, want %v", tried, want)
	}
}
