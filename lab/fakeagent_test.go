package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/weftnet/weft/nodestate"
)

// The test binary doubles as a fake weft when fakeEnv is set: `weft agent`
// publishes a state file, serves /readyz and the status socket, and marks
// its /var/run/wireguard; `weft status` reports every node with a state
// file as a peer; `weft lab cni-exec` is the real one. This exercises the
// lab's process and readiness handling without the real agent.
const fakeEnv = "WEFT_LAB_FAKE_WEFT"

// fakeMarker is the file the fake agent writes into /var/run/wireguard.
const fakeMarker = "weft0.fake"

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) == "1" {
		os.Exit(fakeWeft(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeWeft(args []string) int {
	var err error
	switch {
	case len(args) == 3 && args[0] == "agent" && args[1] == "--config":
		err = fakeAgent(args[2])
	case len(args) == 4 && args[0] == "status" && args[2] == "--socket":
		err = fakeStatus(args[3])
	case len(args) > 2 && args[0] == "lab" && args[1] == "cni-exec":
		err = fakeCNIExec(args[2:])
	default:
		err = fmt.Errorf("fake weft: unexpected arguments %q", args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake weft:", err)
		return 1
	}
	return 0
}

func fakeAgent(cfgPath string) error {
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	var c AgentConfigFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(wgRunDir, fakeMarker), []byte(c.NodeName), 0o644); err != nil {
		return err
	}
	ip := netip.MustParseAddr(c.Underlay.Address).As4()
	block := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, ip[3] - 10, 0}), 24)
	if err := nodestate.Write(c.StateFile, nodestate.State{
		Node: c.NodeName, PodCIDR: block, Gateway: nodestate.GatewayFor(block),
		ClusterCIDR: netip.MustParsePrefix(c.ClusterCIDR), MTU: 1420,
	}); err != nil {
		return err
	}
	_ = os.Remove(c.StatusSocket)
	us, err := net.Listen("unix", c.StatusSocket)
	if err != nil {
		return err
	}
	defer us.Close()
	ln, err := net.Listen("tcp", c.MetricsAddress)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return http.Serve(ln, mux)
}

func fakeStatus(socket string) error {
	nodeDir := filepath.Dir(socket)
	st, err := loadState(Layout{Root: filepath.Dir(filepath.Dir(nodeDir)), Name: filepath.Base(filepath.Dir(nodeDir))})
	if err != nil {
		return err
	}
	type peer struct {
		Name string `json:"name"`
	}
	out := struct {
		Node  string `json:"node"`
		Peers []peer `json:"peers"`
	}{Node: filepath.Base(nodeDir), Peers: []peer{}}
	for _, n := range st.Nodes {
		if _, err := os.Stat(filepath.Join(filepath.Dir(nodeDir), n.Name, "node.json")); err == nil && n.Name != out.Node {
			out.Peers = append(out.Peers, peer{n.Name})
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

func fakeCNIExec(args []string) error {
	var r CNIRequest
	for i := 0; i+1 < len(args); i += 2 {
		v := args[i+1]
		switch args[i] {
		case "--action":
			r.Action = v
		case "--bin-dir":
			r.BinDir = v
		case "--cache-dir":
			r.CacheDir = v
		case "--conflist":
			r.ConfList = v
		case "--container-id":
			r.ContainerID = v
		case "--netns":
			r.NetNS = v
		case "--ifname":
			r.IfName = v
		}
	}
	res, err := RunCNI(context.Background(), r)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
