package policy

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
)

// objCounter is NFT_OBJECT_COUNTER, the type of a named counter.
const objCounter = 1

// Objects is a Ruleset as nftables objects, ready for one batch. Render
// makes it without touching the kernel.
type Objects struct {
	Table    *nftables.Table
	Sets     []*nftables.Set
	Elements map[string][]nftables.SetElement // by set name
	Counters []*nftables.CounterObj
	Chains   []*nftables.Chain
	Rules    []*nftables.Rule
	// Fingerprint is rs.StructureFingerprint(), carried in the comment of
	// the forward chain's first rule so the kernel's copy can be recognised.
	Fingerprint string
}

const (
	ingressMap = "ingress"
	egressMap  = "egress"
	// The isolated pods again, in sets whose elements carry counters: each
	// default-deny rule looks the pod up there, counting its drops.
	ingressDrops = "ingress-drops"
	egressDrops  = "egress-drops"
	forwardChain = "forward"
	commentTag   = "weft-policy "
)

// Render turns rs into nftables objects.
func Render(rs Ruleset) Objects {
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	o := Objects{Table: t, Elements: map[string][]nftables.SetElement{}, Fingerprint: rs.StructureFingerprint()}
	ids := map[string]uint32{}
	addSet := func(s *nftables.Set, el []nftables.SetElement) {
		s.ID = uint32(len(o.Sets) + 1)
		ids[s.Name] = s.ID
		o.Sets = append(o.Sets, s)
		o.Elements[s.Name] = el
	}
	for _, s := range rs.Sets {
		addSet(&nftables.Set{Table: t, Name: s.Name, KeyType: nftables.TypeIPAddr, Interval: true}, intervalElements(s.Ranges))
	}
	addSet(&nftables.Set{Table: t, Name: ingressMap, IsMap: true, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict}, mapElements(rs.Ingress))
	addSet(&nftables.Set{Table: t, Name: egressMap, IsMap: true, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict}, mapElements(rs.Egress))
	addSet(&nftables.Set{Table: t, Name: ingressDrops, KeyType: nftables.TypeIPAddr, Counter: true}, keyElements(rs.Ingress))
	addSet(&nftables.Set{Table: t, Name: egressDrops, KeyType: nftables.TypeIPAddr, Counter: true}, keyElements(rs.Egress))

	fwd := &nftables.Chain{
		Name:     forwardChain,
		Table:    t,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookForward,
		Priority: nftables.ChainPriorityFilter,
		Policy:   ptrPolicy(nftables.ChainPolicyAccept),
	}
	o.Chains = append(o.Chains, fwd)
	est := binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED)
	o.Rules = append(o.Rules,
		&nftables.Rule{Table: t, Chain: fwd, UserData: comment(commentTag + o.Fingerprint), Exprs: []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: est, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
			&expr.Verdict{Kind: expr.VerdictAccept},
		}},
	)
	if p := rs.SourceCheck; p.IsValid() {
		net4, mask := p.Addr().As4(), prefixMask(p)
		o.Counters = append(o.Counters, &nftables.CounterObj{Table: t, Name: SourceCheckCounter})
		o.Rules = append(o.Rules, &nftables.Rule{Table: t, Chain: fwd, UserData: comment("a pod address must come from where it is routed"), Exprs: []expr.Any{
			ipField(12),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net4[:]},
			// fib saddr . iif oif missing
			&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: make([]byte, 4)},
			&expr.Objref{Type: objCounter, Name: SourceCheckCounter},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	o.Rules = append(o.Rules,
		&nftables.Rule{Table: t, Chain: fwd, UserData: comment("pods isolated for egress"), Exprs: []expr.Any{
			ipField(Egress.own()),
			&expr.Lookup{SourceRegister: 1, SetName: egressMap, SetID: ids[egressMap], DestRegister: 0, IsDestRegSet: true},
		}},
		&nftables.Rule{Table: t, Chain: fwd, UserData: comment("pods isolated for ingress"), Exprs: []expr.Any{
			ipField(Ingress.own()),
			&expr.Lookup{SourceRegister: 1, SetName: ingressMap, SetID: ids[ingressMap], DestRegister: 0, IsDestRegSet: true},
		}},
	)
	for _, c := range rs.Chains {
		ch := &nftables.Chain{Name: c.Name, Table: t}
		o.Chains = append(o.Chains, ch)
		o.Counters = append(o.Counters, &nftables.CounterObj{Table: t, Name: c.Name})
		for _, r := range c.Rules {
			o.Rules = append(o.Rules, &nftables.Rule{Table: t, Chain: ch,
				UserData: comment(fmt.Sprintf("%s %s[%d]", r.Policy, c.Direction, r.Index)),
				Exprs:    ruleExprs(c.Direction, r, ids)})
		}
		drops := ingressDrops
		if c.Direction == Egress {
			drops = egressDrops
		}
		o.Rules = append(o.Rules,
			&nftables.Rule{Table: t, Chain: ch, UserData: comment("default deny, counted per pod"), Exprs: []expr.Any{
				ipField(c.Direction.own()),
				&expr.Lookup{SourceRegister: 1, SetName: drops, SetID: ids[drops]},
				&expr.Objref{Type: objCounter, Name: c.Name},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}},
			// Never reached while the drop sets hold every mapped pod, as
			// they do: the deny does not depend on it.
			&nftables.Rule{Table: t, Chain: ch, UserData: comment("default deny"), Exprs: []expr.Any{
				&expr.Objref{Type: objCounter, Name: c.Name},
				&expr.Verdict{Kind: expr.VerdictDrop},
			}})
	}
	return o
}

// own is the address field naming the local pod in a direction (its
// source for egress, its destination for ingress); peer is the other.
func (d Direction) own() uint32 {
	if d == Egress {
		return 12
	}
	return 16
}

func (d Direction) peer() uint32 {
	if d == Egress {
		return 16
	}
	return 12
}

func ipField(offset uint32) *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4}
}

