package agent

// DNSConfig configures the node-local DNS proxy (Kubernetes mode only).
type DNSConfig struct{}

func (c *DNSConfig) complete() error { return nil }

// newDNSAddon builds the DNS proxy addon, or nil when it is disabled.
func newDNSAddon(a *Agent) (addon, error) { return nil, nil }

// DNSStatus is the addon's part of `weft status`.
type DNSStatus struct{}
