package dnsproxy

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Name forms of the cluster zone and the reverse zones, parsed and built.

// dashed is the DNS label form of an address: 10-244-1-5, fd00--5.
func dashed(a netip.Addr) string {
	return strings.NewReplacer(".", "-", ":", "-").Replace(a.Unmap().String())
}

// parseDashed reads a pod label (a-b-c-d, or an IPv6 address with '-' for
// ':') back into an address.
func parseDashed(label string) (netip.Addr, bool) {
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		parts := strings.Split(label, "-")
		var b [4]byte
		for i, p := range parts {
			// Decimal octets only: no signs, no leading zeros beyond "0".
			if p == "" || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
				return netip.Addr{}, false
			}
			n, err := strconv.ParseUint(p, 10, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			b[i] = byte(n)
		}
		return netip.AddrFrom4(b), true
	}
	a, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ":"))
	if err != nil || !a.Is6() || a.Is4In6() || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// reverseAddr parses a PTR query name (lower case, fully qualified) under
// in-addr.arpa or ip6.arpa.
func reverseAddr(name string) (netip.Addr, bool) {
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa."):
		labels := dns.SplitDomainName(strings.TrimSuffix(name, ".in-addr.arpa."))
		if len(labels) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, l := range labels {
			if len(l) > 1 && l[0] == '0' {
				return netip.Addr{}, false
			}
			n, err := strconv.ParseUint(l, 10, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			b[3-i] = byte(n)
		}
		return netip.AddrFrom4(b), true
	case strings.HasSuffix(name, ".ip6.arpa."):
		labels := dns.SplitDomainName(strings.TrimSuffix(name, ".ip6.arpa."))
		if len(labels) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, l := range labels {
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			n, err := strconv.ParseUint(l, 16, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			pos := 31 - i // nibble index from the most significant
			if pos%2 == 0 {
				b[pos/2] |= byte(n) << 4
			} else {
				b[pos/2] |= byte(n)
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// inZone reports whether name (lower case, fully qualified) is zone or
// below it, and returns its labels above the zone, left to right.
func inZone(name, zone string) ([]string, bool) {
	if name == zone {
		return nil, true
	}
	if !strings.HasSuffix(name, "."+zone) {
		return nil, false
	}
	return dns.SplitDomainName(strings.TrimSuffix(name, "."+zone)), true
}
