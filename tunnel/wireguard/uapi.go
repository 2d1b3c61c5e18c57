package wireguard

// Reading the embedded device in process.
//
// wgctrl reads a userspace device over its UAPI socket and parses the text
// with a line scanner, a split and two strings per line, growing the peer
// slice by doubling: at 1,000 peers about 1.2 MB of garbage per read, and
// the agent reads its device every resync. The embedded device lives in
// this process, so the backend asks it for the same text
// (IpcGetOperation) into a buffer it keeps and parses it here into the
// same wgtypes.Device that wgctrl returns, field for field. Writes still go
// through wgctrl and the socket, as wg(8)'s do.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/weftnet/weft/tunnel/internal/dataplane"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// read returns the device as wgctrl's Device would, named name.
func (e *embedded) read(name string) (*wgtypes.Device, error) {
	e.readMu.Lock()
	defer e.readMu.Unlock()
	e.text.Reset()
	if err := e.dev.IpcGetOperation(&e.text); err != nil {
		return nil, fmt.Errorf("failed to read WireGuard device %s: %w", name, err)
	}
	d, err := parseUAPI(e.text.Bytes())
	if err != nil {
		return nil, fmt.Errorf("WireGuard device %s: %w", name, err)
	}
	d.Name, d.Type = name, wgtypes.Userspace
	return d, nil
}

// embeddedClient is the backend's wgctrl client with reads of the embedded
// device served in process (embedded.read).
type embeddedClient struct {
	dataplane.WireGuard
	name string
	e    *embedded
}

func (c embeddedClient) Device(name string) (*wgtypes.Device, error) {
	if name != c.name {
		return c.WireGuard.Device(name)
	}
	return c.e.read(name)
}

// parseUAPI parses the text of a UAPI get operation: the device's
// key=value lines, then each peer's, starting at its public_key.
func parseUAPI(text []byte) (*wgtypes.Device, error) {
	d := &wgtypes.Device{}
	if n := bytes.Count(text, []byte("public_key=")); n > 0 {
		d.Peers = make([]wgtypes.Peer, 0, n)
	}
	var (
		p     *wgtypes.Peer // the peer being read; nil before the first
		hsSec int64
	)
	for len(text) > 0 {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		if len(line) == 0 {
			break // the end of the response
		}
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok {
			return nil, fmt.Errorf("invalid key=value line %q", line)
		}
		var err error
		switch key := string(k); {
		case key == "errno":
			var n int64
			if n, err = uapiInt(v); err == nil && n != 0 {
				return nil, os.NewSyscallError("read", fmt.Errorf("wguser: errno=%d", n))
			}
		case key == "public_key":
			d.Peers = append(d.Peers, wgtypes.Peer{})
			p = &d.Peers[len(d.Peers)-1]
			err = uapiKey(&p.PublicKey, v)
		case p == nil:
			switch key {
			case "private_key":
				err = uapiKey(&d.PrivateKey, v)
			case "listen_port":
				d.ListenPort, err = uapiSmallInt(v)
			case "fwmark":
				d.FirewallMark, err = uapiSmallInt(v)
			}
		default:
			switch key {
			case "preshared_key":
				err = uapiKey(&p.PresharedKey, v)
			case "endpoint":
				var ap netip.AddrPort
				if ap, err = netip.ParseAddrPort(string(v)); err == nil {
					// As net.ResolveUDPAddr gives it: 16 bytes either way.
					a := ap.Addr().As16()
					p.Endpoint = &net.UDPAddr{IP: net.IP(a[:]), Port: int(ap.Port()), Zone: ap.Addr().Zone()}
				}
			case "last_handshake_time_sec":
				hsSec, err = uapiInt(v)
			case "last_handshake_time_nsec":
				var ns int64
				// As wgctrl: never shaken hands is both zero, and a
				// zero time.Time.
				if ns, err = uapiInt(v); err == nil && hsSec > 0 && ns > 0 {
					p.LastHandshakeTime = time.Unix(hsSec, ns)
				}
			case "tx_bytes":
				p.TransmitBytes, err = uapiInt(v)
			case "rx_bytes":
				p.ReceiveBytes, err = uapiInt(v)
			case "persistent_keepalive_interval":
				var s int
				s, err = uapiSmallInt(v)
				p.PersistentKeepaliveInterval = time.Duration(s) * time.Second
			case "allowed_ip":
				var pfx netip.Prefix
				if pfx, err = netip.ParsePrefix(string(v)); err == nil {
					p.AllowedIPs = append(p.AllowedIPs, ipNetOf(pfx))
				}
			case "protocol_version":
				p.ProtocolVersion, err = uapiSmallInt(v)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s=%s: %w", k, v, err)
		}
	}
	d.PublicKey = d.PrivateKey.PublicKey()
	return d, nil
}

// ipNetOf is p as net.ParseCIDR gives it: masked, 4-byte IPv4.
func ipNetOf(p netip.Prefix) net.IPNet {
	p = p.Masked()
	a := p.Addr()
	return net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

func uapiKey(k *wgtypes.Key, v []byte) error {
	if hex.DecodedLen(len(v)) != len(k) {
		return fmt.Errorf("a key is %d hex digits, not %d", 2*len(k), len(v))
	}
	_, err := hex.Decode(k[:], v)
	return err
}

// uapiInt parses a non-negative decimal without a string conversion.
func uapiInt(v []byte) (int64, error) {
	if len(v) == 0 || len(v) > 19 {
		return 0, errors.New("not a decimal number of 1-19 digits")
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, errors.New("not a decimal number")
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

func uapiSmallInt(v []byte) (int, error) {
	n, err := uapiInt(v)
	if err == nil && n > 1<<31-1 {
		return 0, errors.New(strconv.FormatInt(n, 10) + " is out of range")
	}
	return int(n), err
}
