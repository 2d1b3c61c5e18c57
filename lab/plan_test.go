package lab

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestSpecComplete(t *testing.T) {
	var s Spec
	if err := s.Complete(); err != nil {
		t.Fatal(err)
	}
	want := Spec{Name: "weft", Nodes: 3, Backend: "wireguard", MTU: 1500, ClusterCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/16", Agents: AgentsProcess}
	if s != want {
		t.Fatalf("defaults: got %+v, want %+v", s, want)
	}
	bad := []struct {
		spec  Spec
		field string
	}{
		{Spec{Name: "we-ft"}, "name:"},
		{Spec{Name: "Weft"}, "name:"},
		{Spec{Nodes: 244}, "nodes:"},
		{Spec{Nodes: -1}, "nodes:"},
		{Spec{Backend: "gre"}, "backend:"},
		{Spec{MTU: 1000}, "mtu:"},
		{Spec{PodsPerNode: -1}, "pods-per-node:"},
		{Spec{ClusterCIDR: "10.244.0.1/16"}, "cluster-cidr:"},
		{Spec{ClusterCIDR: "192.168.0.0/16"}, "cluster-cidr:"},
		{Spec{ClusterCIDR: "fd00::/64"}, "cluster-cidr:"},
		{Spec{ServiceCIDR: "10.244.0.0/20"}, "service-cidr:"},
		{Spec{ServiceCIDR: "10.0.0.0/8"}, "service-cidr:"},
		{Spec{ClusterCIDR: "198.51.0.0/16"}, "cluster-cidr:"},
		{Spec{Gateways: 4}, "gateways:"},
		{Spec{Gateways: -1}, "gateways:"},
		{Spec{Agents: "pods"}, "agents:"},
		{Spec{Kube: true, Agents: AgentsDaemonSet}, "agents:"},
		{Spec{Kube: true, Kubelets: true, Agents: AgentsDaemonSet, Gateways: 1}, "agents:"},
	}
	for _, b := range bad {
		err := b.spec.Complete()
		if err == nil || !strings.HasPrefix(err.Error(), b.field) {
			t.Errorf("%+v: got %v, want an error naming %s", b.spec, err, b.field)
		}
	}
}

func TestNames(t *testing.T) {
	l := Layout{Root: "/run/weft-lab", Name: "demo"}
	for got, want := range map[string]string{
		l.UnderlayNS():         "demo-underlay",
		l.InetNS():             "demo-inet",
		l.NodeNS("n1"):         "demo-n1",
		l.PodNS("n1", "web-1"): "demo-n1-web-1",
		l.Dir():                "/run/weft-lab/demo",
		l.StateFile():          "/run/weft-lab/demo/state.json",
		l.GossipKeyFile():      "/run/weft-lab/demo/gossip.key",
		l.LockFile():           "/run/weft-lab/demo.lock",
		NetNSPath("demo-n1"):   "/run/netns/demo-n1",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	// No lab's prefix may be a prefix of another lab's namespaces: lab
	// names carry no '-'.
	other := Layout{Name: "demo2"}
	if strings.HasPrefix(other.NodeNS("n1"), l.Prefix()) {
		t.Errorf("lab demo's prefix %q matches lab demo2's namespace %q", l.Prefix(), other.NodeNS("n1"))
	}
	for _, n := range []string{"underlay", "inet", "n-1", "N1", "1n", "", "abcdefghijklmnop"} {
		if ValidateNodeName(n) == nil {
			t.Errorf("node name %q accepted", n)
		}
	}
	for _, p := range []string{"-a", "a-", "A", ""} {
		if ValidatePodName(p) == nil {
			t.Errorf("pod name %q accepted", p)
		}
	}
}

func TestNodePaths(t *testing.T) {
	l := Layout{Root: "/run/weft-lab", Name: "demo"}
	a, b := l.Node("n1"), l.Node("n2")
	pa, pb := pathsOf(a), pathsOf(b)
	for i := range pa {
		if !strings.HasPrefix(pa[i], "/run/weft-lab/demo/n1/") {
			t.Errorf("node n1 path %q is not under its node directory", pa[i])
		}
		if slices.Contains(pb, pa[i]) {
			t.Errorf("nodes n1 and n2 share path %q", pa[i])
		}
	}
	// The status socket must fit sun_path (108 bytes) for the longest names.
	long := Layout{Root: DefaultRoot, Name: "abcdefghijklmnop"}.Node("abcdefghijklmno")
	if len(long.StatusSocket) >= 108 {
		t.Errorf("status socket path %q is too long for a unix socket", long.StatusSocket)
	}
}

func pathsOf(p NodePaths) []string {
	return []string{p.Config, p.StateFile, p.StatusSocket, p.LeaseFile, p.TunnelKey, p.Log,
		p.WireGuardDir, p.CNIDataDir, p.CNICacheDir, p.CNIConfList}
}

func TestAddresses(t *testing.T) {
	for i, want := range map[int]string{1: "192.168.77.11", 2: "192.168.77.12", 243: "192.168.77.253"} {
		got, err := NodeAddr(i)
		if err != nil || got.String() != want {
			t.Errorf("NodeAddr(%d) = %v, %v; want %s", i, got, err, want)
		}
		if got == InetAddr || !UnderlaySubnet.Contains(got) {
			t.Errorf("NodeAddr(%d) = %v collides with inet or leaves the underlay", i, got)
		}
	}
	for _, i := range []int{0, 244} {
		if _, err := NodeAddr(i); err == nil {
			t.Errorf("NodeAddr(%d) accepted", i)
		}
	}
	for _, c := range []struct {
		used []int
		want int
	}{{nil, 1}, {[]int{1, 2, 3}, 4}, {[]int{1, 3}, 2}, {[]int{2}, 1}} {
		if got, _ := FreeIndex(c.used); got != c.want {
			t.Errorf("FreeIndex(%v) = %d, want %d", c.used, got, c.want)
		}
	}
	if got := DefaultNodeName(2, map[string]bool{"n2": true, "n3": true}); got != "n4" {
		t.Errorf("DefaultNodeName = %q, want n4", got)
	}
}

func TestPlanNodesAndSeeds(t *testing.T) {
	l := Layout{Root: "/r", Name: "demo"}
	nodes, err := l.PlanNodes(3)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		wantName := []string{"n1", "n2", "n3"}[i]
		if n.Name != wantName || n.Index != i+1 || n.NetNS != "demo-"+wantName || n.BridgePort != []string{"v1", "v2", "v3"}[i] {
			t.Errorf("node %d: %+v", i, n)
		}
	}
	got := Seeds("n2", nodes)
	want := []netip.Addr{netip.MustParseAddr("192.168.77.11"), netip.MustParseAddr("192.168.77.13")}
	if !slices.Equal(got, want) {
		t.Errorf("Seeds(n2) = %v, want %v", got, want)
	}
	if s := Seeds("n1", nodes[:1]); len(s) != 0 {
		t.Errorf("a lone node has seeds %v", s)
	}
}

func TestCommands(t *testing.T) {
	l := Layout{Root: "/r", Name: "demo"}
	n, err := l.PlanNode("n2", 2)
	if err != nil {
		t.Fatal(err)
	}
	has := func(cmds []Cmd, want string) {
		t.Helper()
		for _, c := range cmds {
			if strings.Join(c, " ") == want {
				return
			}
		}
		t.Errorf("missing command %q", want)
	}
	u := UnderlayCmds(l, 1400)
	has(u, "ip netns add demo-underlay")
	has(u, "ip -n demo-underlay link add br0 mtu 1400 type bridge")
	has(u, "ip -n demo-underlay link add vinet mtu 1400 type veth peer name eth0 mtu 1400 netns demo-inet")
	has(u, "ip -n demo-inet addr add 192.168.77.254/24 dev eth0")
	has(u, "ip -n demo-inet addr add 203.0.113.1/32 dev lo")
	nc := NodeCmds(l, n, 1400)
	has(nc, "ip netns add demo-n2")
	has(nc, "ip -n demo-n2 link set lo up")
	has(nc, "ip -n demo-underlay link add v2 mtu 1400 type veth peer name eth0 mtu 1400 netns demo-n2")
	has(nc, "ip -n demo-underlay link set v2 master br0 up")
	has(nc, "ip -n demo-n2 addr add 192.168.77.12/24 dev eth0")
	has(nc, "ip -n demo-n2 route add default via 192.168.77.254")
	// Every namespace the lab creates carries its mark at once.
	all := append(append(u, nc...), PodNSCmds(l, "demo-n2-p1")...)
	for i, c := range all {
		if len(c) == 4 && c[1] == "netns" && c[2] == "add" {
			if want := "ip -n " + c[3] + " link set lo alias weft-lab:demo"; i+1 >= len(all) || strings.Join(all[i+1], " ") != want {
				t.Errorf("%q is not followed by %q", strings.Join(c, " "), want)
			}
		}
	}
	// Nothing may run in the host's namespace: every command names one.
	for _, c := range all {
		s := strings.Join(c, " ")
		if !strings.HasPrefix(s, "ip -n demo-") && !strings.HasPrefix(s, "ip netns add demo-") && !strings.HasPrefix(s, "ip netns exec demo-") {
			t.Errorf("command %q does not stay inside the lab's namespaces", s)
		}
	}
}

func TestConfList(t *testing.T) {
	p := Layout{Root: "/r", Name: "demo"}.Node("n1")
	b, err := ConfList(p)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"cniVersion": "1.1.0", "name": "weft",
		"plugins": []any{map[string]any{"type": "weft-cni", "stateFile": "/r/demo/n1/node.json", "dataDir": "/r/demo/n1/cni"}},
	}
	if gb, _ := json.Marshal(got); string(gb) != mustJSON(want) {
		t.Errorf("conflist = %s, want %s", gb, mustJSON(want))
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestArgv(t *testing.T) {
	l := Layout{Root: "/r", Name: "demo"}
	n, _ := l.PlanNode("n1", 1)
	got := strings.Join(AgentArgv("/bin/weft", n), " ")
	if !strings.HasPrefix(got, "unshare --mount --propagation private sh -c ") ||
		!strings.HasSuffix(got, " sh /r/demo/n1/wireguard demo-n1 /bin/weft agent --config /r/demo/n1/agent.yaml") {
		t.Errorf("agent argv = %q", got)
	}
	if !isAgentOf(AgentArgv("/bin/weft", n), n.Paths.Config) {
		t.Error("the agent's own wrapper argv is not recognised as its agent")
	}
	for _, c := range []struct {
		argv []string
		cfg  string
		want bool
	}{
		{[]string{"/usr/local/bin/weft", "agent", "--config", "/r/demo/n1/agent.yaml"}, "/r/demo/n1/agent.yaml", true},
		{[]string{"/usr/local/bin/weft", "agent", "--config=/r/demo/n1/agent.yaml"}, "/r/demo/n1/agent.yaml", true},
		{[]string{"/usr/local/bin/weft", "agent", "--config", "/r/demo/n1/agent.yaml"}, "/r/demo/", true},
		{[]string{"/usr/local/bin/weft", "agent", "--config", "/r/demo/n1/agent.yaml"}, "/r/demo2/", false},
		{[]string{"/usr/local/bin/weft", "agent", "--config", "/r/demo/n2/agent.yaml"}, "/r/demo/n1/agent.yaml", false},
		{[]string{"/usr/bin/vim", "agent", "--config", "/r/demo/n1/agent.yaml"}, "/r/demo/n1/agent.yaml", false},
		{[]string{"/usr/local/bin/weft", "status", "--config", "/r/demo/n1/agent.yaml"}, "/r/demo/n1/agent.yaml", false},
		{nil, "/r/demo/", false},
	} {
		if got := isAgentOf(c.argv, c.cfg); got != c.want {
			t.Errorf("isAgentOf(%q, %q) = %v, want %v", c.argv, c.cfg, got, c.want)
		}
	}
}

func TestPeerNames(t *testing.T) {
	for in, want := range map[string][]string{
		`{"self":{"name":"n1"},"peers":[{"name":"n3"},{"name":"n2"}]}`: {"n2", "n3"},
		`{"peers":[{"node":"n2"}]}`:                                    {"n2"},
		`{"peers":["n2","n3"]}`:                                        {"n2", "n3"},
		`{"peers":{"n2":{},"n3":{}}}`:                                  {"n2", "n3"},
		`{"peers":null}`:                                               nil,
		`{"self":{}}`:                                                  nil,
	} {
		got, err := PeerNames([]byte(in))
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("PeerNames(%s) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := PeerNames([]byte("not json")); err == nil {
		t.Error("PeerNames accepted garbage")
	}
}
