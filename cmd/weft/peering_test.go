package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/peering"
)

func testKey(seed string) wgtypes.Key {
	var k wgtypes.Key
	copy(k[:], seed)
	return k
}

// runPeering runs `weft peering args...` and returns its output and error.
func runPeering(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newPeeringCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

// fakeAgent serves st on a unix socket the way the agent's status server
// does, and returns the socket path.
func fakeAgent(t *testing.T, st agent.Status) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "weft.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/status" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestPeeringExportOffline(t *testing.T) {
	k1, k2 := testKey("gateway-one").PublicKey(), testKey("gateway-two").PublicKey()
	out, err := runPeering(t, "export", "--name", "west", "--id", "west-1",
		"--pod-cidr", "10.245.0.0/16", "--service-cidr", "10.97.0.0/16", "--zone", "west.example",
		"--gateway", "gw-1=192.0.2.10:51821,"+k1.String(), "--gateway", "gw-2=192.0.2.11:51821,"+k2.String(),
		"--socket", filepath.Join(t.TempDir(), "none.sock"))
	if err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	b, err := peering.ParseBundle([]byte(out))
	if err != nil {
		t.Fatalf("export printed what ParseBundle refuses: %v\n%s", err, out)
	}
	want := peering.Bundle{Name: "west", ID: "west-1", PodCIDRs: []string{"10.245.0.0/16"}, ServiceCIDRs: []string{"10.97.0.0/16"},
		Zone: "west.example", Gateways: []peering.Gateway{
			{Node: "gw-1", Endpoint: "192.0.2.10:51821", PublicKey: k1.String()},
			{Node: "gw-2", Endpoint: "192.0.2.11:51821", PublicKey: k2.String()},
		}}
	got, _ := json.Marshal(b)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("bundle\n got %s\nwant %s", got, exp)
	}
	if strings.Contains(out, "zone: cluster.local") {
		t.Errorf("default zone written")
	}

	// What export prints, pasted under peers:, is a valid peering file.
	file := "peers:\n  - " + strings.ReplaceAll(strings.TrimSpace(out), "\n", "\n    ") + "\n"
	path := filepath.Join(t.TempDir(), "peering.yaml")
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runPeering(t, "check", path, "--name", "east", "--pod-cidr", "10.244.0.0/16"); err != nil || !strings.Contains(out, "ok, 1 peer(s)") {
		t.Errorf("check of an exported bundle: %v\n%s\nfile:\n%s", err, out, file)
	}
}

