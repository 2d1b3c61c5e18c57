package wireguard

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/tunnel/internal/nstest"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun/tuntest"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func testKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func hexKey(k wgtypes.Key) string { return hex.EncodeToString(k[:]) }

// Every field wgctrl reads, including the ones a device without traffic
// does not have (handshake, counters).
func TestParseUAPI(t *testing.T) {
	priv, pub1, pub2, psk := testKey(t), testKey(t), testKey(t), testKey(t)
	text := strings.Join([]string{
		"private_key=" + hexKey(priv),
		"listen_port=51820",
		"fwmark=7",
		"public_key=" + hexKey(pub1),
		"preshared_key=" + hexKey(psk),
		"protocol_version=1",
		"endpoint=192.0.2.1:51821",
		"last_handshake_time_sec=1700000000",
		"last_handshake_time_nsec=5",
		"tx_bytes=123",
		"rx_bytes=456",
		"persistent_keepalive_interval=25",
		"allowed_ip=10.244.1.0/24",
		"allowed_ip=fd00:1::/64",
		"public_key=" + hexKey(pub2),
		"endpoint=[2001:db8::1]:51820",
		"last_handshake_time_sec=0",
		"last_handshake_time_nsec=0",
		"allowed_ip=10.244.2.7/24", // masked, as net.ParseCIDR does
		"", "",
	}, "\n")
	got, err := parseUAPI([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	want := &wgtypes.Device{
		PrivateKey: priv, PublicKey: priv.PublicKey(), ListenPort: 51820, FirewallMark: 7,
		Peers: []wgtypes.Peer{{
			PublicKey: pub1, PresharedKey: psk, ProtocolVersion: 1,
			Endpoint:          &net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: 51821}, // 16 bytes, as wgctrl's
			LastHandshakeTime: time.Unix(1700000000, 5), TransmitBytes: 123, ReceiveBytes: 456,
			PersistentKeepaliveInterval: 25 * time.Second,
			AllowedIPs: []net.IPNet{
				{IP: net.IP{10, 244, 1, 0}, Mask: net.CIDRMask(24, 32)},
				{IP: net.ParseIP("fd00:1::"), Mask: net.CIDRMask(64, 128)},
			},
		}, {
			PublicKey:  pub2,
			Endpoint:   &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 51820},
			AllowedIPs: []net.IPNet{{IP: net.IP{10, 244, 2, 0}, Mask: net.CIDRMask(24, 32)}},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	for _, bad := range []struct{ text, want string }{
		{"listen_port\n\n", `invalid key=value line "listen_port"`},
		{"private_key=abcd\n\n", "private_key=abcd: a key is 64 hex digits, not 4"},
		{"private_key=" + strings.Repeat("zz", 32) + "\n\n", "private_key=zzzz"},
		{"listen_port=-1\n\n", "listen_port=-1: not a decimal number"},
		{"listen_port=99999999999\n\n", "out of range"},
		{"public_key=" + hexKey(pub1) + "\nendpoint=nowhere\n\n", "endpoint=nowhere"},
		{"public_key=" + hexKey(pub1) + "\nallowed_ip=10.0.0.0/33\n\n", "allowed_ip=10.0.0.0/33"},
		{"errno=22\n\n", "wguser: errno=22"},
	} {
		if _, err := parseUAPI([]byte(bad.text)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want one with %q", bad.text, err, bad.want)
		}
	}
}

// The in-process read returns what wgctrl reads over the UAPI socket,
// for a real wireguard-go device with peers of both address families.
func TestEmbeddedReadMatchesWgctrl(t *testing.T) {
	nstest.RequireRoot(t) // the UAPI socket lives in /var/run/wireguard
	name := nstest.Unique("wtu")
	tunDev := tuntest.NewChannelTUN()
	dev := device.NewDevice(tunDev.TUN(), conn.NewDefaultBind(), device.NewLogger(device.LogLevelSilent, ""))
	t.Cleanup(dev.Close)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "private_key=%s\nlisten_port=0\n", hexKey(testKey(t)))
	for i := range 50 {
		fmt.Fprintf(&cfg, "public_key=%s\n", hexKey(testKey(t)))
		if i%2 == 0 {
			fmt.Fprintf(&cfg, "endpoint=192.0.2.%d:%d\n", i+1, 51820+i)
		} else {
			fmt.Fprintf(&cfg, "endpoint=[2001:db8::%x]:51820\n", i)
		}
		// No keepalives: they would send, and the counters move between
		// the two reads.
		fmt.Fprintf(&cfg, "allowed_ip=10.%d.0.0/16\nallowed_ip=fd00:%x::/64\n", i, i)
	}
	if err := dev.IpcSet(cfg.String()); err != nil {
		t.Fatal(err)
	}
	f, err := ipc.UAPIOpen(name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ipc.UAPIListen(name, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go dev.IpcHandle(c)
		}
	}()
	client, err := wgctrl.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	want, err := client.Device(name)
	if err != nil {
		t.Fatal(err)
	}
	e := &embedded{dev: dev}
	got, err := embeddedClient{WireGuard: client, name: name, e: e}.Device(name)
	if err != nil {
		t.Fatal(err)
	}
	// The device lists its peers in map order, which differs between reads.
	for _, d := range []*wgtypes.Device{got, want} {
		slices.SortFunc(d.Peers, func(a, b wgtypes.Peer) int { return bytes.Compare(a.PublicKey[:], b.PublicKey[:]) })
	}
	if len(got.Peers) != 50 || len(want.Peers) != 50 {
		t.Fatalf("in process %d peers, wgctrl %d, want 50", len(got.Peers), len(want.Peers))
	}
	for i := range got.Peers {
		if !reflect.DeepEqual(got.Peers[i], want.Peers[i]) {
			t.Errorf("peer %d in process:\n%+v\nwgctrl:\n%+v", i, got.Peers[i], want.Peers[i])
		}
	}
	got.Peers, want.Peers = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("device in process:\n%+v\nwgctrl:\n%+v", got, want)
	}
}
