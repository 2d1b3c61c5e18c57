package tunnel

import (
	"net/netip"
	"strings"
	"testing"
)

func TestOverheadByUnderlayFamily(t *testing.T) {
	tests := []struct {
		underlay string
		encap    int
		want     int
	}{
		{"192.168.1.1", 40, 60},        // WireGuard over IPv4
		{"fd00::1", 40, 80},            // WireGuard over IPv6
		{"::ffff:192.168.1.1", 30, 50}, // v4-mapped counts as IPv4
		{"", 30, 50},                   // not known yet: IPv4
	}
	for _, tc := range tests {
		var a netip.Addr
		if tc.underlay != "" {
			a = netip.MustParseAddr(tc.underlay)
		}
		if got := Overhead(a, tc.encap); got != tc.want {
			t.Errorf("Overhead(%q, %d) = %d, want %d", tc.underlay, tc.encap, got, tc.want)
		}
	}
}

func TestResolveDefaultsAndErrors(t *testing.T) {
	c, log, err := Config{}.Resolve("wireguard", "weft0", 51820)
	if err != nil || c.Interface != "weft0" || c.Port != 51820 || log == nil {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Interface: "a-name-that-is-too-long"}, "field Interface"},
		{Config{Port: 70000}, "field Port"},
		{Config{Port: -1}, "field Port"},
	} {
		_, _, err := tc.cfg.Resolve("vxlan", "weft-vxlan", 4789)
		if err == nil || !strings.Contains(err.Error(), tc.field) || !strings.HasPrefix(err.Error(), "vxlan:") {
			t.Errorf("Resolve(%+v): error %v, want one naming vxlan and %s", tc.cfg, err, tc.field)
		}
	}
}
