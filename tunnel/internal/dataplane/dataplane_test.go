package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/weftnet/weft/tunnel"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func route(dst string, link int) tunnel.Route {
	return tunnel.Route{Dst: netip.MustParsePrefix(dst), Src: netip.MustParseAddr("10.244.1.1"), LinkIndex: link}
}

func TestSyncRoutesRepairsAndRemoves(t *testing.T) {
	other := route("10.99.0.0/16", 9) // another device: never touched
	f := &FakeRoutes{Routes: []tunnel.Route{route("10.244.3.0/24", 4), other}}
	desired := []tunnel.Route{route("10.244.2.0/24", 0)}
	if err := SyncRoutes(f, 4, desired); err != nil {
		t.Fatal(err)
	}
	want := []tunnel.Route{other, route("10.244.2.0/24", 4)}
	if !reflect.DeepEqual(f.Routes, want) {
		t.Fatalf("routes = %v, want %v", f.Routes, want)
	}
	calls := f.Calls
	if err := SyncRoutes(f, 4, desired); err != nil || f.Calls != calls {
		t.Errorf("second sync made %d changes (err %v), want none", f.Calls-calls, err)
	}
	f.Routes = []tunnel.Route{other} // deleted by hand
	if err := SyncRoutes(f, 4, desired); err != nil || !reflect.DeepEqual(f.Routes, want) {
		t.Errorf("after drift: routes = %v, err %v", f.Routes, err)
	}
	f.Err = errors.New("netlink down")
	if err := SyncRoutes(f, 4, desired); err == nil {
		t.Error("list error not reported")
	}
}

func TestSyncNeighborsAndFDB(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	n := tunnel.Neighbor{IP: netip.MustParseAddr("10.244.2.1"), MAC: mac}
	e := tunnel.FDBEntry{MAC: mac, Dst: netip.MustParseAddr("192.168.0.2")}
	stale := tunnel.FDBEntry{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xc}, Dst: netip.MustParseAddr("192.168.0.3")}
	f := &FakeNeighbors{FDB: map[int][]tunnel.FDBEntry{4: {stale}}}
	if err := SyncNeighbors(f, 4, []tunnel.Neighbor{n}); err != nil {
		t.Fatal(err)
	}
	if err := SyncFDB(f, 4, []tunnel.FDBEntry{e}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Neigh[4], []tunnel.Neighbor{n}) || !reflect.DeepEqual(f.FDB[4], []tunnel.FDBEntry{e}) {
		t.Fatalf("neigh %v fdb %v", f.Neigh[4], f.FDB[4])
	}
	f.FDB[4] = nil // deleted by hand
	if err := SyncFDB(f, 4, []tunnel.FDBEntry{e}); err != nil || len(f.FDB[4]) != 1 {
		t.Errorf("FDB not repaired: %v %v", f.FDB[4], err)
	}
	if err := SyncNeighbors(f, 4, nil); err != nil || len(f.Neigh[4]) != 0 {
		t.Errorf("neighbour not removed: %v %v", f.Neigh[4], err)
	}
}

func TestSyncWGPeers(t *testing.T) {
	var kb, kc wgtypes.Key
	kb[0], kc[0] = 0xb, 0xc
	f := NewFakeWireGuard("wg0")
	f.Devices["wg0"].Peers = []wgtypes.Peer{{PublicKey: kc}} // departed node
	desired := []tunnel.WGPeer{{
		PublicKey: kb, Endpoint: netip.MustParseAddrPort("192.168.0.2:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.244.2.0/24")},
	}}
	last, err := SyncWGPeers(f, "wg0", desired, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := f.Device("wg0")
	if len(dev.Peers) != 1 || dev.Peers[0].PublicKey != kb || PeerFromWG(dev.Peers[0]).Endpoint != desired[0].Endpoint ||
		!reflect.DeepEqual(PeerFromWG(dev.Peers[0]).AllowedIPs, desired[0].AllowedIPs) {
		t.Fatalf("peers = %+v", dev.Peers)
	}
	calls := f.Calls
	if _, err := SyncWGPeers(f, "wg0", desired, last); err != nil || f.Calls != calls {
		t.Errorf("in-sync call configured the device (err %v)", err)
	}
	if _, err := SyncWGPeers(f, "nope", desired, last); err == nil {
		t.Error("missing device not reported")
	}
}

func TestPrefixFromIPNet(t *testing.T) {
	for _, s := range []string{"10.244.2.0/24", "fd00:1::/64", "0.0.0.0/0"} {
		p := netip.MustParsePrefix(s)
		got, ok := PrefixFromIPNet(IPNet(p))
		if !ok || got != p {
			t.Errorf("%s → %v", s, got)
		}
	}
	mapped := &net.IPNet{IP: net.ParseIP("10.1.2.0"), Mask: net.CIDRMask(120, 128)}
	if got, _ := PrefixFromIPNet(mapped); got.String() != "10.1.2.0/24" {
		t.Errorf("v4-mapped /120 → %v", got)
	}
}

