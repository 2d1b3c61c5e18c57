package agent

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/peering"
	"github.com/weftnet/weft/serviceproxy"
)

func TestClustersetIPRangeConfig(t *testing.T) {
	local := peering.Local{PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")}}
	for _, tc := range []struct{ in, err string }{
		{"", ""},
		{"10.255.0.0/16", ""},
		{"192.168.200.0/24", ""},
		{"10.100.0.0/16", "overlaps this cluster's network 10.96.0.0/12"},
		{"10.244.128.0/20", "overlaps this cluster's network 10.244.0.0/16"},
		{"10.255.0.1/16", "host bits"},
		{"fd00::/64", "not IPv4"},
		{"ten", "not a CIDR"},
	} {
		p := PeeringConfig{ClustersetIPRange: tc.in}
		err := p.completeClustersetIPRange(local)
		if (err == nil) != (tc.err == "") || (err != nil && (!strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "peering.clustersetIPRange: "))) {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.err)
		}
	}
}

// The default range is used unless it overlaps this cluster's networks
// or no Service proxy of weft's runs; then clusterset IPs are off, with
// the reason.
func TestClustersetIPsDefault(t *testing.T) {
	agentWith := func(clusterCIDR, rng, proxy string) *Agent {
		return &Agent{cfg: Config{ClusterID: "east", ClusterCIDR: clusterCIDR,
			Peering:  PeeringConfig{ClusterName: "east", ClustersetIPRange: rng, ServiceCIDRs: []string{"10.96.0.0/16"}},
			Services: serviceproxy.Config{Proxy: proxy}}}
	}
	for _, tc := range []struct {
		a        *Agent
		rng, off string
	}{
		{agentWith("10.244.0.0/16", "", ""), "10.255.0.0/16", ""},
		{agentWith("10.244.0.0/16", "192.168.200.0/24", ""), "192.168.200.0/24", ""},
		{agentWith("10.248.0.0/13", "", ""), "", "overlaps this cluster's network 10.248.0.0/13: set peering.clustersetIPRange"},
		{agentWith("10.244.0.0/16", "", "off"), "", "services.proxy is off"},
	} {
		c := tc.a.clustersetIPs()
		got := ""
		if c.Range.IsValid() {
			got = c.Range.String()
		}
		if got != tc.rng || (tc.off == "") != (c.Off == "") || !strings.Contains(c.Off, tc.off) {
			t.Errorf("%s %q %q: range %q off %q, want %q and %q", tc.a.cfg.ClusterCIDR, tc.a.cfg.Peering.ClustersetIPRange, tc.a.cfg.Services.Proxy, got, c.Off, tc.rng, tc.off)
		}
		if len(c.Local) != 2 {
			t.Errorf("local networks %v, want the pod and service CIDRs", c.Local)
		}
	}
}
