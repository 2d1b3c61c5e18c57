// Package loadbalancer gives LoadBalancer Services addresses from pools the
// operator configures, without a cloud: one elected agent (the holder of a
// Lease) assigns addresses and writes them to each Service's status, the
// Service proxy DNATs them like any Service address, and for each address
// one node, chosen by rendezvous hashing, answers ARP for it on the
// underlay. Assigning (assign.go) and choosing the node (elect.go) are
// pure; the allocator (allocator.go) and the announcer (announce_linux.go)
// apply them.
package loadbalancer

import (
	"fmt"
	"net/netip"
	"strings"
)

// Config is the services.loadBalancer section of the agent's
// configuration. The caller decodes it strictly (gopkg.in/yaml.v3) and
// calls Complete.
type Config struct {
	// Pools are the addresses weft hands out, each a CIDR
	// ("192.168.77.200/29", every address in it) or an inclusive range
	// ("192.168.77.200-192.168.77.239"). Pools must not overlap. IPv4 only
	// for now. No pools: no Service gets an address.
	Pools []string `yaml:"pools"`
	// Class is the spec.loadBalancerClass weft serves, besides Services
	// that name no class. Default DefaultClass.
	Class string `yaml:"class"`
	// Announce: answer ARP for the addresses on the underlay (one node per
	// address). Default true; false when the network routes the pools to
	// the nodes some other way (static routes, BGP).
	Announce *bool `yaml:"announce"`

	pools []Pool // parsed by Complete
}

// DefaultClass is the loadBalancerClass weft serves when Config.Class is
// unset.
const DefaultClass = "weft.dev/loadbalancer"

// Complete fills defaults and validates. field is the section's path in
// the configuration ("services.loadBalancer"); errors name it, and the
// index of a bad pool.
func (c *Config) Complete(field string) error {
	if c.Class == "" {
		c.Class = DefaultClass
	}
	if err := validClass(c.Class); err != nil {
		return fmt.Errorf("%s.class: %q %w", field, c.Class, err)
	}
	if c.Announce == nil {
		t := true
		c.Announce = &t
	}
	c.pools = c.pools[:0]
	for i, s := range c.Pools {
		p, err := ParsePool(s)
		if err != nil {
			return fmt.Errorf("%s.pools[%d]: %w", field, i, err)
		}
		for j, q := range c.pools {
			if p.Overlaps(q) {
				return fmt.Errorf("%s.pools[%d]: %q overlaps pools[%d] %q", field, i, s, j, c.Pools[j])
			}
		}
		c.pools = append(c.pools, p)
	}
	return nil
}

// ParsedPools returns the pools Complete parsed, in configuration order.
func (c *Config) ParsedPools() []Pool { return c.pools }

// Announcing reports whether the nodes answer ARP for the addresses.
func (c *Config) Announcing() bool { return c.Announce == nil || *c.Announce }

// validClass checks the shape Kubernetes requires of loadBalancerClass: a
// label-style key with a prefix ("example.com/name").
func validClass(s string) error {
	prefix, name, ok := strings.Cut(s, "/")
	if !ok || prefix == "" || name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("is not a prefixed name like %q", DefaultClass)
	}
	if len(name) > 63 || len(prefix) > 253 {
		return fmt.Errorf("is too long")
	}
	return nil
}

// Pool is an inclusive range of addresses of one family.
type Pool struct {
	First, Last netip.Addr
}

// ParsePool parses a CIDR or an inclusive range "first-last". A CIDR is
// every address in it, the first and the last included.
func ParsePool(s string) (Pool, error) {
	bad := fmt.Errorf("%q is not a CIDR or an address range", s)
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, err1 := netip.ParseAddr(strings.TrimSpace(first))
		b, err2 := netip.ParseAddr(strings.TrimSpace(last))
		if err1 != nil || err2 != nil || a.Zone() != "" || b.Zone() != "" {
			return Pool{}, bad
		}
		if a.Is4() != b.Is4() {
			return Pool{}, fmt.Errorf("%q mixes IPv4 and IPv6", s)
		}
		if b.Less(a) {
			return Pool{}, fmt.Errorf("%q ends before it starts", s)
		}
		return checkFamily(s, Pool{First: a, Last: b})
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return Pool{}, bad
	}
	if p.Masked() != p {
		return Pool{}, fmt.Errorf("%q has host bits set (the network is %s)", s, p.Masked())
	}
	return checkFamily(s, Pool{First: p.Addr(), Last: lastAddr(p)})
}

func checkFamily(s string, p Pool) (Pool, error) {
	if !p.First.Is4() {
		// The announcer speaks ARP only; NDP comes with IPv6 pools.
		return Pool{}, fmt.Errorf("%q is not IPv4 (IPv6 pools are not supported yet)", s)
	}
	return p, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := range b {
		bits := p.Bits() - i*8
		switch {
		case bits <= 0:
			b[i] = 0xff
		case bits < 8:
			b[i] |= 0xff >> bits
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Contains reports whether a is in the pool.
func (p Pool) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return a.BitLen() == p.First.BitLen() && !a.Less(p.First) && !p.Last.Less(a)
}

// Overlaps reports whether the pools share an address.
func (p Pool) Overlaps(q Pool) bool {
	return p.First.BitLen() == q.First.BitLen() && !p.Last.Less(q.First) && !q.Last.Less(p.First)
}

// Size is the number of addresses in the pool, saturating at 1<<63.
func (p Pool) Size() uint64 {
	a, b := p.First.As16(), p.Last.As16()
	var hiA, hiB, loA, loB uint64
	for i := range 8 {
		hiA, hiB = hiA<<8|uint64(a[i]), hiB<<8|uint64(b[i])
		loA, loB = loA<<8|uint64(a[8+i]), loB<<8|uint64(b[8+i])
	}
	if hiA != hiB {
		return 1 << 63
	}
	return min(loB-loA, 1<<63-1) + 1
}

func (p Pool) String() string {
	if p.First == p.Last {
		return p.First.String()
	}
	// Shown as a CIDR when it is one.
	for bits := 0; bits <= p.First.BitLen(); bits++ {
		if pfx := netip.PrefixFrom(p.First, bits); pfx.Masked().Addr() == p.First && lastAddr(pfx) == p.Last {
			return pfx.String()
		}
	}
	return p.First.String() + "-" + p.Last.String()
}