func TestWithSocket(t *testing.T) {
	f := &FakeRoutes{}
	if got, done := withSocket[Routes](f); got != Routes(f) {
		t.Errorf("a fake came back as %T", got)
	} else {
		done()
	}
	got, done := withSocket[Routes](Netlink{})
	defer done()
	if n, ok := got.(Netlink); !ok || n.h == nil {
		t.Errorf("Netlink was not bound to a socket: %#v", got)
	}
}

func TestPeersToWarm(t *testing.T) {
	self := wgtypes.Key{5}
	low, high, had, ka := wgtypes.Key{1}, wgtypes.Key{9}, wgtypes.Key{8}, wgtypes.Key{7}
	dev := &wgtypes.Device{Peers: []wgtypes.Peer{{PublicKey: had}}}
	desired := []tunnel.WGPeer{{PublicKey: low}, {PublicKey: high}, {PublicKey: had}, {PublicKey: ka, PersistentKeepalive: time.Second}}
	got := PeersToWarm(self, dev, desired)
	if len(got) != 1 || got[0] != high {
		t.Errorf("warm %v, want only the new peer whose key sorts after ours (not one we had, one with a keepalive, or a lower key)", got)
	}
	// Of two nodes, exactly one warms the other.
	if a, b := PeersToWarm(low, &wgtypes.Device{}, []tunnel.WGPeer{{PublicKey: high}}), PeersToWarm(high, &wgtypes.Device{}, []tunnel.WGPeer{{PublicKey: low}}); len(a)+len(b) != 1 {
		t.Errorf("both or neither side warms: %v %v", a, b)
	}
}

func TestRestarted(t *testing.T) {
	self := wgtypes.Key{5}
	up, same, unknown, old, low, gone := wgtypes.Key{9}, wgtypes.Key{8}, wgtypes.Key{7}, wgtypes.Key{6}, wgtypes.Key{1}, wgtypes.Key{10}
	dev := &wgtypes.Device{Peers: []wgtypes.Peer{{PublicKey: up}, {PublicKey: same}, {PublicKey: unknown}, {PublicKey: old}, {PublicKey: low}}}
	last := map[wgtypes.Key]uint32{up: 1, same: 1, old: 1, low: 1, gone: 1}
	desired := []tunnel.WGPeer{
		{PublicKey: up, Boot: 2},      // restarted
		{PublicKey: same, Boot: 1},    // did not
		{PublicKey: unknown, Boot: 3}, // first seen: nothing to compare
		{PublicKey: old, Boot: 0},     // stopped publishing one (older agent)
		{PublicKey: low, Boot: 2},     // restarted, but its key sorts first: it starts the session
		{PublicKey: gone, Boot: 2},    // restarted, not on the device: a new peer (PeersToWarm)
	}
	if got := Restarted(self, dev, desired, last); len(got) != 1 || got[0] != up {
		t.Errorf("restarted %v, want only %v", got, up)
	}
	if got := Restarted(self, dev, desired, nil); got != nil {
		t.Errorf("restarted %v with no earlier boots, want none", got)
	}
	// Of two nodes, exactly one starts the session with the other.
	a, b := Restarted(low, &wgtypes.Device{Peers: []wgtypes.Peer{{PublicKey: up}}}, []tunnel.WGPeer{{PublicKey: up, Boot: 2}}, map[wgtypes.Key]uint32{up: 1}),
		Restarted(up, &wgtypes.Device{Peers: []wgtypes.Peer{{PublicKey: low}}}, []tunnel.WGPeer{{PublicKey: low, Boot: 2}}, map[wgtypes.Key]uint32{low: 1})
	if len(a)+len(b) != 1 {
		t.Errorf("both or neither side restarts the session: %v %v", a, b)
	}
}

func TestBootsOf(t *testing.T) {
	k1, k2 := wgtypes.Key{1}, wgtypes.Key{2}
	desired := []tunnel.WGPeer{{PublicKey: k1, Boot: 7}, {PublicKey: k2}}
	m := BootsOf(desired, nil)
	if len(m) != 2 || m[k1] != 7 || m[k2] != 0 {
		t.Fatalf("BootsOf = %v", m)
	}
	if again := BootsOf(desired, m); reflect.ValueOf(again).Pointer() != reflect.ValueOf(m).Pointer() {
		t.Error("an unchanged peer set built a new map")
	}
	desired[0].Boot = 8
	if next := BootsOf(desired, m); next[k1] != 8 || m[k1] != 7 {
		t.Errorf("after a restart: new %v, old %v (must not be changed in place)", next, m)
	}
	if next := BootsOf(desired[:1], m); len(next) != 1 {
		t.Errorf("a departed peer stays: %v", next)
	}
}

func TestWarmPeersLeavesKeepaliveOff(t *testing.T) {
	wg := NewFakeWireGuard("wg0")
	k := wgtypes.Key{9}
	if err := wg.ConfigureDevice("wg0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: k}}}); err != nil {
		t.Fatal(err)
	}
	if err := WarmPeers(wg, "wg0", []wgtypes.Key{k}); err != nil {
		t.Fatal(err)
	}
	dev, _ := wg.Device("wg0")
	if len(dev.Peers) != 1 || dev.Peers[0].PersistentKeepaliveInterval != 0 {
		t.Errorf("after warming: %+v, want the one peer with keepalive off", dev.Peers)
	}
}
