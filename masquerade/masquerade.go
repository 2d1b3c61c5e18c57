// Package masquerade lets pods reach the world outside the cluster: traffic
// from the cluster CIDR to anything outside it leaves with the node's address.
// Cluster-internal traffic is never rewritten, so pods see each other's real
// addresses.
//
// The rules live in one nftables table of their own ("ip weft-nat"), replaced
// atomically in one netlink batch on every Apply, so a hand-deleted rule
// returns on the next resync and no half-written table is ever visible.
package masquerade

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/weftnet/weft/internal/nftable"
)

// TableName is the nftables table weft owns for masquerading.
const TableName = "weft-nat"

// Ruleset is the desired nftables state for one cluster CIDR.
type Ruleset struct {
	Table *nftables.Table
	Chain *nftables.Chain
	Rules []*nftables.Rule
}

// Plan builds the ruleset: in a postrouting NAT chain,
// `ip saddr CLUSTER ip daddr EXEMPT return` for each exempt network (a
// peered cluster's, whose gateway accepts only pod sources), then
// `ip saddr CLUSTER ip daddr != CLUSTER counter masquerade`.
// It is pure; Apply sends it to the kernel. IPv6 exemptions are ignored:
// the table is IPv4.
func Plan(cluster netip.Prefix, exempt ...netip.Prefix) (Ruleset, error) {
	if !cluster.IsValid() || !cluster.Addr().Is4() {
		return Ruleset{}, fmt.Errorf("masquerade: cluster CIDR %v is not an IPv4 prefix", cluster)
	}
	cluster = cluster.Masked()
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	c := &nftables.Chain{
		Name:     "postrouting",
		Table:    t,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	}
	mask := prefixMask(cluster)
	net4 := cluster.Addr().As4()
	var rules []*nftables.Rule
	for _, e := range exempt {
		if !e.Addr().Is4() {
			continue
		}
		e = e.Masked()
		enet := e.Addr().As4()
		rules = append(rules, &nftables.Rule{
			Table:    t,
			Chain:    c,
			UserData: []byte(fingerprint(cluster) + " exempt " + e.String()),
			Exprs: []expr.Any{
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net4[:]},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: prefixMask(e), Xor: []byte{0, 0, 0, 0}},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: enet[:]},
				&expr.Verdict{Kind: expr.VerdictReturn},
			},
		})
	}
	r := &nftables.Rule{
		Table:    t,
		Chain:    c,
		UserData: []byte(fingerprint(cluster)),
		Exprs: []expr.Any{
			// ip saddr & mask == cluster
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net4[:]},
			// ip daddr & mask != cluster
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: net4[:]},
			&expr.Counter{},
			&expr.Masq{FullyRandom: true},
		},
	}
	return Ruleset{Table: t, Chain: c, Rules: append(rules, r)}, nil
}

// fingerprint tags weft's rule with what it was planned from, so Current
// can tell an up-to-date table from a stale or hand-edited one without
// comparing expressions the kernel may echo back differently.
func fingerprint(cluster netip.Prefix) string {
	return "weft-masquerade-v1 " + cluster.String()
}

func prefixMask(p netip.Prefix) []byte {
	m := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// Conn is the part of *nftables.Conn that Apply and Remove use.
type Conn = nftable.Conn

// Reader is the part of *nftables.Conn that Current uses.
type Reader = nftable.Reader

func (rs Ruleset) table() nftable.Table {
	return nftable.Table{Table: rs.Table, Chains: []*nftables.Chain{rs.Chain}, Rules: rs.Rules}
}

// Current reports whether the kernel already holds exactly rs: the chain
// has rs's rules, each carrying its fingerprint. A missing table or chain is
// simply not current. Callers replace the table only when it is not, so a
// resync does not re-register netfilter hooks for nothing.
func Current(conn Reader, rs Ruleset) bool { return nftable.Current(conn, rs.table()) }

// Apply replaces weft's NAT table with rs in one atomic batch.
func Apply(conn Conn, rs Ruleset) error { return nftable.Replace(conn, rs.table()) }

// Remove deletes weft's NAT table; a missing table is not an error.
func Remove(conn Conn) error { return nftable.Remove(conn, nftables.TableFamilyIPv4, TableName) }

// NewConn opens a netlink connection for nftables in the current network
// namespace.
func NewConn() (*nftables.Conn, error) { return nftable.NewConn() }
