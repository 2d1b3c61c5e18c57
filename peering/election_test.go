package peering

import "testing"

func TestElectGateway(t *testing.T) {
	m := func(name string, eligible, alive, active bool) Member {
		return Member{Name: name, Eligible: eligible, Alive: alive, Active: active}
	}
	tests := []struct {
		name    string
		members []Member
		want    string
	}{
		{name: "nobody", want: ""},
		{name: "none eligible", members: []Member{m("a", false, true, false), m("b", false, true, false)}, want: ""},
		{name: "none alive", members: []Member{m("a", true, false, false), m("b", true, false, true)}, want: ""},
		{name: "lowest eligible live name", members: []Member{m("c", true, true, false), m("b", true, true, false), m("a", false, true, false)}, want: "b"},
		{name: "dead lowest is skipped", members: []Member{m("a", true, false, false), m("b", true, true, false)}, want: "b"},
		{name: "sticky: a live claimant keeps the role over a lower name", members: []Member{m("a", true, true, false), m("b", true, true, true)}, want: "b"},
		{name: "dead claimant does not hold it", members: []Member{m("a", true, true, false), m("b", true, false, true), m("c", true, true, false)}, want: "a"},
		{name: "ineligible claimant (label removed) does not hold it", members: []Member{m("a", true, true, false), m("b", false, true, true)}, want: "a"},
		{name: "two claimants: lowest wins", members: []Member{m("c", true, true, true), m("b", true, true, true), m("a", true, true, false)}, want: "b"},
		{name: "duplicate entry that claims", members: []Member{m("a", true, true, false), m("b", true, true, false), m("b", true, true, true)}, want: "b"},
		{name: "unnamed ignored", members: []Member{m("", true, true, true), m("z", true, true, false)}, want: "z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ElectGateway(tt.members); got != tt.want {
				t.Errorf("ElectGateway = %q, want %q", got, tt.want)
			}
			// Every node computes alike: order of the gossip view does not matter.
			rev := make([]Member, len(tt.members))
			for i, x := range tt.members {
				rev[len(rev)-1-i] = x
			}
			if got := ElectGateway(rev); got != tt.want {
				t.Errorf("reversed input: ElectGateway = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestElectGatewayFailover walks a cluster through a gateway dying and
// coming back: the role moves once and does not move back.
func TestElectGatewayFailover(t *testing.T) {
	members := []Member{{Name: "gw-a", Eligible: true, Alive: true}, {Name: "gw-b", Eligible: true, Alive: true}, {Name: "worker", Alive: true}}
	step := func(want string) {
		t.Helper()
		got := ElectGateway(members)
		if got != want {
			t.Fatalf("active = %q, want %q", got, want)
		}
		for i := range members { // each node publishes whether it won
			members[i].Active = members[i].Name == got
		}
	}
	step("gw-a")
	members[0].Alive = false
	step("gw-b")
	members[0].Alive, members[0].Active = true, false // gw-a restarts
	step("gw-b")
	members[1].Alive = false
	step("gw-a")
}
