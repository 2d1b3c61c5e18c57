package agent

// PolicyConfig configures NetworkPolicy enforcement (Kubernetes mode only).
type PolicyConfig struct{}

func (c *PolicyConfig) complete() error { return nil }

// newPolicyAddon builds the NetworkPolicy addon, or nil when it is disabled.
func newPolicyAddon(a *Agent) (addon, error) { return nil, nil }

// PolicyStatus is the addon's part of `weft status`.
type PolicyStatus struct{}
