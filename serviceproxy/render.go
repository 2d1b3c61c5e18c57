package serviceproxy

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table weft's Service proxy owns ("ip weft-services").
const TableName = "weft-services"

// MasqueradeMark is the packet mark bit that asks the postrouting chain to
// masquerade a packet.
const MasqueradeMark = 0x00020000

// Names of the table's maps and sets.
const (
	serviceIPsMap     = "service-ips"
	nodePortsMap      = "service-nodeports"
	noEndpointsMap    = "no-endpoint-services"
	noEndpointPortMap = "no-endpoint-nodeports"
	clusterIPsSet     = "cluster-ips"
)

// Names of the fixed regular chains.
const (
	servicesChain       = "services"
	masqueradingChain   = "masquerading"
	endpointsCheckChain = "service-endpoints-check"
	nodePortCheckChain  = "nodeport-endpoints-check"
	clusterIPsCheck     = "cluster-ips-check"
	rejectChain         = "reject-chain"
)

// skeleton is the part of the table that does not depend on Services:
// base chains, fixed chains and the maps. Every incremental change leaves
// it as it is; structureVersion changes when it does, so an agent started
// on a table of an older layout replaces it.
type skeleton struct {
	table                                            *nftables.Table
	serviceIPs, nodePorts, noEndpoints, noEPNodePort *nftables.Set
	clusterIPs                                       *nftables.Set
	chains                                           []*nftables.Chain
	rules                                            []*nftables.Rule
}

// structureVersion tags the skeleton (in the first rule of the services
// chain) so that a table of another layout is recognised and replaced.
const structureVersion = "weft-services-v1"

