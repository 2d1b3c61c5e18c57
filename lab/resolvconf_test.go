package lab

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPodResolvConf(t *testing.T) {
	got := string(PodResolvConf("team-a", netip.MustParseAddr("169.254.20.10"), "cluster.local"))
	for _, line := range []string{
		"nameserver 169.254.20.10\n",
		"search team-a.svc.cluster.local svc.cluster.local cluster.local\n",
		"options ndots:5\n",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("resolv.conf lacks %q:\n%s", line, got)
		}
	}
	if p := PodResolvConfPath("demo-n1-p1"); p != "/etc/netns/demo-n1-p1/resolv.conf" {
		t.Errorf("path %s", p)
	}
	for _, bad := range []string{"", "..", "a/b"} {
		if err := removeNetnsEtc(bad); err == nil {
			t.Errorf("removeNetnsEtc(%q) accepted", bad)
		}
	}
}

func TestSpecDNSUpstream(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		ok   bool
	}{
		{Spec{Kube: true, DNSUpstream: "203.0.113.1"}, true},
		{Spec{Kube: true, DNSUpstream: "203.0.113.1:5353"}, true},
		{Spec{Kube: true, DNSUpstream: "dns.example"}, false},
		{Spec{DNSUpstream: "203.0.113.1"}, false}, // no proxy without --kube
	} {
		err := tc.spec.Complete()
		if (err == nil) != tc.ok || (err != nil && !strings.HasPrefix(err.Error(), "dns-upstream:")) {
			t.Errorf("%q (kube %v): err %v", tc.spec.DNSUpstream, tc.spec.Kube, err)
		}
	}
}