func TestPeeringExportErrors(t *testing.T) {
	noAgent := filepath.Join(t.TempDir(), "none.sock")
	k := testKey("gateway-one").PublicKey().String()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{name: "no pod CIDR and no agent", args: []string{"--id", "w", "--gateway", "g=192.0.2.1:1," + k},
			want: []string{"is `weft agent` running", "pass --id, --pod-cidr and --gateway to export offline"}},
		{name: "malformed gateway flag", args: []string{"--id", "w", "--pod-cidr", "10.0.0.0/8", "--gateway", "g=192.0.2.1:1"},
			want: []string{"--gateway #1", "not node=ip:port,publickey"}},
		{name: "invalid bundle names its fields", args: []string{"--id", "W", "--pod-cidr", "10.0.0.1/8", "--gateway", "g=192.0.2.1:1,short"},
			want: []string{"the bundle would be refused", "\n  name:", "\n  id:", "\n  podCIDRs[0]:", "did you mean 10.0.0.0/8", "\n  gateways[0].publicKey:"}},
		{name: "no agent and no --gateway", args: []string{"--id", "w", "--pod-cidr", "10.0.0.0/8"},
			want: []string{"is `weft agent` running", "pass --id, --pod-cidr and --gateway to export offline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runPeering(t, append([]string{"export", "--socket", noAgent}, tt.args...)...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestPeeringExportFromAgent(t *testing.T) {
	pub := testKey("peering-private").PublicKey().String()
	gwStatus := agent.Status{Node: "node-1", ClusterID: "east-1", UnderlayIP: "198.51.100.7", Peering: &agent.PeeringStatus{
		ClusterName: "east", ClusterID: "east-1", PodCIDRs: []string{"10.244.0.0/16"}, ServiceCIDRs: []string{"10.96.0.0/16"},
		Zone: "cluster.local", Gateway: true, PublicKey: pub, Port: 51821}}
	sock := fakeAgent(t, gwStatus)

	out, err := runPeering(t, "export", "--socket", sock)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	b, err := peering.ParseBundle([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := peering.Bundle{Name: "east", ID: "east-1", PodCIDRs: []string{"10.244.0.0/16"}, ServiceCIDRs: []string{"10.96.0.0/16"},
		Gateways: []peering.Gateway{{Node: "node-1", Endpoint: "198.51.100.7:51821", PublicKey: pub}}}
	got, _ := json.Marshal(b)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("bundle from agent\n got %s\nwant %s", got, exp)
	}

	// Flags override the agent.
	out, err = runPeering(t, "export", "--socket", sock, "--name", "east-prod", "--service-cidr", "10.100.0.0/16", "--zone", "east.example")
	if err != nil || !strings.Contains(out, "name: east-prod") || !strings.Contains(out, "10.100.0.0/16") || strings.Contains(out, "10.96.0.0/16") ||
		!strings.Contains(out, "zone: east.example") {
		t.Errorf("overrides: %v\n%s", err, out)
	}

	notGateway := gwStatus
	p := *gwStatus.Peering
	p.Gateway, p.PublicKey, p.Port = false, "", 0
	notGateway.Peering = &p
	if _, err := runPeering(t, "export", "--socket", fakeAgent(t, notGateway)); err == nil || !strings.Contains(err.Error(), "node node-1 is not gateway-eligible") {
		t.Errorf("non-gateway node: %v", err)
	}
	// ...which can still export with the gateways given.
	if out, err := runPeering(t, "export", "--socket", fakeAgent(t, notGateway), "--gateway", "gw-9=192.0.2.9:51821,"+pub); err != nil || !strings.Contains(out, "node: gw-9") {
		t.Errorf("non-gateway node with --gateway: %v\n%s", err, out)
	}
	if _, err := runPeering(t, "export", "--socket", fakeAgent(t, agent.Status{Node: "n", ClusterID: "c"})); err == nil || !strings.Contains(err.Error(), "no peering: section") {
		t.Errorf("agent without peering: %v", err)
	}
}

func TestPrintPeeringStatus(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, agent.Status{Node: "n1", Peering: &agent.PeeringStatus{ClusterName: "east", ClusterID: "east-1", Gateway: true, Port: 51821,
		PublicKey: "K=", Peers: []string{"north", "west"}, ActiveGateway: "n1",
		Remotes: []agent.RemoteClusterStatus{{Name: "north", Unreachable: "no way"}, {Name: "west", Gateway: "west-gw-1", Endpoint: "192.0.2.10:51821", RxBytes: 10, TxBytes: 20}},
		Clusterset: &agent.ClustersetStatus{Exported: 2, Imported: map[string]int{"west": 3}, PullError: "cluster north: timeout",
			ClustersetIPStatus: agent.ClustersetIPStatus{IPRange: "10.255.0.0/30", IPs: 2, IPsFull: 1, IPError: "clusterset IP range 10.255.0.0/30 (or the table of 5000) is full: 1 Services have none, first shop/web"}},
		LastError: "peering.yaml: 1 problem(s) in peering file:\n  peers[0].name (line 2): required"}})
	for _, w := range []string{
		"peering: cluster east (id east-1), this node gateway-eligible (port 51821, key K=); active gateway n1; peers in force: north, west",
		"north        unreachable: no way",
		"clusterset: 2 service(s) exported; imported: north 0, west 3 (pulled never)",
		"clusterset pull failed, imports kept: cluster north: timeout",
		"clusterset IPs: 2 of 10.255.0.0/30",
		"clusterset IP problem: clusterset IP range 10.255.0.0/30 (or the table of 5000) is full: 1 Services have none, first shop/web",
		"west         gateway west-gw-1 (192.0.2.10:51821), handshake never, rx 10 B, tx 20 B",
		"peering file refused, previous peers kept: peering.yaml: 1 problem(s) in peering file:\n      peers[0].name (line 2): required",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("weft status lacks %q:\n%s", w, b.String())
		}
	}
	b.Reset()
	printPeeringStatus(&b, &agent.PeeringStatus{ClusterName: "east", ClusterID: "east-1"})
	if !strings.Contains(b.String(), "not gateway-eligible; active gateway none (no live eligible node); peers in force: none") {
		t.Errorf("%q", b.String())
	}
}

func TestPeeringCheck(t *testing.T) {
	dir := t.TempDir()
	k1, k2 := testKey("gateway-one").PublicKey().String(), testKey("gateway-two").PublicKey().String()
	good := `peers:
  - name: west
    id: west
    podCIDRs: [10.245.0.0/16]
    gateways:
      - {node: gw-1, endpoint: "192.0.2.10:51821", publicKey: "` + k1 + `"}
  - name: north
    id: north
    podCIDRs: [10.246.0.0/16]
    serviceCIDRs: [10.98.0.0/16]
    gateways:
      - {node: gw-1, endpoint: "192.0.2.20:51821", publicKey: "` + k2 + `"}
`
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodPath := write("good.yaml", good)
	badPath := write("bad.yaml", strings.NewReplacer("10.246.0.0/16", "10.245.128.0/17", "name: north", "name: east", k2, k1).Replace(good))
	tests := []struct {
		name    string
		args    []string
		wantOut []string
		wantErr string
	}{
		{name: "valid", args: []string{goodPath}, wantOut: []string{"good.yaml: ok, 2 peer(s)", "north (id north, zone cluster.local): 10.246.0.0/16 10.98.0.0/16; gateways gw-1 192.0.2.20:51821"}},
		{name: "valid against local", args: []string{goodPath, "--name", "east", "--id", "east", "--pod-cidr", "10.244.0.0/16", "--service-cidr", "10.96.0.0/16"},
			wantOut: []string{"ok, 2 peer(s)"}},
		{name: "overlaps local", args: []string{goodPath, "--name", "east", "--service-cidr", "10.98.0.0/24"},
			wantOut: []string{`peers[1].serviceCIDRs[0] (line 10): service CIDR 10.98.0.0/16 of cluster "north" (peers[1].serviceCIDRs[0]) overlaps this cluster's ("east") service CIDR 10.98.0.0/24`},
			wantErr: "1 problem(s)"},
		{name: "every problem, one per line", args: []string{badPath, "--name", "east"},
			wantOut: []string{
				`bad.yaml: peers[1].name (line 7): cluster "east" has this cluster's own name`,
				`bad.yaml: peers[1].podCIDRs[0] (line 9): pod CIDR 10.245.128.0/17 of cluster "east" (peers[1].podCIDRs[0]) overlaps pod CIDR 10.245.0.0/16 of cluster "west"`,
				`bad.yaml: peers[1].gateways[0].publicKey (line 12): cluster "east", gateway "gw-1": public key is also that of gateway "gw-1" of cluster "west"`,
			},
			wantErr: "3 problem(s)"},
		{name: "bad local flag", args: []string{goodPath, "--pod-cidr", "ten"}, wantErr: `--pod-cidr: "ten" is not a CIDR`},
		{name: "unknown field", args: []string{write("typo.yaml", "peers:\n  - nmae: x\n")}, wantErr: "peers[0].nmae (line 2): field nmae not found"},
		{name: "missing file", args: []string{filepath.Join(dir, "nope.yaml")}, wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runPeering(t, append([]string{"check"}, tt.args...)...)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v\n%s", err, out)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q\n%s", err, tt.wantErr, out)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
