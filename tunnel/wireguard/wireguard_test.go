package wireguard

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftnet/weft/tunnel"
	"github.com/weftnet/weft/tunnel/internal/dataplane"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "wireguard.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || k2 != k1 {
		t.Errorf("second load: key changed or error %v", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.key")
	os.WriteFile(bad, []byte("not a key\n"), 0o600)
	_, err = LoadOrCreateKey(bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad key file: error %v, want one naming %s", err, bad)
	}
	if b, _ := os.ReadFile(bad); string(b) != "not a key\n" {
		t.Error("bad key file was overwritten")
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		cfg  tunnel.Config
		want string
	}{
		{tunnel.Config{Port: 70000}, "field Port"},
		{tunnel.Config{Port: -1}, "field Port"},
		{tunnel.Config{Interface: "a-very-long-interface-name"}, "field Interface"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want error with %q", tc.cfg, err, tc.want)
		}
	}
	b, err := New(tunnel.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if b.Name() != "wireguard" || b.Overhead() != 60 {
		t.Errorf("Name %q Overhead %d", b.Name(), b.Overhead())
	}
	if overhead(netip.MustParseAddr("fd00::1")) != 80 {
		t.Error("IPv6 underlay overhead is not 80")
	}
	if err := b.Apply(t.Context(), nil); err == nil {
		t.Error("Apply before Setup succeeded")
	}
}

// TestSync drives the plan → peers + routes step against fakes: peers and
// routes appear, drift is repaired, our own key is never a peer, departed
// peers go.
func TestSync(t *testing.T) {
	self, _ := wgtypes.GeneratePrivateKey()
	other, _ := wgtypes.GeneratePrivateKey()
	routes := &dataplane.FakeRoutes{}
	wg := dataplane.NewFakeWireGuard("weft0")
	b := &Backend{
		name: "weft0", port: 51820, log: testLogger(t), routes: routes, wg: wg, key: self, linkIndex: 7,
		local: tunnel.Local{
			Name: "a", UnderlayIP: netip.MustParseAddr("192.168.0.1"),
			PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("10.244.1.1"),
		},
	}
	peers := []tunnel.Peer{
		{Name: "b", UnderlayIP: netip.MustParseAddr("192.168.0.2"), PublicKey: other.PublicKey().String(), PodCIDR: netip.MustParsePrefix("10.244.2.0/24")},
		{Name: "impostor", UnderlayIP: netip.MustParseAddr("192.168.0.3"), PublicKey: self.PublicKey().String(), PodCIDR: netip.MustParsePrefix("10.244.3.0/24")},
	}
	check := func(what string, nPeers, nRoutes int) {
		t.Helper()
		dev, _ := wg.Device("weft0")
		if len(dev.Peers) != nPeers || len(routes.Routes) != nRoutes {
			t.Errorf("%s: %d peers, %d routes; want %d, %d", what, len(dev.Peers), len(routes.Routes), nPeers, nRoutes)
		}
		for _, p := range dev.Peers {
			if p.PublicKey == self.PublicKey() {
				t.Errorf("%s: own key configured as a peer", what)
			}
		}
	}
	if err := b.syncLocked(peers); err != nil {
		t.Fatal(err)
	}
	check("first apply", 1, 1)
	if r := routes.Routes[0]; r.Dst.String() != "10.244.2.0/24" || r.LinkIndex != 7 || r.Src != b.local.Gateway {
		t.Errorf("route = %v", r)
	}
	wg.Devices["weft0"].Peers = nil
	routes.Routes = nil
	if err := b.syncLocked(peers); err != nil {
		t.Fatal(err)
	}
	check("after drift", 1, 1)
	if err := b.syncLocked(nil); err != nil {
		t.Fatal(err)
	}
	check("after departure", 0, 0)
}

// removals records the peers each ConfigureDevice call removes.
type removals struct {
	*dataplane.FakeWireGuard
	removed []wgtypes.Key
}

func (r *removals) ConfigureDevice(name string, cfg wgtypes.Config) error {
	for _, pc := range cfg.Peers {
		if pc.Remove {
			r.removed = append(r.removed, pc.PublicKey)
		}
	}
	return r.FakeWireGuard.ConfigureDevice(name, cfg)
}

// TestSyncRestartedPeer: on a kernel device, a peer that publishes a new
// Boot is taken out and put back (which drops its session) by the node whose
// key sorts first, and only then; a first Boot or an unchanged one does
// nothing.
func TestSyncRestartedPeer(t *testing.T) {
	for _, selfFirst := range []bool{true, false} {
		k1, _ := wgtypes.GeneratePrivateKey()
		k2, _ := wgtypes.GeneratePrivateKey()
		self, other := k1, k2
		pub1, pub2 := k1.PublicKey(), k2.PublicKey()
		if (string(pub1[:]) < string(pub2[:])) != selfFirst {
			self, other = k2, k1
		}
		wg := &removals{FakeWireGuard: dataplane.NewFakeWireGuard("weft0")}
		b := &Backend{
			name: "weft0", port: 51820, log: testLogger(t), routes: &dataplane.FakeRoutes{}, wg: wg, key: self, linkIndex: 7,
			local: tunnel.Local{
				Name: "a", UnderlayIP: netip.MustParseAddr("192.168.0.1"),
				PodCIDR: netip.MustParsePrefix("10.244.1.0/24"), Gateway: netip.MustParseAddr("10.244.1.1"),
			},
		}
		peer := tunnel.Peer{Name: "b", UnderlayIP: netip.MustParseAddr("192.168.0.2"), PublicKey: other.PublicKey().String(),
			PodCIDR: netip.MustParsePrefix("10.244.2.0/24"), Boot: 1}
		for _, boot := range []uint32{1, 1, 2} {
			peer.Boot = boot
			if err := b.syncLocked([]tunnel.Peer{peer}); err != nil {
				t.Fatal(err)
			}
		}
		want := 0
		if selfFirst {
			want = 1
		}
		if len(wg.removed) != want || want == 1 && wg.removed[0] != other.PublicKey() {
			t.Errorf("self sorts first %v: removed %v, want %d removal of the restarted peer", selfFirst, wg.removed, want)
		}
		dev, _ := wg.Device("weft0")
		if len(dev.Peers) != 1 || dev.Peers[0].Endpoint == nil || len(dev.Peers[0].AllowedIPs) != 1 {
			t.Errorf("self sorts first %v: peers after the restart %+v, want the peer back in full", selfFirst, dev.Peers)
		}
	}
}
