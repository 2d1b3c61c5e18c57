package loadbalancer

import (
	"net/netip"
	"strings"
	"testing"
)

func TestCompleteDefaults(t *testing.T) {
	var c Config
	if err := c.Complete("services.loadBalancer"); err != nil {
		t.Fatal(err)
	}
	if c.Class != DefaultClass || c.Announce == nil || !*c.Announce || len(c.ParsedPools()) != 0 {
		t.Errorf("defaults: %+v", c)
	}
	off := false
	c = Config{Announce: &off, Class: "example.com/lb"}
	if err := c.Complete("x"); err != nil || c.Announcing() || c.Class != "example.com/lb" {
		t.Errorf("explicit values not kept: %+v, %v", c, err)
	}
}

func TestCompleteParsesPools(t *testing.T) {
	c := Config{Pools: []string{"192.168.77.200/29", "192.168.77.210-192.168.77.239", "10.1.2.3/32", " 10.9.0.0/16 "}}
	if err := c.Complete("services.loadBalancer"); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		first, last string
		size        uint64
		str         string
	}{
		{"192.168.77.200", "192.168.77.207", 8, "192.168.77.200/29"},
		{"192.168.77.210", "192.168.77.239", 30, "192.168.77.210-192.168.77.239"},
		{"10.1.2.3", "10.1.2.3", 1, "10.1.2.3"},
		{"10.9.0.0", "10.9.255.255", 65536, "10.9.0.0/16"},
	}
	got := c.ParsedPools()
	if len(got) != len(want) {
		t.Fatalf("pools = %v", got)
	}
	for i, w := range want {
		p := got[i]
		if p.First != netip.MustParseAddr(w.first) || p.Last != netip.MustParseAddr(w.last) || p.Size() != w.size || p.String() != w.str {
			t.Errorf("pool %d = %v..%v size %d %q, want %s..%s size %d %q", i, p.First, p.Last, p.Size(), p.String(), w.first, w.last, w.size, w.str)
		}
	}
	p := got[0]
	for a, in := range map[string]bool{"192.168.77.199": false, "192.168.77.200": true, "192.168.77.207": true, "192.168.77.208": false, "::ffff:192.168.77.201": true, "fd00::1": false} {
		if p.Contains(netip.MustParseAddr(a)) != in {
			t.Errorf("%v contains %s: %v, want %v", p, a, !in, in)
		}
	}
}

func TestCompleteErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{Pools: []string{"192.168.77.0/24", "10.0.0.300/24"}}, `services.loadBalancer.pools[1]: "10.0.0.300/24" is not a CIDR or an address range`},
		{Config{Pools: []string{"nonsense"}}, `services.loadBalancer.pools[0]: "nonsense" is not a CIDR or an address range`},
		{Config{Pools: []string{"10.0.0.1/24"}}, `services.loadBalancer.pools[0]: "10.0.0.1/24" has host bits set (the network is 10.0.0.0/24)`},
		{Config{Pools: []string{"10.0.0.9-10.0.0.1"}}, `services.loadBalancer.pools[0]: "10.0.0.9-10.0.0.1" ends before it starts`},
		{Config{Pools: []string{"10.0.0.1-fd00::1"}}, `services.loadBalancer.pools[0]: "10.0.0.1-fd00::1" mixes IPv4 and IPv6`},
		{Config{Pools: []string{"fd00::/120"}}, `services.loadBalancer.pools[0]: "fd00::/120" is not IPv4 (IPv6 pools are not supported yet)`},
		{Config{Pools: []string{"10.0.0.0/29", "10.0.1.0/29", "10.0.0.7-10.0.0.20"}}, `services.loadBalancer.pools[2]: "10.0.0.7-10.0.0.20" overlaps pools[0] "10.0.0.0/29"`},
		{Config{Pools: []string{"10.0.0.0/24", "10.0.0.128/25"}}, `services.loadBalancer.pools[1]: "10.0.0.128/25" overlaps pools[0] "10.0.0.0/24"`},
		{Config{Class: "weft"}, `services.loadBalancer.class: "weft" is not a prefixed name like "weft.dev/loadbalancer"`},
		{Config{Class: "a/b/c"}, `services.loadBalancer.class: "a/b/c" is not a prefixed name`},
	} {
		err := tc.c.Complete("services.loadBalancer")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.c, err, tc.want)
		}
	}
}

func TestPoolsTouchingAreNotOverlapping(t *testing.T) {
	c := Config{Pools: []string{"10.0.0.0/29", "10.0.0.8-10.0.0.8", "10.0.0.9/32"}}
	if err := c.Complete("lb"); err != nil {
		t.Fatal(err)
	}
}
