package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func addrs(ss ...string) map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	for _, s := range ss {
		m[netip.MustParseAddr(s)] = true
	}
	return m
}

func TestPick(t *testing.T) {
	p24 := netip.MustParsePrefix("10.244.7.0/24")
	gw24 := netip.MustParseAddr("10.244.7.1")
	tests := []struct {
		name    string
		block   netip.Prefix
		gw      string
		last    string
		used    map[netip.Addr]bool
		want    string
		wantErr error
	}{
		{name: "first skips network and gateway", block: p24, gw: "10.244.7.1", want: "10.244.7.2"},
		{name: "continues after last", block: p24, gw: "10.244.7.1", last: "10.244.7.9", want: "10.244.7.10"},
		{name: "skips used", block: p24, gw: "10.244.7.1", last: "10.244.7.9", used: addrs("10.244.7.10", "10.244.7.11"), want: "10.244.7.12"},
		{name: "never broadcast, wraps", block: p24, gw: "10.244.7.1", last: "10.244.7.254", want: "10.244.7.2"},
		{name: "last is broadcast", block: p24, gw: "10.244.7.1", last: "10.244.7.255", want: "10.244.7.2"},
		{name: "last outside block starts over", block: p24, gw: "10.244.7.1", last: "10.9.9.9", want: "10.244.7.2"},
		{name: "wrap finds a freed low address", block: p24, gw: "10.244.7.1", last: "10.244.7.200", used: rangeUsed(p24, gw24, "10.244.7.3"), want: "10.244.7.3"},
		{name: "exhausted", block: p24, gw: "10.244.7.1", last: "10.244.7.5", used: rangeUsed(p24, gw24, ""), wantErr: ErrExhausted},
		{name: "slash 30 has one", block: netip.MustParsePrefix("10.0.0.4/30"), gw: "10.0.0.5", want: "10.0.0.6"},
		{name: "slash 30 full", block: netip.MustParsePrefix("10.0.0.4/30"), gw: "10.0.0.5", used: addrs("10.0.0.6"), wantErr: ErrExhausted},
		{name: "gateway not first", block: netip.MustParsePrefix("10.0.0.0/29"), gw: "10.0.0.2", last: "10.0.0.1", want: "10.0.0.3"},
		{name: "unmasked block", block: netip.MustParsePrefix("10.244.7.77/24"), gw: "10.244.7.1", want: "10.244.7.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var last netip.Addr
			if tt.last != "" {
				last = netip.MustParseAddr(tt.last)
			}
			got, err := pick(tt.block, netip.MustParseAddr(tt.gw), last, func(a netip.Addr) bool { return tt.used[a] })
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("pick = %v, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != netip.MustParseAddr(tt.want) {
				t.Fatalf("pick = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// rangeUsed marks every assignable address of block used except free.
func rangeUsed(block netip.Prefix, gw netip.Addr, free string) map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	for a := block.Addr(); block.Contains(a); a = a.Next() {
		if Assignable(block, gw, a) && a.String() != free {
			m[a] = true
		}
	}
	return m
}

func TestCheckBlock(t *testing.T) {
	for _, tt := range []struct {
		block, gw string
		ok        bool
	}{
		{"10.0.0.0/24", "10.0.0.1", true},
		{"10.0.0.0/30", "10.0.0.1", true},
		{"10.0.0.0/31", "10.0.0.1", false},
		{"10.0.0.0/32", "10.0.0.0", false},
		{"10.0.0.0/24", "10.0.1.1", false},
	} {
		err := CheckBlock(netip.MustParsePrefix(tt.block), netip.MustParseAddr(tt.gw))
		if (err == nil) != tt.ok {
			t.Errorf("CheckBlock(%s, %s) = %v, want ok=%v", tt.block, tt.gw, err, tt.ok)
		}
	}
}

func TestCountFree(t *testing.T) {
	block := netip.MustParsePrefix("10.0.0.0/29") // .2-.6 assignable
	gw := netip.MustParseAddr("10.0.0.1")
	if n := countFree(block, gw, func(netip.Addr) bool { return false }); n != 5 {
		t.Fatalf("countFree(empty /29) = %d, want 5", n)
	}
	used := addrs("10.0.0.2", "10.0.0.6", "10.9.9.9")
	if n := countFree(block, gw, func(a netip.Addr) bool { return used[a] }); n != 3 {
		t.Fatalf("countFree = %d, want 3", n)
	}
}
