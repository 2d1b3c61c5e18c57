package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// Meta is what a node publishes about itself in gossip.
type Meta struct {
	Name       string           // memberlist node name (not encoded: taken from memberlist)
	ClusterID  string           // nodes of other clusters are ignored
	UnderlayIP netip.Addr       // address other nodes reach this node at
	TunnelPort int              // WireGuard listen port / VXLAN port
	PublicKey  string           // WireGuard public key, base64; "" for vxlan
	VTEPMAC    net.HardwareAddr // VXLAN device MAC; nil for wireguard
	PodCIDR    netip.Prefix     // the lease; invalid until claimed
	ClaimedAt  time.Time        // when this lease was first claimed (persisted with it)
	Static     bool             // lease assigned externally; never re-claimed

	// Boot tells one run of the node's agent from the next: chosen at
	// random when its gossip node is created, so a change means the node
	// restarted and its tunnel sessions are gone with the old process.
	// 0: not published (an agent of meta version 1).
	Boot uint32

	// Multi-cluster peering (peering.ElectGateway reads these).
	GatewayEligible bool // this node may be its cluster's peering gateway
	GatewayActive   bool // this node is acting as the active gateway now
}

// clone returns a deep copy of m.
func (m Meta) clone() Meta {
	if m.VTEPMAC != nil {
		m.VTEPMAC = append(net.HardwareAddr(nil), m.VTEPMAC...)
	}
	return m
}

// Wire format, version 2 (all lengths are single bytes unless noted):
//
//	version(1) flags(1: static, gateway eligible, gateway active)
//	len clusterID
//	len(0|4|16) underlayIP
//	tunnelPort(2, big endian)
//	len publicKey
//	len vtepMAC
//	len(0|4|16) podCIDR.addr [bits(1) if len > 0]
//	claimedAt (signed varint, Unix nanoseconds; 0 = unset)
//	boot (4, big endian)             -- version 2 on
//
// The node name is not encoded: memberlist already carries it, and taking it
// from there means a node cannot publish a lease under another node's name.
// A decoder accepts any version >= 1 and ignores bytes after the fields it
// knows when the version is higher than its own, so later versions can
// append fields without breaking a rolling upgrade (a version-1 agent reads
// a version-2 meta without its boot). Unknown flag bits are ignored.
const (
	metaVersion    byte = 2
	flagStatic     byte = 1 << 0
	flagGatewayOK  byte = 1 << 1 // GatewayEligible
	flagGatewayOn  byte = 1 << 2 // GatewayActive
	maxMetaString       = 255
	maxMACLen           = 20 // InfiniBand is the longest hardware address
	metaMaxSize         = memberlist.MetaMaxSize
	metaVersionMin byte = 1
)

var errMetaTruncated = errors.New("truncated")

// encodeMeta returns the wire form of m. It fails if a field cannot be
// encoded or the result exceeds memberlist's MetaMaxSize.
func encodeMeta(m Meta) ([]byte, error) {
	if len(m.ClusterID) > maxMetaString {
		return nil, fmt.Errorf("ClusterID is %d bytes, limit %d", len(m.ClusterID), maxMetaString)
	}
	if len(m.PublicKey) > maxMetaString {
		return nil, fmt.Errorf("PublicKey is %d bytes, limit %d", len(m.PublicKey), maxMetaString)
	}
	if len(m.VTEPMAC) > maxMACLen {
		return nil, fmt.Errorf("VTEPMAC is %d bytes, limit %d", len(m.VTEPMAC), maxMACLen)
	}
	if m.TunnelPort < 0 || m.TunnelPort > 65535 {
		return nil, fmt.Errorf("TunnelPort %d out of range", m.TunnelPort)
	}
	if m.UnderlayIP.Zone() != "" {
		return nil, fmt.Errorf("UnderlayIP %s has a zone", m.UnderlayIP)
	}
	if m.PodCIDR.IsValid() && m.PodCIDR != m.PodCIDR.Masked() {
		return nil, fmt.Errorf("PodCIDR %s is not a network address", m.PodCIDR)
	}
	b := make([]byte, 0, 64+len(m.ClusterID)+len(m.PublicKey))
	var flags byte
	if m.Static {
		flags |= flagStatic
	}
	if m.GatewayEligible {
		flags |= flagGatewayOK
	}
	if m.GatewayActive {
		flags |= flagGatewayOn
	}
	b = append(b, metaVersion, flags)
	b = appendString(b, m.ClusterID)
	b = appendAddr(b, m.UnderlayIP)
	b = binary.BigEndian.AppendUint16(b, uint16(m.TunnelPort))
	b = appendString(b, m.PublicKey)
	b = appendString(b, string(m.VTEPMAC))
	b = appendAddr(b, m.PodCIDR.Addr())
	if m.PodCIDR.IsValid() {
		b = append(b, byte(m.PodCIDR.Bits()))
	}
	var ns int64
	if !m.ClaimedAt.IsZero() {
		ns = m.ClaimedAt.UnixNano()
	}
	b = binary.AppendVarint(b, ns)
	b = binary.BigEndian.AppendUint32(b, m.Boot)
	if len(b) > metaMaxSize {
		return nil, fmt.Errorf("encoded meta is %d bytes, limit %d", len(b), metaMaxSize)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, 0)
	}
	raw := a.AsSlice()
	b = append(b, byte(len(raw)))
	return append(b, raw...)
}

