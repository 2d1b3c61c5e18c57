package agentcontract

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/lab"
)

func TestAgentConfigParses(t *testing.T) {
	l := lab.Layout{Root: "/run/weft-lab", Name: "demo"}
	for _, backend := range []string{"wireguard", "vxlan"} {
		spec := lab.Spec{Name: "demo", Backend: backend, ClusterCIDR: "10.99.0.0/16"}
		if err := spec.Complete(); err != nil {
			t.Fatal(err)
		}
		nodes, err := l.PlanNodes(3)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			b, err := lab.AgentConfig(l, spec, n, lab.Seeds(n.Name, nodes)).Render()
			if err != nil {
				t.Fatal(err)
			}
			c, err := agent.ParseConfig(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("%s/%s: %v\n%s", backend, n.Name, err, b)
			}
			if err := c.Complete(); err != nil {
				t.Fatalf("%s/%s: %v\n%s", backend, n.Name, err, b)
			}
			p := l.Node(n.Name)
			checks := []struct {
				field     string
				got, want any
			}{
				{"nodeName", c.NodeName, n.Name},
				{"clusterID", c.ClusterID, "lab-demo"},
				{"clusterCIDR", c.ClusterCIDR, "10.99.0.0/16"},
				{"underlay.interface", c.Underlay.Interface, "eth0"},
				{"underlay.address", c.Underlay.Address, n.UnderlayIP.String()},
				{"gossip.keyFile", c.Gossip.KeyFile, l.GossipKeyFile()},
				{"gossip.leaseFile", c.Gossip.LeaseFile, p.LeaseFile},
				{"gossip.leaseGrace", c.Gossip.LeaseGrace.Duration, lab.LabLeaseGrace},
				{"gossip.seeds", len(c.Gossip.Seeds), 2},
				{"tunnel.backend", c.Tunnel.Backend, backend},
				{"stateFile", c.StateFile, p.StateFile},
				{"statusSocket", c.StatusSocket, p.StatusSocket},
				{"metricsAddress", c.MetricsAddress, "127.0.0.1:9464"},
				{"resyncInterval", c.ResyncInterval.Duration, 2 * time.Second},
			}
			if backend == "wireguard" {
				checks = append(checks, struct {
					field     string
					got, want any
				}{"tunnel.keyFile", c.Tunnel.KeyFile, p.TunnelKey})
			}
			for _, ck := range checks {
				if ck.got != ck.want {
					t.Errorf("%s/%s: %s = %v, want %v", backend, n.Name, ck.field, ck.got, ck.want)
				}
			}
			for _, s := range c.Gossip.Seeds {
				if a := netip.MustParseAddr(s); a == n.UnderlayIP {
					t.Errorf("%s lists itself as a seed", n.Name)
				}
			}
		}
	}
}

// TestKubeAgentConfigParses proves the Kubernetes section of a --kube lab's
// agent config parses with the agent's parser.
func TestKubeAgentConfigParses(t *testing.T) {
	l := lab.Layout{Root: "/run/weft-lab", Name: "demo"}
	spec := lab.Spec{Name: "demo", Kube: true}
	if err := spec.Complete(); err != nil {
		t.Fatal(err)
	}
	n, err := l.PlanNode("n1", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.AgentConfig(l, spec, n, nil).Render()
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
	k := c.Kubernetes
	if !k.Enabled || k.Kubeconfig != l.AgentKubeconfig() || k.SyncTimeout.Duration != lab.LabKubeSyncTimeout || len(c.Gossip.Seeds) != 0 {
		t.Errorf("kubernetes = %+v, seeds %v", k, c.Gossip.Seeds)
	}
}

// TestAgentConfigPeering: a lab with gateways turns peering on in every
// agent, eligible on the first Gateways nodes only.
func TestAgentConfigPeering(t *testing.T) {
	l := lab.Layout{Root: "/run/weft-lab", Name: "east"}
	spec := lab.Spec{Name: "east", ClusterCIDR: "10.98.0.0/16", ServiceCIDR: "10.97.0.0/16", Gateways: 2}
	if err := spec.Complete(); err != nil {
		t.Fatal(err)
	}
	nodes, _ := l.PlanNodes(3)
	for _, n := range nodes {
		b, err := lab.AgentConfig(l, spec, n, nil).Render()
		if err != nil {
			t.Fatal(err)
		}
		c, err := agent.ParseConfig(bytes.NewReader(b))
		if err == nil {
			err = c.Complete()
		}
		if err != nil {
			t.Fatalf("%s: %v\n%s", n.Name, err, b)
		}
		p := c.Peering
		if p.File != l.PeeringFile() || p.ClusterName != "east" || len(p.ServiceCIDRs) != 1 || p.ServiceCIDRs[0] != "10.97.0.0/16" ||
			p.Gateway != (n.Index <= 2) || p.KeyFile != l.Node(n.Name).PeeringKey {
			t.Errorf("%s: peering %+v", n.Name, p)
		}
	}
}

// TestDaemonSetAgentConfigParses proves the agent.yaml a DaemonSet lab puts
// in the weft-config ConfigMap parses, and completes with what the
// DaemonSet's flags add (--node-name, --underlay-address, --kubernetes),
// with the paths of deploy/kubernetes and the in-cluster configuration.
func TestDaemonSetAgentConfigParses(t *testing.T) {
	l := lab.Layout{Root: "/run/weft-lab", Name: "demo"}
	spec := lab.Spec{Name: "demo", Kube: true, Kubelets: true, Agents: lab.AgentsDaemonSet}
	if err := spec.Complete(); err != nil {
		t.Fatal(err)
	}
	b, err := lab.DaemonSetAgentConfig(l, spec).Render()
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.ParseConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if c.NodeName != "" || c.Underlay.Address != "" || c.Kubernetes.Kubeconfig != "" {
		t.Errorf("nodeName %q, underlay.address %q, kubernetes.kubeconfig %q: want all empty (flags and in-cluster)\n%s",
			c.NodeName, c.Underlay.Address, c.Kubernetes.Kubeconfig, b)
	}
	c.NodeName, c.Underlay.Address, c.Kubernetes.Enabled = "n1", "192.0.2.11", true
	if err := c.Complete(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	for _, ck := range []struct{ field, got, want string }{
		{"gossip.keyFile", c.Gossip.KeyFile, "/etc/weft/gossip.key"},
		{"gossip.leaseFile", c.Gossip.LeaseFile, "/var/lib/weft/lease.json"},
		{"tunnel.keyFile", c.Tunnel.KeyFile, "/var/lib/weft/wireguard.key"},
		{"stateFile", c.StateFile, "/run/weft/node.json"},
		{"statusSocket", c.StatusSocket, "/run/weft/weft.sock"},
	} {
		if ck.got != ck.want {
			t.Errorf("%s = %q, want %q", ck.field, ck.got, ck.want)
		}
	}
}
