package agent

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func peeringConfig(t *testing.T, peeringYAML string) (Config, error) {
	t.Helper()
	c, err := ParseConfig(strings.NewReader("nodeName: n1\nclusterID: east-1\ngossip: {keyFile: /k}\n" + peeringYAML))
	if err != nil {
		t.Fatal(err)
	}
	return c, c.Complete()
}

func TestPeeringConfig(t *testing.T) {
	c, err := peeringConfig(t, "")
	if err != nil || c.Peering.File != "" || c.Peering.Port != 0 {
		t.Fatalf("peering off by default: %+v, %v", c.Peering, err)
	}
	c, err = peeringConfig(t, "peering: {file: /etc/weft/peering.yaml}\n")
	if err != nil {
		t.Fatal(err)
	}
	want := PeeringConfig{File: "/etc/weft/peering.yaml", ClusterName: "east-1", Port: DefaultPeeringPort, KeyFile: DefaultPeeringKeyFile, Interface: DefaultPeeringInterface}
	if !reflect.DeepEqual(c.Peering, want) {
		t.Errorf("defaults %+v, want %+v", c.Peering, want)
	}

	tests := []struct{ yaml, want string }{
		{"peering: {file: /p, clusterName: East}\n", `peering.clusterName: "East" is not a DNS label`},
		{"peering: {file: /p, clusterName: east}\n", ""}, // the id is checked below
		{"peering: {file: /p, serviceCIDRs: [10.96.0.0/12, ten]}\n", `peering.serviceCIDRs[1]: "ten" is not a CIDR`},
		{"peering: {file: /p, serviceCIDRs: [10.96.0.1/12]}\n", `peering.serviceCIDRs[0]: 10.96.0.1/12 has host bits set`},
		{"peering: {file: /p, serviceCIDRs: [10.244.0.0/20]}\n", `peering.serviceCIDRs[0]: 10.244.0.0/20 overlaps clusterCIDR 10.244.0.0/16`},
		{"peering: {file: /p, port: 70000}\n", `peering.port: 70000 is out of range`},
		{"peering: {file: /p, gateway: true, port: 51820}\n", `peering.port: 51820 is also tunnel.port`},
		{"peering: {file: /p, gatway: true}\n", `peering.gatway (line 4): field gatway not found`},
		{"peering: {file: /p, interface: weft0}\n", `peering.interface: "weft0" is also tunnel.interface`},
	}
	for _, tt := range tests {
		c, err := ParseConfig(strings.NewReader("nodeName: n1\nclusterID: east-1\ngossip: {keyFile: /k}\n" + tt.yaml))
		if err == nil {
			err = c.Complete()
		}
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%q: error %v, want %q", tt.yaml, err, tt.want)
		}
	}
	c, err = ParseConfig(strings.NewReader("nodeName: n1\nclusterID: East_1\ngossip: {keyFile: /k}\npeering: {file: /p, clusterName: east}\n"))
	if err == nil {
		err = c.Complete()
	}
	if err == nil || !strings.Contains(err.Error(), `clusterID: "East_1" must be a DNS label when peering is on`) {
		t.Errorf("bad clusterID: %v", err)
	}
}

func TestPeeringStateReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "peering.yaml")
	keyFile := filepath.Join(dir, "keys", "peering.key")
	var remote wgtypes.Key
	copy(remote[:], "west-gateway-key")
	good := "peers:\n  - name: west\n    id: west-1\n    podCIDRs: [10.245.0.0/16]\n    gateways:\n" +
		"      - {node: gw, endpoint: \"192.0.2.1:51821\", publicKey: \"" + remote.PublicKey().String() + "\"}\n"
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := peeringConfig(t, "peering: {file: "+file+", clusterName: east, gateway: true, keyFile: "+keyFile+", serviceCIDRs: [10.96.0.0/16]}\n")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := startPeering(&c, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := ps.snapshot()
	if st.ClusterName != "east" || st.ClusterID != "east-1" || !reflect.DeepEqual(st.PodCIDRs, []string{"10.244.0.0/16"}) ||
		!reflect.DeepEqual(st.ServiceCIDRs, []string{"10.96.0.0/16"}) || st.Zone != "cluster.local" || !st.Gateway || st.Port != DefaultPeeringPort ||
		!reflect.DeepEqual(st.Peers, []string{"west"}) || st.LastError != "" {
		t.Errorf("status after start: %+v", st)
	}
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("peering key not created 0600: %v", err)
	}
	raw, _ := os.ReadFile(keyFile)
	priv, err := wgtypes.ParseKey(strings.TrimSpace(string(raw)))
	if err != nil || st.PublicKey != priv.PublicKey().String() {
		t.Errorf("status public key %q does not match the key file (%v)", st.PublicKey, err)
	}

	// A refused file keeps the previous peers and says why.
	if err := os.WriteFile(file, []byte(strings.Replace(good, "10.245.0.0/16", "10.96.128.0/17", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	ps.reload(time.Now())
	st2 := ps.snapshot()
	if !reflect.DeepEqual(st2.Peers, []string{"west"}) || !strings.Contains(st2.LastError, `overlaps this cluster's ("east") service CIDR 10.96.0.0/16`) {
		t.Errorf("after a bad edit: peers %v, error %q", st2.Peers, st2.LastError)
	}
	if len(st.Peers) != 1 || st.LastError != "" {
		t.Errorf("an earlier snapshot changed: %+v", st)
	}
	if err := os.WriteFile(file, []byte("peers: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ps.reload(time.Now())
	if st3 := ps.snapshot(); len(st3.Peers) != 0 || st3.LastError != "" {
		t.Errorf("after emptying: %+v", st3)
	}

	// Same key on restart.
	ps2, err := startPeering(&c, nil)
	if err != nil || ps2.snapshot().PublicKey != st.PublicKey {
		t.Errorf("restart changed the peering key: %v", err)
	}
	c.Peering.File = ""
	if ps, err := startPeering(&c, nil); ps != nil || err != nil {
		t.Errorf("peering off: %v, %v", ps, err)
	}
}
