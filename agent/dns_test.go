package agent

import (
	"strings"
	"testing"
	"time"
)

func TestDNSConfigDefaults(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("nodeName: n1\ngossip: {keyFile: /k}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(); err != nil {
		t.Fatal(err)
	}
	d := c.DNS
	for _, ck := range []struct {
		name      string
		got, want any
	}{
		{"dns.enabled", *d.Enabled, true},
		{"dns.listenAddress", d.ListenAddress, "169.254.20.10"},
		{"dns.port", d.Port, 53},
		{"dns.interface", d.Interface, "weft-dns"},
		{"dns.zone", d.Zone, "cluster.local"},
		{"dns.ttl", d.TTL.Duration, 5 * time.Second},
		{"dns.negativeTTL", d.NegativeTTL.Duration, 5 * time.Second},
		{"dns.pods", d.Pods, "insecure"},
		{"dns.resolvConf", d.ResolvConf, "/etc/resolv.conf"},
		{"dns.upstreamTimeout", d.UpstreamTimeout.Duration, 2 * time.Second},
		{"dns.cache.size", d.Cache.Size, 10000},
		{"dns.cache.maxTTL", d.Cache.MaxTTL.Duration, time.Hour},
		{"dns.cache.serveStale", d.Cache.ServeStale.Duration, time.Duration(0)},
		{"dns.notrack", *d.Notrack, true},
	} {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestDNSConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ yaml, field string }{
		{"listenAddress: fd00::10", "dns.listenAddress"},
		{"listenAddress: nope", "dns.listenAddress"},
		{"port: 70000", "dns.port"},
		{"interface: a-very-long-interface-name", "dns.interface"},
		{"zone: 'a..b'", "dns.zone"},
		{"zone: local", "dns.zone"},
		{"zone: ClusterSet.Local.", "dns.zone"},
		{"zone: west.clusterset.local", "dns.zone"},
		{"ttl: 500ms", "dns.ttl"},
		{"negativeTTL: 48h", "dns.negativeTTL"},
		{"pods: sometimes", "dns.pods"},
		{"upstreams: [192.0.2.1, dns.example]", "dns.upstreams[1]"},
		{"upstreams: ['169.254.20.10:53']", "dns.upstreams[0]"},
		{"resolvConf: etc/resolv.conf", "dns.resolvConf"},
		{"upstreamTimeout: 1m", "dns.upstreamTimeout"},
		{"cache: {size: -1}", "dns.cache.size"},
		{"cache: {serveStale: -1s}", "dns.cache.serveStale"},
		{"allowedNetworks: [10.0.0.0/8, 10.1.2.3]", "dns.allowedNetworks[1]"},
	} {
		c, err := ParseConfig(strings.NewReader("nodeName: n1\ngossip: {keyFile: /k}\ndns:\n  " + tc.yaml + "\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		err = c.Complete()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: err %v, want one starting %q", tc.yaml, err, tc.field+":")
		}
	}
	c, _ := ParseConfig(strings.NewReader("nodeName: n1\ngossip: {keyFile: /k}\ndns:\n  upstreams: [192.0.2.1, '192.0.2.2:5353']\n  pods: verified\n  cache: {serveStale: 1h}\n"))
	if err := c.Complete(); err != nil {
		t.Errorf("a valid dns section: %v", err)
	}
}
