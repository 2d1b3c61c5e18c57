package serviceproxy

import (
	"fmt"
	"time"

	"github.com/weftnet/weft/internal/yamlfield"
	"github.com/weftnet/weft/loadbalancer"
)

// Config is the services section of the agent's configuration
// (Kubernetes mode only; see docs/services.md).
type Config struct {
	// Proxy says who serves Service addresses: "weft" (default), the
	// agent, or "off", someone else (kube-proxy) or no one. Even with
	// "weft", the agent stands aside while kube-proxy's own table is on
	// the node.
	Proxy string `yaml:"proxy"`
	// Debounce is how long changes are gathered before the table is
	// updated. Default 50ms; at most 1s.
	Debounce yamlfield.Duration `yaml:"debounce"`
	// ResyncInterval is how often the kernel's table is checked against
	// what was applied, and rewritten when it drifted. Default 60s; at
	// least 1s.
	ResyncInterval yamlfield.Duration `yaml:"resyncInterval"`
	// LoadBalancer gives LoadBalancer Services addresses from pools and
	// announces them (docs/loadbalancer.md). No pools: off.
	LoadBalancer loadbalancer.Config `yaml:"loadBalancer"`
}

// Proxy settings.
const (
	ProxyWeft = "weft"
	ProxyOff  = "off"
)

// Defaults for Config.
const (
	DefaultDebounce = 50 * time.Millisecond
	DefaultResync   = 60 * time.Second
)

// Complete fills defaults and validates; errors name the field.
func (c *Config) Complete() error {
	switch c.Proxy {
	case "":
		c.Proxy = ProxyWeft
	case ProxyWeft, ProxyOff:
	default:
		return fmt.Errorf("services.proxy: %q is not weft or off", c.Proxy)
	}
	if c.Debounce.Duration == 0 {
		c.Debounce.Duration = DefaultDebounce
	}
	if c.Debounce.Duration < 0 || c.Debounce.Duration > time.Second {
		return fmt.Errorf("services.debounce: %s is not within 0-1s", c.Debounce)
	}
	if c.ResyncInterval.Duration == 0 {
		c.ResyncInterval.Duration = DefaultResync
	}
	if c.ResyncInterval.Duration < time.Second {
		return fmt.Errorf("services.resyncInterval: %s is shorter than 1s", c.ResyncInterval)
	}
	return c.LoadBalancer.Complete("services.loadBalancer")
}

// Enabled reports whether the agent serves Services.
func (c Config) Enabled() bool { return c.Proxy != ProxyOff }
