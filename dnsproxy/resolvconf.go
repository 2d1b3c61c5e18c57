package dnsproxy

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/miekg/dns"
)

// UpstreamsFromResolvConf reads the nameservers of a resolv.conf file as
// upstreams on port 53, leaving out skip (the proxy's own address: a node
// whose resolv.conf points at the proxy must not forward to itself).
func UpstreamsFromResolvConf(path string, skip netip.Addr) ([]netip.AddrPort, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read upstreams from %s: %w", path, err)
	}
	port, err := strconv.ParseUint(cc.Port, 10, 16)
	if err != nil {
		port = 53
	}
	var out []netip.AddrPort
	for _, s := range cc.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil || a.WithZone("") == skip || a.IsUnspecified() {
			continue
		}
		out = append(out, netip.AddrPortFrom(a, uint16(port)))
	}
	return out, nil
}

// ParseUpstream reads an upstream as ip or ip:port (port 53 by default).
func ParseUpstream(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not ip or ip:port", s)
	}
	return netip.AddrPortFrom(a, 53), nil
}
