package agentcontract

import (
	"bytes"
	"slices"
	"testing"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/lab"
)

// The lab writes pods' resolv.conf for the agents' default DNS proxy, and
// hands --dns-upstream to them in their config.
func TestLabDNSMatchesAgent(t *testing.T) {
	if lab.LabDNSAddr.String() != agent.DefaultDNSListenAddress || lab.LabDNSZone != agent.DefaultDNSZone {
		t.Errorf("lab pods use %s / %s, the agent serves %s / %s", lab.LabDNSAddr, lab.LabDNSZone, agent.DefaultDNSListenAddress, agent.DefaultDNSZone)
	}
	l := lab.Layout{Root: "/run/weft-lab", Name: "demo"}
	spec := lab.Spec{Name: "demo", Kube: true, DNSUpstream: "203.0.113.1"}
	if err := spec.Complete(); err != nil {
		t.Fatal(err)
	}
	nodes, err := l.PlanNodes(1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.AgentConfig(l, spec, nodes[0], nil).Render()
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.ParseConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if err := c.Complete(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !slices.Equal(c.DNS.Upstreams, []string{"203.0.113.1"}) {
		t.Errorf("dns.upstreams = %v, want [203.0.113.1]", c.DNS.Upstreams)
	}
}
