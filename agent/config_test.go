package agent

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("nodeName: n1\ngossip:\n  keyFile: /k\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"clusterCIDR", c.ClusterCIDR, DefaultClusterCIDR},
		{"blockSize", c.BlockSize, 24},
		{"gossip.port", c.Gossip.Port, 7946},
		{"gossip.leaseGrace", c.Gossip.LeaseGrace.Duration, 5 * time.Minute},
		{"tunnel.backend", c.Tunnel.Backend, "wireguard"},
		{"tunnel.interface", c.Tunnel.Interface, "weft0"},
		{"tunnel.port", c.Tunnel.Port, 51820},
		{"resyncInterval", c.ResyncInterval.Duration, 10 * time.Second},
		{"masquerade", *c.Masquerade, true},
		{"metricsAddress", c.MetricsAddress, DefaultMetricsAddress},
		{"stateFile", c.StateFile, "/run/weft/node.json"},
		{"kubernetes.enabled", c.Kubernetes.Enabled, false},
		{"kubernetes.syncTimeout", c.Kubernetes.SyncTimeout.Duration, 30 * time.Second},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestConfigVXLANDefaults(t *testing.T) {
	c, err := ParseConfig(strings.NewReader("nodeName: n1\ngossip: {keyFile: /k}\ntunnel: {backend: vxlan}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(); err != nil {
		t.Fatal(err)
	}
	if c.Tunnel.Interface != "weft-vxlan" || c.Tunnel.Port != 4789 || c.Tunnel.VNI != 1 {
		t.Errorf("vxlan defaults: %+v", c.Tunnel)
	}
}

// Every bad value fails with an error naming its field.
func TestConfigErrorsNameTheField(t *testing.T) {
	base := "nodeName: n1\ngossip:\n  keyFile: /k\n"
	tests := []struct {
		yaml  string
		field string
	}{
		{"nodeName: n1\nbogus: 1\n", "bogus"},
		{base + "clusterCIDR: 10.244.0.0/33\n", "clusterCIDR"},
		{base + "clusterCIDR: banana\n", "clusterCIDR"},
		{base + "clusterCIDR: 10.244.1.0/16\n", "clusterCIDR"},
		{base + "clusterCIDR: fd00::/48\n", "clusterCIDR"},
		{base + "blockSize: 8\n", "blockSize"},
		{base + "blockSize: 31\n", "blockSize"},
		{base + "underlay:\n  address: 10.244.3.3\n", "underlay.address"},
		{base + "underlay:\n  address: nope\n", "underlay.address"},
		{base + "underlay:\n  mtu: 100\n", "underlay.mtu"},
		{"nodeName: n1\ngossip:\n  keyFile: /k\n  port: 70000\n", "gossip.port"},
		{"nodeName: n1\ngossip:\n  keyFile: /k\n  seeds: [\"not an ip\"]\n", "gossip.seeds[0]"},
		{"nodeName: n1\n", "gossip.keyFile"},
		{"nodeName: n1\ngossip:\n  keyFile: /k\n  leaseGrace: soon\n", "leaseGrace"},
		{base + "tunnel:\n  backend: ipip\n", "tunnel.backend"},
		{base + "tunnel:\n  interface: a-very-long-interface-name\n", "tunnel.interface"},
		{base + "tunnel:\n  backend: vxlan\n  vni: 16777216\n", "tunnel.vni"},
		{base + "resyncInterval: 1ms\n", "resyncInterval"},
		{base + "resyncInterval: 0s\n", "resyncInterval (line 4): 0s"},
		{base + "resyncInterval: 0\n", "resyncInterval (line 4): 0s"},
		{base + "policy:\n  resyncInterval: 0s\n", "policy.resyncInterval (line 5): 0s"},
		{base + "metricsAddress: localhost\n", "metricsAddress"},
		{base + "logLevel: loud\n", "logLevel"},
		{"nodeName: \"a b\"\ngossip:\n  keyFile: /k\n", "nodeName"},
		{"nodeName: [1, 2]\n", "nodeName"},
	}
	for _, tc := range tests {
		c, err := ParseConfig(strings.NewReader(tc.yaml))
		if err == nil {
			err = c.Complete()
		}
		if err == nil {
			t.Errorf("config %q: want an error naming %s, got none", tc.yaml, tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("config %q: error %q does not name %s", tc.yaml, err, tc.field)
		}
	}
}

// An interval left out takes its default; one written as 0 is refused
// (ParseConfig sees the document, Complete only the zero value).
func TestResyncIntervalUnsetOrZero(t *testing.T) {
	base := "nodeName: n1\ngossip:\n  keyFile: /k\n"
	tests := []struct {
		yaml         string
		want, policy time.Duration // 0: refused
	}{
		{base, DefaultResync, DefaultPolicyResync},
		{base + "resyncInterval: 3s\n", 3 * time.Second, DefaultPolicyResync},
		{base + "policy:\n  resyncInterval: 2s\n", DefaultResync, 2 * time.Second},
		{base + "resyncInterval: 0s\n", 0, 0},
		{base + "resyncInterval: 0ms\n", 0, 0},
		{base + "policy:\n  resyncInterval: 0s\n", 0, 0},
		{base + "policy: {}\n", DefaultResync, DefaultPolicyResync},
	}
	for _, tc := range tests {
		c, err := ParseConfig(strings.NewReader(tc.yaml))
		if err == nil {
			err = c.Complete()
		}
		if tc.want == 0 {
			if err == nil || !strings.Contains(err.Error(), "resyncInterval") {
				t.Errorf("config %q: err = %v, want one naming resyncInterval", tc.yaml, err)
			}
			continue
		}
		if err != nil || c.ResyncInterval.Duration != tc.want || c.Policy.ResyncInterval.Duration != tc.policy {
			t.Errorf("config %q: resyncInterval %v, policy.resyncInterval %v, %v; want %v, %v",
				tc.yaml, c.ResyncInterval, c.Policy.ResyncInterval, err, tc.want, tc.policy)
		}
	}
}

func TestSeedAddrAddsGossipPort(t *testing.T) {
	c := Config{Gossip: GossipConfig{Port: 7000}}
	for in, want := range map[string]string{"192.168.1.1": "192.168.1.1:7000", "192.168.1.1:9": "192.168.1.1:9"} {
		got, err := c.seedAddr(in)
		if err != nil || got != want {
			t.Errorf("seedAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
func TestConfigMemoryLimit(t *testing.T) {
	base := "nodeName: n1\ngossip: {keyFile: /k}\n"
	c, err := ParseConfig(strings.NewReader(base))
	if err == nil {
		err = c.Complete()
	}
	if err != nil || !c.MemoryLimit.Auto() {
		t.Errorf("default memoryLimit %s (%v), want auto", c.MemoryLimit, err)
	}
	c, err = ParseConfig(strings.NewReader(base + "memoryLimit: 96Mi\n"))
	if err != nil || c.MemoryLimit.Bytes != 96<<20 {
		t.Errorf("memoryLimit: 96Mi gave %+v, %v", c.MemoryLimit, err)
	}
	c, err = ParseConfig(strings.NewReader(base + "memoryLimit: off\n")) // not YAML 1.1's false
	if err != nil || !c.MemoryLimit.Off {
		t.Errorf("memoryLimit: off gave %+v, %v", c.MemoryLimit, err)
	}
	_, err = ParseConfig(strings.NewReader(base + "memoryLimit: 96MB\n"))
	if err == nil || !strings.Contains(err.Error(), "memoryLimit") {
		t.Errorf("memoryLimit: 96MB: error %v does not name the field", err)
	}
}
