package dnsproxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/internal/nftable"
)

// NotrackTable is the nftables table that keeps DNS to and from the proxy
// out of conntrack, as NodeLocal DNSCache does: no conntrack entry per
// query, so no table to fill and no UDP insertion race to lose queries to.
const NotrackTable = "weft-dns"

// NotrackRuleset is the desired state of NotrackTable.
type NotrackRuleset = nftable.Table

// PlanNotrack builds the ruleset for a proxy at listen (IPv4): in raw
// priority chains,
//
//	prerouting: ip daddr LISTEN udp|tcp dport PORT notrack   (pods' queries)
//	output:     ip daddr LISTEN udp|tcp dport PORT notrack   (the node's)
//	output:     ip saddr LISTEN udp|tcp sport PORT notrack   (the replies)
//
// It is pure; ApplyNotrack sends it to the kernel.
func PlanNotrack(listen netip.AddrPort) (NotrackRuleset, error) {
	if !listen.Addr().Is4() {
		return NotrackRuleset{}, fmt.Errorf("listenAddress: %s is not an IPv4 address", listen.Addr())
	}
	t := &nftables.Table{Name: NotrackTable, Family: nftables.TableFamilyIPv4}
	pre := &nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw}
	outc := &nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityRaw}
	rs := NotrackRuleset{Table: t, Chains: []*nftables.Chain{pre, outc}}
	addr := listen.Addr().As4()
	port := binary.BigEndian.AppendUint16(nil, listen.Port())
	const daddr, saddr, dport, sport = 16, 12, 2, 0
	for _, r := range []struct {
		chain            *nftables.Chain
		addrOff, portOff uint32
		dir              string
	}{
		{pre, daddr, dport, "in"},
		{outc, daddr, dport, "local"},
		{outc, saddr, sport, "reply"},
	} {
		for _, proto := range []struct {
			num  byte
			name string
		}{{unix.IPPROTO_UDP, "udp"}, {unix.IPPROTO_TCP, "tcp"}} {
			rs.Rules = append(rs.Rules, &nftables.Rule{
				Table:    t,
				Chain:    r.chain,
				UserData: []byte(fmt.Sprintf("weft-dns-notrack-v1 %s %s %s", r.dir, proto.name, listen)),
				Exprs: []expr.Any{
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: r.addrOff, Len: 4},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:]},
					&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto.num}},
					&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: r.portOff, Len: 2},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port},
					&expr.Counter{},
					&expr.Notrack{},
				},
			})
		}
	}
	return rs, nil
}

// NftConn is the part of *nftables.Conn that ApplyNotrack and RemoveNotrack use.
type NftConn = nftable.Conn

// NftReader is the part of *nftables.Conn that NotrackCurrent uses.
type NftReader = nftable.Reader

// NotrackCurrent reports whether the kernel holds exactly rs, judged by
// each chain's rules and their fingerprints.
func NotrackCurrent(conn NftReader, rs NotrackRuleset) bool { return nftable.Current(conn, rs) }

// ApplyNotrack replaces the table with rs in one atomic batch.
func ApplyNotrack(conn NftConn, rs NotrackRuleset) error { return nftable.Replace(conn, rs) }

// RemoveNotrack deletes the table; a missing table is not an error.
func RemoveNotrack(conn NftConn) error {
	return nftable.Remove(conn, nftables.TableFamilyIPv4, NotrackTable)
}

// NewNftConn opens a netlink connection for nftables in the current
// network namespace.
func NewNftConn() (*nftables.Conn, error) { return nftable.NewConn() }
