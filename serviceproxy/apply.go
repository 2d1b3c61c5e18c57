package serviceproxy

import (
	"fmt"
	"slices"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Conn is the part of *nftables.Conn the Applier uses.
type Conn interface {
	AddTable(*nftables.Table) *nftables.Table
	DelTable(*nftables.Table)
	AddChain(*nftables.Chain) *nftables.Chain
	FlushChain(*nftables.Chain)
	DelChain(*nftables.Chain)
	AddRule(*nftables.Rule) *nftables.Rule
	AddSet(*nftables.Set, []nftables.SetElement) error
	DelSet(*nftables.Set)
	SetAddElements(*nftables.Set, []nftables.SetElement) error
	SetDeleteElements(*nftables.Set, []nftables.SetElement) error
	GetRules(*nftables.Table, *nftables.Chain) ([]*nftables.Rule, error)
	Flush() error
}

var _ Conn = (*nftables.Conn)(nil)

// Outcome says what Apply did.
type Outcome string

// Outcomes.
const (
	Unchanged   Outcome = "unchanged"   // nothing differed from the last apply
	Incremental Outcome = "incremental" // only what changed was written
	Replaced    Outcome = "replaced"    // the whole table was written anew
)

// Applier puts plans into the kernel, each in one atomic batch.
//
// It remembers the plan it last applied. When the kernel holds its table
// it writes only the difference: chains of Services that changed are
// flushed and rewritten, new ones added, gone ones deleted, and map
// elements added and deleted one by one; netfilter hooks, other Services'
// chains and the affinity sets of unchanged endpoints are untouched.
// Without a remembered plan (the first apply, after Forget or after a
// failed batch) it replaces the whole table: a kernel batch commits whole
// or not at all, so a failure leaves the previous table in force.
//
// An Applier is not safe for concurrent use.
type Applier struct {
	conn Conn
	sk   *skeleton
	// Last applied; nil when unknown.
	services map[string]*ServicePlan
	elems    *elements
}

// NewApplier returns an Applier on conn.
func NewApplier(conn Conn) *Applier { return &Applier{conn: conn, sk: newSkeleton()} }

// Forget makes the next Apply replace the whole table, repairing anything
// changed behind the applier's back.
func (a *Applier) Forget() { a.services, a.elems = nil, nil }

// Stats count what one Apply wrote.
type Stats struct {
	Outcome                            Outcome
	ChainsAdded, ChainsChanged, Chains int // Chains: deleted
	ElementsAdded, ElementsDeleted     int
}

// Apply makes the kernel's table p.
func (a *Applier) Apply(p *Plan) (Stats, error) {
	el := flatten(p)
	if a.services == nil || !a.current() {
		st, err := a.replace(p)
		if err != nil {
			a.Forget()
			return st, err
		}
		a.services, a.elems = maps(p.Services), el
		return st, nil
	}
	st, err := a.update(p, el)
	if err != nil {
		a.Forget()
		return st, err
	}
	a.services, a.elems = maps(p.Services), el
	return st, nil
}

func maps(m map[string]*ServicePlan) map[string]*ServicePlan {
	out := make(map[string]*ServicePlan, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// current reports whether the kernel holds a table of this layout.
func (a *Applier) current() bool {
	rules, err := a.conn.GetRules(a.sk.table, &nftables.Chain{Name: servicesChain, Table: a.sk.table})
	return err == nil && len(rules) > 0 && string(rules[0].UserData) == structureVersion
}

// replaceBatch bounds the messages of one batch of a replace. The kernel
// echoes every rule added back to the socket; a batch much larger than
// this overflows even a large receive buffer.
const replaceBatch = 4000

// replace writes the whole table anew. A table that fits one batch is
// replaced atomically; a larger one is written as the skeleton with the
// first Services, then further Services a batch at a time, each batch whole
// Services (their chains refer only to each other and to the skeleton).
func (a *Applier) replace(p *Plan) (Stats, error) {
	st := Stats{Outcome: Replaced}
	c, sk := a.conn, a.sk
	c.AddTable(sk.table)
	c.DelTable(sk.table)
	c.AddTable(sk.table)
	for _, s := range []*nftables.Set{sk.serviceIPs, sk.nodePorts, sk.noEndpoints, sk.noEPNodePort, sk.clusterIPs} {
		s.ID = 0 // a fresh id in this batch
		if err := c.AddSet(s, nil); err != nil {
			return st, fmt.Errorf("failed to add set %s: %w", s.Name, err)
		}
	}
	for _, ch := range sk.chains {
		c.AddChain(ch)
	}
	// The skeleton's rules look its sets up by the ids AddSet just gave.
	ids := map[string]uint32{}
	for _, s := range []*nftables.Set{sk.serviceIPs, sk.nodePorts, sk.noEndpoints, sk.noEPNodePort, sk.clusterIPs} {
		ids[s.Name] = s.ID
	}
	for _, r := range sk.rules {
		for _, e := range r.Exprs {
			if l, ok := e.(*expr.Lookup); ok {
				l.SetID = ids[l.SetName]
			}
		}
		c.AddRule(r)
	}
	pending := 8 + len(sk.chains) + len(sk.rules)
	chunk := &Plan{Services: map[string]*ServicePlan{}}
	flush := func() error {
		keys := sortedKeys(chunk.Services)
		for _, k := range keys {
			sp := chunk.Services[k]
			for _, as := range sp.Affinity {
				if err := c.AddSet(affinityNFTSet(sk.table, as), nil); err != nil {
					return fmt.Errorf("failed to add set %s: %w", as.Name, err)
				}
			}
			for _, ch := range sp.Chains {
				c.AddChain(&nftables.Chain{Name: ch.Name, Table: sk.table})
			}
		}
		for _, k := range keys {
			for _, ch := range chunk.Services[k].Chains {
				if err := a.addRules(ch); err != nil {
					return err
				}
				st.ChainsAdded++
			}
		}
		added, err := a.writeElements(&elements{}, flatten(chunk))
		if err != nil {
			return err
		}
		st.ElementsAdded += added
		if err := c.Flush(); err != nil {
			return fmt.Errorf("failed to apply nftables table %s: %w", TableName, err)
		}
		chunk.Services, pending = map[string]*ServicePlan{}, 0
		return nil
	}
	for _, k := range sortedKeys(p.Services) {
		sp := p.Services[k]
		chunk.Services[k] = sp
		pending += len(sp.Affinity) + len(sp.Chains) + 4
		for _, ch := range sp.Chains {
			pending += len(ch.Rules)
		}
		if pending >= replaceBatch {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if len(chunk.Services) > 0 || pending > 0 {
		if err := flush(); err != nil {
			return st, err
		}
	}
	return st, nil
}

// update writes what differs between the last applied plan and p.
func (a *Applier) update(p *Plan, el *elements) (Stats, error) {
	st := Stats{Outcome: Incremental}
	c, t := a.conn, a.sk.table
	oldChains, newChains := map[string][]Rule{}, map[string][]Rule{}
	oldSets, newSets := map[string]AffinitySet{}, map[string]AffinitySet{}
	collect := func(m map[string]*ServicePlan, chains map[string][]Rule, sets map[string]AffinitySet, skip func(string) bool) {
		for k, sp := range m {
			if skip(k) {
				continue
			}
			for _, ch := range sp.Chains {
				chains[ch.Name] = ch.Rules
			}
			for _, as := range sp.Affinity {
				sets[as.Name] = as
			}
		}
	}
	// Only Services whose plan is not the very one applied last can differ.
	same := func(k string) bool { return a.services[k] != nil && a.services[k] == p.Services[k] }
	collect(a.services, oldChains, oldSets, same)
	collect(p.Services, newChains, newSets, same)

	for _, name := range sortedKeys(newSets) {
		as := newSets[name]
		if _, ok := oldSets[name]; ok {
			continue // the name carries the timeout: the same set
		}
		if err := c.AddSet(affinityNFTSet(t, as), nil); err != nil {
			return st, fmt.Errorf("failed to add set %s: %w", name, err)
		}
	}
	added := sortedKeys(newChains)
	for _, name := range added {
		if _, ok := oldChains[name]; !ok {
			c.AddChain(&nftables.Chain{Name: name, Table: t})
		}
	}
	for _, name := range added {
		rules := newChains[name]
		old, ok := oldChains[name]
		switch {
		case !ok:
			st.ChainsAdded++
		case rulesEqual(old, rules):
			continue
		default:
			c.FlushChain(&nftables.Chain{Name: name, Table: t})
			st.ChainsChanged++
		}
		if err := a.addRules(Chain{Name: name, Rules: rules}); err != nil {
			return st, err
		}
	}
	n, err := a.writeElements(a.elems, el)
	if err != nil {
		return st, err
	}
	st.ElementsAdded, st.ElementsDeleted = n, a.elems.diffCount(el)
	var gone []string
	for _, name := range sortedKeys(oldChains) {
		if _, ok := newChains[name]; !ok {
			gone = append(gone, name)
			c.FlushChain(&nftables.Chain{Name: name, Table: t})
		}
	}
	for _, name := range gone {
		c.DelChain(&nftables.Chain{Name: name, Table: t})
	}
	st.Chains = len(gone)
	for _, name := range sortedKeys(oldSets) {
		if _, ok := newSets[name]; !ok {
			c.DelSet(&nftables.Set{Table: t, Name: name})
		}
	}
	if st.ChainsAdded+st.ChainsChanged+st.Chains+st.ElementsAdded+st.ElementsDeleted == 0 && len(newSets) == len(oldSets) {
		return Stats{Outcome: Unchanged}, nil
	}
	if err := c.Flush(); err != nil {
		return st, fmt.Errorf("failed to update nftables table %s: %w", TableName, err)
	}
	return st, nil
}

func (a *Applier) addRules(ch Chain) error {
	t := a.sk.table
	c := &nftables.Chain{Name: ch.Name, Table: t}
	add := func(s *nftables.Set, el []nftables.SetElement) error { return a.conn.AddSet(s, el) }
	for _, r := range ch.Rules {
		e, err := ruleExprs(t, r, add)
		if err != nil {
			return fmt.Errorf("chain %s: %w", ch.Name, err)
		}
		a.conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: e})
	}
	return nil
}

func rulesEqual(a, b []Rule) bool {
	return slices.EqualFunc(a, b, func(x, y Rule) bool {
		return x.Kind == y.Kind && x.Prefix == y.Prefix && x.Addr == y.Addr && x.Port == y.Port &&
			x.Set == y.Set && x.Target == y.Target && slices.Equal(x.Targets, y.Targets)
	})
}

// elements is a plan's map and set contents, keyed for diffing.
type elements struct {
	serviceIPs, noEndpoints map[ipKey]Verdict
	nodePorts, noEPNodePort map[portKey]Verdict
	clusterIPs              map[[4]byte]bool
}

func flatten(p *Plan) *elements {
	e := &elements{
		serviceIPs: map[ipKey]Verdict{}, noEndpoints: map[ipKey]Verdict{},
		nodePorts: map[portKey]Verdict{}, noEPNodePort: map[portKey]Verdict{},
		clusterIPs: map[[4]byte]bool{},
	}
	for _, k := range sortedKeys(p.Services) {
		sp := p.Services[k]
		for _, x := range sp.ServiceIPs {
			key := ipKey{x.Addr, x.Proto, x.Port}
			if _, ok := e.serviceIPs[key]; !ok {
				e.serviceIPs[key] = x.Verdict
			}
		}
		for _, x := range sp.NoEndpoints {
			key := ipKey{x.Addr, x.Proto, x.Port}
			if _, ok := e.noEndpoints[key]; !ok {
				e.noEndpoints[key] = x.Verdict
			}
		}
		for _, x := range sp.NodePorts {
			key := portKey{x.Proto, x.Port}
			if _, ok := e.nodePorts[key]; !ok {
				e.nodePorts[key] = x.Verdict
			}
		}
		for _, x := range sp.NoEndpointNodePorts {
			key := portKey{x.Proto, x.Port}
			if _, ok := e.noEPNodePort[key]; !ok {
				e.noEPNodePort[key] = x.Verdict
			}
		}
		for _, a := range sp.ClusterIPs {
			e.clusterIPs[a.As4()] = true
		}
	}
	return e
}

// diffCount is how many of old's elements are deleted or rewritten for n.
func (old *elements) diffCount(n *elements) int {
	c := 0
	count := func(gone bool) {
		if gone {
			c++
		}
	}
	for k, v := range old.serviceIPs {
		nv, ok := n.serviceIPs[k]
		count(!ok || nv != v)
	}
	for k, v := range old.noEndpoints {
		nv, ok := n.noEndpoints[k]
		count(!ok || nv != v)
	}
	for k, v := range old.nodePorts {
		nv, ok := n.nodePorts[k]
		count(!ok || nv != v)
	}
	for k, v := range old.noEPNodePort {
		nv, ok := n.noEPNodePort[k]
		count(!ok || nv != v)
	}
	for k := range old.clusterIPs {
		count(!n.clusterIPs[k])
	}
	return c
}

// writeElements queues the element changes from old to n: deletions
// first, then additions, so that a key whose verdict changed is rewritten.
// It returns how many elements it adds.
func (a *Applier) writeElements(old, n *elements) (int, error) {
	sk := a.sk
	added := 0
	ipMap := func(s *nftables.Set, o, nw map[ipKey]Verdict) error {
		var del, add []nftables.SetElement
		for k, v := range o {
			if nv, ok := nw[k]; !ok || nv != v {
				del = append(del, nftables.SetElement{Key: ipKeyBytes(k.addr, k.proto, k.port)})
			}
		}
		for k, v := range nw {
			if ov, ok := o[k]; !ok || ov != v {
				add = append(add, nftables.SetElement{Key: ipKeyBytes(k.addr, k.proto, k.port), VerdictData: verdictExpr(v)})
			}
		}
		return a.setElements(s, del, add, &added)
	}
	portMap := func(s *nftables.Set, o, nw map[portKey]Verdict) error {
		var del, add []nftables.SetElement
		for k, v := range o {
			if nv, ok := nw[k]; !ok || nv != v {
				del = append(del, nftables.SetElement{Key: portKeyBytes(k.proto, k.port)})
			}
		}
		for k, v := range nw {
			if ov, ok := o[k]; !ok || ov != v {
				add = append(add, nftables.SetElement{Key: portKeyBytes(k.proto, k.port), VerdictData: verdictExpr(v)})
			}
		}
		return a.setElements(s, del, add, &added)
	}
	if err := ipMap(sk.serviceIPs, old.serviceIPs, n.serviceIPs); err != nil {
		return added, err
	}
	if err := ipMap(sk.noEndpoints, old.noEndpoints, n.noEndpoints); err != nil {
		return added, err
	}
	if err := portMap(sk.nodePorts, old.nodePorts, n.nodePorts); err != nil {
		return added, err
	}
	if err := portMap(sk.noEPNodePort, old.noEPNodePort, n.noEPNodePort); err != nil {
		return added, err
	}
	var del, add []nftables.SetElement
	for k := range old.clusterIPs {
		if !n.clusterIPs[k] {
			del = append(del, nftables.SetElement{Key: k[:]})
		}
	}
	for k := range n.clusterIPs {
		if !old.clusterIPs[k] {
			key := k
			add = append(add, nftables.SetElement{Key: key[:]})
		}
	}
	return added, a.setElements(sk.clusterIPs, del, add, &added)
}

// elementChunk bounds the elements of one netlink message.
const elementChunk = 1024

func (a *Applier) setElements(s *nftables.Set, del, add []nftables.SetElement, added *int) error {
	for chunk := range slices.Chunk(del, elementChunk) {
		if err := a.conn.SetDeleteElements(s, chunk); err != nil {
			return fmt.Errorf("failed to delete elements of %s: %w", s.Name, err)
		}
	}
	for chunk := range slices.Chunk(add, elementChunk) {
		if err := a.conn.SetAddElements(s, chunk); err != nil {
			return fmt.Errorf("failed to add elements to %s: %w", s.Name, err)
		}
	}
	*added += len(add)
	return nil
}

// Remove deletes the table; a missing table is not an error.
func Remove(conn Conn) error {
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	conn.AddTable(t)
	conn.DelTable(t)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("failed to remove nftables table %s: %w", TableName, err)
	}
	return nil
}
