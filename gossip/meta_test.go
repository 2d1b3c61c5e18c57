package gossip

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMetaRoundTrip(t *testing.T) {
	mac, _ := net.ParseMAC("02:42:ac:11:00:02")
	tests := []struct {
		name string
		m    Meta
	}{
		{"empty", Meta{}},
		{"wireguard", Meta{
			ClusterID: "prod-eu", UnderlayIP: netip.MustParseAddr("192.168.1.10"), TunnelPort: 51820,
			PublicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
			PodCIDR:   pfx("10.244.7.0/24"), ClaimedAt: time.Unix(1700000000, 123456789), Boot: 0x9e3779b9,
		}},
		{"vxlan static v6", Meta{
			ClusterID: "c", UnderlayIP: netip.MustParseAddr("2001:db8::1"), TunnelPort: 4789,
			VTEPMAC: mac, PodCIDR: pfx("fd00:10:0:7::/64"), ClaimedAt: time.Unix(5, 0), Static: true,
		}},
		{"peering gateway", Meta{
			ClusterID: "east", UnderlayIP: netip.MustParseAddr("192.168.1.11"), TunnelPort: 51820,
			PodCIDR: pfx("10.244.8.0/24"), GatewayEligible: true, GatewayActive: true,
		}},
		{"eligible standby", Meta{ClusterID: "east", GatewayEligible: true}},
		{"max sizes", Meta{
			ClusterID: strings.Repeat("c", 255), PublicKey: strings.Repeat("k", 200),
			UnderlayIP: netip.MustParseAddr("::ffff:10.0.0.1"), TunnelPort: 65535,
			VTEPMAC: make(net.HardwareAddr, 20), PodCIDR: pfx("0.0.0.0/0"), ClaimedAt: time.Unix(0, -5),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := encodeMeta(tt.m)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if len(b) > metaMaxSize {
				t.Fatalf("encoded %d bytes", len(b))
			}
			got, err := decodeMeta(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !metaEqual(got, tt.m) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tt.m)
			}
		})
	}
}

// metaEqual compares Meta values, times by instant.
func metaEqual(a, b Meta) bool {
	if !a.ClaimedAt.Equal(b.ClaimedAt) {
		return false
	}
	a.ClaimedAt, b.ClaimedAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func TestMetaCompact(t *testing.T) {
	b, err := encodeMeta(Meta{
		ClusterID: "prod", UnderlayIP: netip.MustParseAddr("192.168.1.10"), TunnelPort: 51820,
		PublicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
		PodCIDR:   pfx("10.244.7.0/24"), ClaimedAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 80 {
		t.Errorf("typical wireguard meta is %d bytes; expected under 80", len(b))
	}
}

func TestEncodeMetaRejects(t *testing.T) {
	tests := []struct {
		name string
		m    Meta
		want string
	}{
		{"long cluster id", Meta{ClusterID: strings.Repeat("c", 256)}, "ClusterID"},
		{"long key", Meta{PublicKey: strings.Repeat("k", 256)}, "PublicKey"},
		{"long mac", Meta{VTEPMAC: make(net.HardwareAddr, 21)}, "VTEPMAC"},
		{"port", Meta{TunnelPort: 70000}, "TunnelPort"},
		{"negative port", Meta{TunnelPort: -1}, "TunnelPort"},
		{"zone", Meta{UnderlayIP: netip.MustParseAddr("fe80::1%eth0")}, "UnderlayIP"},
		{"unmasked", Meta{PodCIDR: netip.MustParsePrefix("10.0.0.1/24")}, "PodCIDR"},
		{"too big", Meta{ClusterID: strings.Repeat("c", 255), PublicKey: strings.Repeat("k", 255)}, "limit 512"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := encodeMeta(tt.m)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestDecodeMetaBad(t *testing.T) {
	good, err := encodeMeta(Meta{ClusterID: "c", UnderlayIP: netip.MustParseAddr("10.0.0.1"),
		PodCIDR: pfx("10.244.1.0/24"), ClaimedAt: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"version only", []byte{1}},
		{"version 0", append([]byte{0}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"no boot in v2", good[:len(good)-4]},
		{"trailing byte in v2", append(append([]byte{}, good...), 0)},
		{"trailing byte in v1", append(append([]byte{1}, good[1:len(good)-4]...), 0)},
		{"string past end", []byte{1, 0, 200, 'a'}},
		{"bad address length", []byte{1, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0, 0}},
		{"prefix too long", []byte{1, 0, 0, 0, 0, 0, 0, 0, 4, 10, 0, 0, 0, 33, 0}},
		{"prefix not masked", []byte{1, 0, 0, 0, 0, 0, 0, 0, 4, 10, 0, 0, 1, 16, 0}},
		{"mac too long", append([]byte{1, 0, 0, 0, 0, 0, 0, 21}, make([]byte, 21+2)...)},
		{"varint overflow", []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"msgpack garbage", []byte("\x82\xa4name\xa3foo")},
		{"over MetaMaxSize", append([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 510)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := decodeMeta(tt.b); err == nil {
				t.Fatalf("decodeMeta(%x) = %+v, want error", tt.b, m)
			}
		})
	}
}

func TestDecodeMetaFutureVersion(t *testing.T) {
	b, err := encodeMeta(Meta{ClusterID: "c", PodCIDR: pfx("10.244.1.0/24"), ClaimedAt: time.Unix(1, 0), Boot: 7})
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 3
	b = append(b, 0xde, 0xad) // fields a later version appended
	m, err := decodeMeta(b)
	if err != nil {
		t.Fatalf("version 3 with extra fields: %v", err)
	}
	if m.ClusterID != "c" || m.PodCIDR != pfx("10.244.1.0/24") || m.Boot != 7 {
		t.Fatalf("decoded %+v", m)
	}
}

// TestDecodeMetaVersion1: what an agent of version 1 publishes (no Boot)
// still decodes, with Boot 0.
func TestDecodeMetaVersion1(t *testing.T) {
	want := Meta{ClusterID: "c", UnderlayIP: netip.MustParseAddr("10.0.0.1"), TunnelPort: 51820,
		PublicKey: "k", PodCIDR: pfx("10.244.1.0/24"), ClaimedAt: time.Unix(1, 0)}
	b, err := encodeMeta(want)
	if err != nil {
		t.Fatal(err)
	}
	v1 := append([]byte{1}, b[1:len(b)-4]...) // version 1 ends after claimedAt
	got, err := decodeMeta(v1)
	if err != nil {
		t.Fatalf("version 1: %v", err)
	}
	if !metaEqual(got, want) {
		t.Fatalf("version 1 decoded as %+v, want %+v", got, want)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{
		{},
		{ClusterID: "c", UnderlayIP: netip.MustParseAddr("10.0.0.1"), TunnelPort: 51820, PublicKey: "k",
			PodCIDR: pfx("10.244.1.0/24"), ClaimedAt: time.Unix(1, 2), Static: true},
		{UnderlayIP: netip.MustParseAddr("2001:db8::1"), VTEPMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, PodCIDR: pfx("fd00::/64")},
	} {
		b, err := encodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{2, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode, within the size limit, to the
		// same value.
		enc, err := encodeMeta(m)
		if err != nil {
			t.Fatalf("decoded meta %+v does not re-encode: %v", m, err)
		}
		m2, err := decodeMeta(enc)
		if err != nil {
			t.Fatalf("re-encoded meta does not decode: %v", err)
		}
		if !metaEqual(m, m2) {
			t.Fatalf("round trip changed meta:\n%+v\n%+v", m, m2)
		}
	})
}