func ruleExprs(d Direction, r Rule, ids map[string]uint32) []expr.Any {
	var ex []expr.Any
	if r.Peers != "" {
		ex = append(ex, ipField(d.peer()), &expr.Lookup{SourceRegister: 1, SetName: r.Peers, SetID: ids[r.Peers]})
	}
	if r.Proto != 0 {
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.Proto}})
	}
	if r.PortFirst != 0 {
		ex = append(ex, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
		if r.PortFirst == r.PortLast {
			ex = append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.PortFirst)})
		} else {
			ex = append(ex, &expr.Range{Op: expr.CmpOpEq, Register: 1,
				FromData: binaryutil.BigEndian.PutUint16(r.PortFirst), ToData: binaryutil.BigEndian.PutUint16(r.PortLast)})
		}
	}
	kind := expr.VerdictAccept
	if d == Egress {
		kind = expr.VerdictReturn
	}
	return append(ex, &expr.Verdict{Kind: kind})
}

// intervalElements encodes ranges as an interval set does: a start key,
// and an interval-end key one past the last address (omitted when the
// range reaches 255.255.255.255).
func intervalElements(rs []Range) []nftables.SetElement {
	var el []nftables.SetElement
	for _, r := range rs {
		first := r.First.As4()
		el = append(el, nftables.SetElement{Key: first[:]})
		if last := u32(r.Last); last != ^uint32(0) {
			end := make([]byte, 4)
			binary.BigEndian.PutUint32(end, last+1)
			el = append(el, nftables.SetElement{Key: end, IntervalEnd: true})
		}
	}
	return el
}

func keyElements(m []MapEntry) []nftables.SetElement {
	el := make([]nftables.SetElement, 0, len(m))
	for _, e := range m {
		ip := e.IP.As4()
		el = append(el, nftables.SetElement{Key: ip[:]})
	}
	return el
}

func mapElements(m []MapEntry) []nftables.SetElement {
	el := make([]nftables.SetElement, 0, len(m))
	for _, e := range m {
		ip := e.IP.As4()
		el = append(el, nftables.SetElement{Key: ip[:], VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: e.Chain}})
	}
	return el
}

// comment is rule user data as nft writes a comment, so `nft list` shows it.
func comment(s string) []byte { return userdata.AppendString(nil, userdata.TypeComment, s) }

func ptrPolicy(p nftables.ChainPolicy) *nftables.ChainPolicy { return &p }

func prefixMask(p netip.Prefix) []byte {
	m := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}
