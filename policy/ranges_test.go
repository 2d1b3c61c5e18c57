package policy

import (
	"net/netip"
	"slices"
	"testing"
)

func TestRanges(t *testing.T) {
	p := func(s string) span { return prefixSpan(netip.MustParsePrefix(s)) }
	tests := []struct {
		name string
		in   []span
		cuts []span
		want []string
	}{
		{"single /32", []span{p("10.0.0.1/32")}, nil, []string{"10.0.0.1"}},
		{"cidr", []span{p("10.0.0.0/24")}, nil, []string{"10.0.0.0-10.0.0.255"}},
		{"except in the middle", []span{p("10.0.0.0/24")}, []span{p("10.0.0.128/26")}, []string{"10.0.0.0-10.0.0.127", "10.0.0.192-10.0.0.255"}},
		{"except at both ends", []span{p("10.0.0.0/24")}, []span{p("10.0.0.0/25"), p("10.0.0.255/32")}, []string{"10.0.0.128-10.0.0.254"}},
		{"except everything", []span{p("10.0.0.0/24")}, []span{p("10.0.0.0/16")}, []string{}},
		{"whole space", []span{p("0.0.0.0/0")}, []span{p("10.0.0.0/8")}, []string{"0.0.0.0-9.255.255.255", "11.0.0.0-255.255.255.255"}},
		{"adjacent merge", []span{p("10.0.0.1/32"), p("10.0.0.2/32"), p("10.0.0.4/32")}, nil, []string{"10.0.0.1-10.0.0.2", "10.0.0.4"}},
		{"overlap merge", []span{p("10.0.0.0/24"), p("10.0.0.7/32"), p("10.0.1.0/24")}, nil, []string{"10.0.0.0-10.0.1.255"}},
		{"max adjacent", []span{p("255.255.255.255/32"), p("255.255.255.254/32")}, nil, []string{"255.255.255.254-255.255.255.255"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.in
			for _, c := range tt.cuts {
				s = subtract(s, c)
			}
			var got []string
			for _, r := range toRanges(s) {
				got = append(got, r.String())
			}
			if got == nil {
				got = []string{}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestContains(t *testing.T) {
	s := normalize([]span{{10, 20}, {30, 30}, {40, 50}})
	for v, want := range map[uint32]bool{9: false, 10: true, 15: true, 20: true, 21: false, 30: true, 31: false, 45: true, 50: true, 51: false} {
		if got := contains(s, v); got != want {
			t.Errorf("contains(%d) = %v, want %v", v, got, want)
		}
	}
	if contains(nil, 1) {
		t.Error("empty contains 1")
	}
}