func newSkeleton() *skeleton {
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	addrProtoPort, _ := nftables.ConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	protoPort, _ := nftables.ConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	vmap := func(name string, key nftables.SetDatatype) *nftables.Set {
		return &nftables.Set{Table: t, Name: name, IsMap: true, Concatenation: true, KeyType: key, DataType: nftables.TypeVerdict}
	}
	sk := &skeleton{
		table:        t,
		serviceIPs:   vmap(serviceIPsMap, addrProtoPort),
		nodePorts:    vmap(nodePortsMap, protoPort),
		noEndpoints:  vmap(noEndpointsMap, addrProtoPort),
		noEPNodePort: vmap(noEndpointPortMap, protoPort),
		clusterIPs:   &nftables.Set{Table: t, Name: clusterIPsSet, KeyType: nftables.TypeIPAddr},
	}
	base := func(name string, typ nftables.ChainType, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		c := &nftables.Chain{Name: name, Table: t, Type: typ, Hooknum: hook, Priority: prio}
		sk.chains = append(sk.chains, c)
		return c
	}
	regular := func(name string) *nftables.Chain {
		c := &nftables.Chain{Name: name, Table: t}
		sk.chains = append(sk.chains, c)
		return c
	}
	rule := func(c *nftables.Chain, comment string, e ...expr.Any) {
		sk.rules = append(sk.rules, &nftables.Rule{Table: t, Chain: c, Exprs: e, UserData: []byte(comment)})
	}
	filterPrio := nftables.ChainPriorityRef(-110) // before policy (0), after conntrack
	postDNAT := nftables.ChainPriorityRef(-90)    // after the output NAT hook (-100)

	services := regular(servicesChain)
	masq := regular(masqueradingChain)
	mark := regular(markChain)
	epCheck := regular(endpointsCheckChain)
	npCheck := regular(nodePortCheckChain)
	cipCheck := regular(clusterIPsCheck)
	reject := regular(rejectChain)

	for _, b := range []struct {
		name string
		typ  nftables.ChainType
		hook *nftables.ChainHook
		prio *nftables.ChainPriority
		to   []*nftables.Chain
		new  bool // only for new connections
	}{
		{"nat-prerouting", nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest, []*nftables.Chain{services}, false},
		{"nat-output", nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest, []*nftables.Chain{services}, false},
		{"nat-postrouting", nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource, []*nftables.Chain{masq}, false},
		{"filter-input", nftables.ChainTypeFilter, nftables.ChainHookInput, filterPrio, []*nftables.Chain{npCheck, epCheck}, true},
		{"filter-forward", nftables.ChainTypeFilter, nftables.ChainHookForward, filterPrio, []*nftables.Chain{epCheck, cipCheck}, true},
		{"filter-output", nftables.ChainTypeFilter, nftables.ChainHookOutput, filterPrio, []*nftables.Chain{epCheck}, true},
		{"filter-output-post-dnat", nftables.ChainTypeFilter, nftables.ChainHookOutput, postDNAT, []*nftables.Chain{cipCheck}, true},
	} {
		c := base(b.name, b.typ, b.hook, b.prio)
		for _, to := range b.to {
			var e []expr.Any
			if b.new {
				e = ctStateNew()
			}
			rule(c, "", append(e, &expr.Verdict{Kind: expr.VerdictJump, Chain: to.Name})...)
		}
	}
	rule(services, structureVersion, append(addrProtoPortKey(), lookupVerdict(sk.serviceIPs)...)...)
	rule(services, "node ports", append(append(localDest(), protoPortKey()...), lookupVerdict(sk.nodePorts)...)...)
	rule(masq, "", &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(MasqueradeMark), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)},
		&expr.Verdict{Kind: expr.VerdictReturn})
	rule(masq, "", &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(^uint32(0)), Xor: binaryutil.NativeEndian.PutUint32(MasqueradeMark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		&expr.Masq{FullyRandom: true})
	rule(mark, "", &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(^uint32(MasqueradeMark)), Xor: binaryutil.NativeEndian.PutUint32(MasqueradeMark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	rule(epCheck, "", append(addrProtoPortKey(), lookupVerdict(sk.noEndpoints)...)...)
	rule(npCheck, "", append(append(localDest(), protoPortKey()...), lookupVerdict(sk.noEPNodePort)...)...)
	rule(cipCheck, "no such port", ipField(16), &expr.Lookup{SourceRegister: 1, SetName: clusterIPsSet},
		&expr.Verdict{Kind: expr.VerdictGoto, Chain: rejectChain})
	rule(reject, "", &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreachable})
	return sk
}

// ctStateNew matches the first packet of a connection.
func ctStateNew() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitNEW), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// localDest matches a destination that is one of the node's own addresses,
// loopback excepted (node ports are not served on 127.0.0.0/8).
func localDest() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		ipField(16),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{0xff, 0, 0, 0}, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{127, 0, 0, 0}},
	}
}

// ipField loads the IPv4 header's address at offset (12 source, 16
// destination) into register 1.
func ipField(offset uint32) *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}
}

