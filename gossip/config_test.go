package gossip

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{NodeName: "n1", Key: testKey, BindAddr: netip.MustParseAddr("10.0.0.5")}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.ClusterID != "default" || c.BindPort != 7946 || c.ClusterCIDR != pfx("10.244.0.0/16") ||
		c.BlockBits != 24 || c.LeaseGrace != 5*time.Minute || c.Logger == nil {
		t.Errorf("defaults: %+v", c)
	}
	if c.AdvertiseAddr != netip.MustParseAddr("10.0.0.5") || c.Meta.UnderlayIP != c.AdvertiseAddr {
		t.Errorf("AdvertiseAddr %s, UnderlayIP %s; want the bind address", c.AdvertiseAddr, c.Meta.UnderlayIP)
	}
	if c.Meta.Name != "n1" || c.Meta.ClusterID != "default" {
		t.Errorf("meta identity: %+v", c.Meta)
	}
	c, err = Config{NodeName: "n1", InsecureNoEncryption: true}.withDefaults()
	if err != nil || c.AdvertiseAddr.IsValid() || c.BindAddr != netip.IPv4Unspecified() {
		t.Errorf("wildcard bind: advertise %s, bind %s, err %v", c.AdvertiseAddr, c.BindAddr, err)
	}
}

func TestConfigValidation(t *testing.T) {
	base := func() Config { return Config{NodeName: "n1", Key: testKey} }
	tests := []struct {
		name  string
		mod   func(*Config)
		field string
	}{
		{"no name", func(c *Config) { c.NodeName = "" }, "NodeName"},
		{"no key", func(c *Config) { c.Key = nil }, "Key"},
		{"short key", func(c *Config) { c.Key = []byte("short") }, "Key"},
		{"key and insecure", func(c *Config) { c.InsecureNoEncryption = true }, "InsecureNoEncryption"},
		{"port", func(c *Config) { c.BindPort = 70000 }, "BindPort"},
		{"advertise unspecified", func(c *Config) { c.AdvertiseAddr = netip.IPv6Unspecified() }, "AdvertiseAddr"},
		{"empty seed", func(c *Config) { c.Seeds = []string{"a:1", ""} }, "Seeds[1]"},
		{"cidr not masked", func(c *Config) { c.ClusterCIDR = netip.MustParsePrefix("10.244.1.0/16") }, "ClusterCIDR"},
		{"block wider than cluster", func(c *Config) { c.BlockBits = 8 }, "BlockBits"},
		{"block too long", func(c *Config) { c.BlockBits = 33 }, "BlockBits"},
		{"too many blocks", func(c *Config) { c.ClusterCIDR = netip.MustParsePrefix("fd00::/32"); c.BlockBits = 64 }, "BlockBits"},
		{"grace", func(c *Config) { c.LeaseGrace = -time.Second }, "LeaseGrace"},
		{"static not masked", func(c *Config) { c.StaticLease = netip.MustParsePrefix("10.244.1.1/24") }, "StaticLease"},
		{"meta port", func(c *Config) { c.Meta.TunnelPort = 1 << 20 }, "Meta"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mod(&c)
			_, err := New(c)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("New: err = %v, want one naming %s", err, tt.field)
			}
		})
	}
}
