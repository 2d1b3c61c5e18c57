package agent

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/weftnet/weft/policy"
)

// PolicyConfig configures NetworkPolicy enforcement (Kubernetes mode only;
// see docs/policy.md).
type PolicyConfig struct {
	// Enabled turns enforcement on. Default true (in Kubernetes mode).
	// When false, the agent removes a policy table left by an earlier run,
	// so no stale policy stays in force.
	Enabled *bool `yaml:"enabled"`
	// Debounce is how long changes seen by the informers are gathered
	// before the ruleset is recompiled. Default 100ms; at most 1s.
	Debounce Duration `yaml:"debounce"`
	// ResyncInterval is how often the table's elements are rewritten even
	// when nothing changed (repairing hand edits). Default 60s.
	ResyncInterval Duration `yaml:"resyncInterval"`
	// SourceCheck drops new connections from a cluster address that did
	// not arrive on the interface that address is routed through (a pod
	// forging another pod's address to get past a policy). Default true.
	SourceCheck *bool `yaml:"sourceCheck"`
	// RulesetFile is where the compiled ruleset is written, as nft text,
	// for `weft policy show`. Default: policy.txt beside stateFile.
	RulesetFile string `yaml:"rulesetFile"`
}

// Defaults for PolicyConfig.
const (
	DefaultPolicyDebounce = 100 * time.Millisecond
	DefaultPolicyResync   = 60 * time.Second
)

func (c *PolicyConfig) complete() error {
	if c.Enabled == nil {
		t := true
		c.Enabled = &t
	}
	if c.SourceCheck == nil {
		t := true
		c.SourceCheck = &t
	}
	if c.Debounce.Duration == 0 {
		c.Debounce.Duration = DefaultPolicyDebounce
	}
	if c.Debounce.Duration < 0 || c.Debounce.Duration > time.Second {
		return fmt.Errorf("policy.debounce: %s is not within 0-1s (policy must take effect within a second)", c.Debounce)
	}
	if c.ResyncInterval.Duration == 0 {
		c.ResyncInterval.Duration = DefaultPolicyResync
	}
	if c.ResyncInterval.Duration < time.Second {
		return fmt.Errorf("policy.resyncInterval: %s is shorter than 1s", c.ResyncInterval)
	}
	if c.RulesetFile != "" && !filepath.IsAbs(c.RulesetFile) {
		return fmt.Errorf("policy.rulesetFile: %q is not an absolute path", c.RulesetFile)
	}
	return nil
}

// newPolicyAddon builds the NetworkPolicy addon, or nil when it is disabled.
func newPolicyAddon(a *Agent) (addon, error) {
	cfg := a.cfg.Policy
	if cfg.Enabled != nil && !*cfg.Enabled {
		if conn, err := policy.NewConn(); err == nil {
			if err := policy.Remove(conn); err != nil {
				a.log.Warn("policy is disabled but an old policy table could not be removed", "err", err)
			}
		}
		return nil, nil
	}
	if cfg.Debounce.Duration == 0 {
		_ = cfg.complete() // a Config not run through Complete (tests)
	}
	file := cfg.RulesetFile
	if file == "" {
		file = filepath.Join(filepath.Dir(a.cfg.StateFile), "policy.txt")
	}
	conn, err := policy.NewConn()
	if err != nil {
		return nil, err
	}
	p := newPolicyAddonWith(a.base.With("component", "policy", "node", a.cfg.NodeName), a.cfg.NodeName, cfg, file,
		policy.NewApplier(conn), func(st PolicyStatus) { a.setStatus(func(s *Status) { s.Policy = &st }) },
		newPolicyMetrics(a.metrics.reg))
	if *cfg.SourceCheck {
		p.sourceCheck = a.cfg.ClusterPrefix()
	}
	p.remove = func() error { return policy.Remove(conn) }
	p.closeConn = conn.CloseLasting
	return p, nil
}

// newPolicyAddonWith assembles the addon from its parts (tests pass a
// fake applier).
func newPolicyAddonWith(log *slog.Logger, node string, cfg PolicyConfig, rulesetFile string, ap policyApplier, publish func(PolicyStatus), m *policyMetrics) *policyAddon {
	return &policyAddon{
		log:         log,
		node:        node,
		cfg:         cfg,
		rulesetFile: rulesetFile,
		applier:     ap,
		remove:      func() error { return nil },
		closeConn:   func() error { return nil },
		kick:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		publish:     publish,
		metrics:     m,
	}
}

// PolicyStatus is the addon's part of `weft status`.
type PolicyStatus struct {
	// Synced is true once the informers had their first list and a
	// ruleset was applied.
	Synced bool `json:"synced"`
	// Policies select Pods on this node; ClusterPolicies are all of them.
	Policies        int `json:"policies"`
	ClusterPolicies int `json:"clusterPolicies"`
	// Pods on this node isolated in at least one direction.
	Pods   int `json:"pods"`
	Chains int `json:"chains"`
	Sets   int `json:"sets"`
	// DroppedPackets were dropped by policy since the agent started.
	DroppedPackets uint64 `json:"droppedPackets"`
	// TopDrops are the isolated pods with the most drops (at most 10).
	TopDrops []PolicyPodDrops `json:"topDrops,omitempty"`
	// LastApply is when the kernel's table last changed, and how
	// (elements or replaced).
	LastApply      time.Time `json:"lastApply,omitzero"`
	LastOutcome    string    `json:"lastOutcome,omitempty"`
	CompileSeconds float64   `json:"compileSeconds"`
	ApplySeconds   float64   `json:"applySeconds"`
	// Problems are what the policies ask that weft cannot enforce exactly.
	Problems []string `json:"problems,omitempty"`
	// LastError is the last compile or apply failure; the previous
	// ruleset stays in force while it is set.
	LastError   string `json:"lastError,omitempty"`
	RulesetFile string `json:"rulesetFile"`
}

// PolicyPodDrops is one pod's drops in one direction (ingress: packets to
// it; egress: packets from it).
type PolicyPodDrops struct {
	Pod       string `json:"pod"`
	Direction string `json:"direction"`
	Packets   uint64 `json:"packets"`
}