// addrProtoPortKey loads ip daddr . meta l4proto . th dport into the
// registers a concatenated lookup reads (each field in its own 32-bit
// register, from register 1 on).
func addrProtoPortKey() []expr.Any {
	return []expr.Any{
		ipField(16),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 9},
		&expr.Payload{DestRegister: 10, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

// protoPortKey loads meta l4proto . th dport.
func protoPortKey() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Payload{DestRegister: 9, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

func lookupVerdict(s *nftables.Set) []expr.Any {
	return []expr.Any{&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, DestRegister: 0, IsDestRegSet: true}}
}

// ipKeyBytes is a service-ips element key.
func ipKeyBytes(a netip.Addr, p Protocol, port uint16) []byte {
	b := make([]byte, 12)
	a4 := a.As4()
	copy(b, a4[:])
	b[4] = byte(p)
	b[8], b[9] = byte(port>>8), byte(port)
	return b
}

// portKeyBytes is a service-nodeports element key.
func portKeyBytes(p Protocol, port uint16) []byte {
	b := make([]byte, 8)
	b[0] = byte(p)
	b[4], b[5] = byte(port>>8), byte(port)
	return b
}

// verdictExpr is v as a map element's data.
func verdictExpr(v Verdict) *expr.Verdict {
	switch {
	case v.Reject:
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: rejectChain}
	case v.Drop:
		return &expr.Verdict{Kind: expr.VerdictDrop}
	}
	return &expr.Verdict{Kind: expr.VerdictGoto, Chain: v.Chain}
}

// setAdder creates an anonymous set in the batch being built; Spread
// rules need one for their verdict map.
type setAdder func(*nftables.Set, []nftables.SetElement) error

// ruleExprs renders r. Spread rules add their anonymous map through add.
func ruleExprs(t *nftables.Table, r Rule, add setAdder) ([]expr.Any, error) {
	markJump := &expr.Verdict{Kind: expr.VerdictJump, Chain: markChain}
	switch r.Kind {
	case MasqueradeUnlessFrom, GotoFrom:
		a, mask := r.Prefix.Masked().Addr().As4(), prefixMask(r.Prefix)
		op, v := expr.CmpOpNeq, markJump
		if r.Kind == GotoFrom {
			op, v = expr.CmpOpEq, &expr.Verdict{Kind: expr.VerdictGoto, Chain: r.Target}
		}
		return []expr.Any{ipField(12),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
			&expr.Cmp{Op: op, Register: 1, Data: a[:]}, v}, nil
	case MasqueradeFrom:
		a := r.Addr.As4()
		return []expr.Any{ipField(12), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]}, markJump}, nil
	case MasqueradeAll:
		return []expr.Any{markJump}, nil
	case MasqueradeFromLocal, GotoFromLocal:
		v := markJump
		if r.Kind == GotoFromLocal {
			v = &expr.Verdict{Kind: expr.VerdictGoto, Chain: r.Target}
		}
		return []expr.Any{
			&expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
			v}, nil
	case Sticky:
		return []expr.Any{ipField(12), &expr.Lookup{SourceRegister: 1, SetName: r.Set},
			&expr.Verdict{Kind: expr.VerdictGoto, Chain: r.Target}}, nil
	case Spread:
		m := &nftables.Set{Table: t, Anonymous: true, Constant: true, IsMap: true, KeyType: nftables.TypeInteger, DataType: nftables.TypeVerdict}
		el := make([]nftables.SetElement, len(r.Targets))
		for i, target := range r.Targets {
			el[i] = nftables.SetElement{Key: binaryutil.NativeEndian.PutUint32(uint32(i)), VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: target}}
		}
		if err := add(m, el); err != nil {
			return nil, err
		}
		return []expr.Any{
			&expr.Numgen{Register: 1, Modulus: uint32(len(r.Targets)), Type: unix.NFT_NG_RANDOM},
			&expr.Lookup{SourceRegister: 1, SetName: m.Name, SetID: m.ID, DestRegister: 0, IsDestRegSet: true},
		}, nil
	case Remember:
		return []expr.Any{ipField(12), &expr.Dynset{SrcRegKey: 1, SetName: r.Set, Operation: unix.NFT_DYNSET_OP_UPDATE}}, nil
	case DNAT:
		a := r.Addr.As4()
		return []expr.Any{
			&expr.Immediate{Register: 1, Data: a[:]},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(r.Port)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}, nil
	case Goto:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: r.Target}}, nil
	case Drop:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}, nil
	}
	return nil, fmt.Errorf("serviceproxy: unknown rule kind %d", r.Kind)
}

func prefixMask(p netip.Prefix) []byte {
	m := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// affinityNFTSet is the dynamic set behind an AffinitySet.
func affinityNFTSet(t *nftables.Table, a AffinitySet) *nftables.Set {
	return &nftables.Set{Table: t, Name: a.Name, KeyType: nftables.TypeIPAddr, HasTimeout: true, Timeout: a.Timeout, Dynamic: true}
}

// icmpPortUnreachable is the ICMP code reject sends: the client's connect
// fails at once with "connection refused".
const icmpPortUnreachable = 3