// decodeMeta parses the wire form. It never panics on arbitrary input.
// The returned Meta has no Name; the caller fills it from memberlist.
func decodeMeta(b []byte) (Meta, error) {
	if len(b) > metaMaxSize {
		return Meta{}, fmt.Errorf("malformed meta: %d bytes, limit %d", len(b), metaMaxSize)
	}
	var m Meta
	r := metaReader{b: b}
	version := r.byte()
	flags := r.byte()
	if r.err != nil {
		return Meta{}, fmt.Errorf("malformed meta: %w", r.err)
	}
	if version < metaVersionMin {
		return Meta{}, fmt.Errorf("malformed meta: unsupported version %d", version)
	}
	m.Static = flags&flagStatic != 0
	m.GatewayEligible = flags&flagGatewayOK != 0
	m.GatewayActive = flags&flagGatewayOn != 0
	m.ClusterID = string(r.bytes())
	m.UnderlayIP = r.addr()
	m.TunnelPort = int(r.uint16())
	m.PublicKey = string(r.bytes())
	if mac := r.bytes(); len(mac) > 0 {
		if len(mac) > maxMACLen {
			return Meta{}, fmt.Errorf("malformed meta: VTEP MAC is %d bytes", len(mac))
		}
		m.VTEPMAC = net.HardwareAddr(append([]byte(nil), mac...))
	}
	if a := r.addr(); a.IsValid() {
		bits := int(r.byte())
		if r.err == nil {
			if bits > a.BitLen() {
				return Meta{}, fmt.Errorf("malformed meta: prefix length %d for %s", bits, a)
			}
			p := netip.PrefixFrom(a, bits)
			if p != p.Masked() {
				return Meta{}, fmt.Errorf("malformed meta: PodCIDR %s is not a network address", p)
			}
			m.PodCIDR = p
		}
	}
	ns := r.varint()
	if r.err != nil {
		return Meta{}, fmt.Errorf("malformed meta: %w", r.err)
	}
	if ns != 0 {
		m.ClaimedAt = time.Unix(0, ns)
	}
	if version >= 2 {
		m.Boot = r.uint32()
		if r.err != nil {
			return Meta{}, fmt.Errorf("malformed meta: %w", r.err)
		}
	}
	if version <= metaVersion && r.off != len(b) {
		return Meta{}, fmt.Errorf("malformed meta: %d trailing bytes", len(b)-r.off)
	}
	return m, nil
}

// metaReader reads fields in order; after the first error every read
// returns a zero value and err stays set.
type metaReader struct {
	b   []byte
	off int
	err error
}

func (r *metaReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = errMetaTruncated
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *metaReader) byte() byte {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *metaReader) uint16() uint16 {
	if s := r.take(2); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (r *metaReader) uint32() uint32 {
	if s := r.take(4); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

func (r *metaReader) bytes() []byte {
	return r.take(int(r.byte()))
}

func (r *metaReader) addr() netip.Addr {
	n := int(r.byte())
	if r.err != nil || n == 0 {
		return netip.Addr{}
	}
	if n != 4 && n != 16 {
		r.err = fmt.Errorf("address length %d", n)
		return netip.Addr{}
	}
	a, _ := netip.AddrFromSlice(r.take(n))
	return a
}

func (r *metaReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.err = errMetaTruncated
		return 0
	}
	r.off += n
	return v
}
