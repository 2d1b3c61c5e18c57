package policy

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
)

// Conn is the part of *nftables.Conn the Applier uses.
type Conn interface {
	AddTable(*nftables.Table) *nftables.Table
	DelTable(*nftables.Table)
	AddChain(*nftables.Chain) *nftables.Chain
	AddRule(*nftables.Rule) *nftables.Rule
	AddSet(*nftables.Set, []nftables.SetElement) error
	SetAddElements(*nftables.Set, []nftables.SetElement) error
	SetDeleteElements(*nftables.Set, []nftables.SetElement) error
	GetSetElements(*nftables.Set) ([]nftables.SetElement, error)
	FlushSet(*nftables.Set)
	AddObj(nftables.Obj) nftables.Obj
	GetRules(*nftables.Table, *nftables.Chain) ([]*nftables.Rule, error)
	GetObjects(*nftables.Table) ([]nftables.Obj, error)
	Flush() error
}

var _ Conn = (*nftables.Conn)(nil)

// Outcome says what Apply did.
type Outcome string

// Outcomes.
const (
	Unchanged Outcome = "unchanged" // the kernel already held the ruleset
	Elements  Outcome = "elements"  // only set and map elements were changed
	Replaced  Outcome = "replaced"  // the whole table was replaced
)

// Applier puts rulesets into the kernel, each in one atomic batch: when
// the kernel's table has the ruleset's structure (recognised by the
// fingerprint in the forward chain's first rule) only set and map elements
// change — the peer sets that differ are rewritten, the maps and per-pod
// drop sets get the elements added and deleted, so counters keep counting
// and no hook is re-registered; otherwise the whole table is replaced. A
// failed batch changes nothing, so the previous ruleset stays in force.
//
// An Applier is not safe for concurrent use.
type Applier struct {
	conn     Conn
	elements string                           // ElementsFingerprint last applied; "" unknown
	sets     map[string]string                // digest of each set's elements last applied; nil unknown
	applied  map[string][]nftables.SetElement // elements last applied, by set; nil unknown
	stale    bool                             // Forget was called: re-read or rewrite elements
	carried  Drops                            // counts a table replace reset
}

// NewApplier returns an Applier on conn.
func NewApplier(conn Conn) *Applier {
	return &Applier{conn: conn, carried: Drops{Chains: map[string]uint64{}, Pods: map[PodDrop]uint64{}}}
}

// Apply makes the kernel's policy table rs.
func (a *Applier) Apply(rs Ruleset) (Outcome, error) {
	o := Render(rs)
	el := rs.ElementsFingerprint()
	if a.kernelFingerprint(o.Table) == o.Fingerprint {
		if el == a.elements && !a.stale {
			return Unchanged, nil
		}
		if err := a.updateElements(o); err != nil {
			a.forgetAll()
			return Elements, err
		}
		a.elements, a.sets, a.applied, a.stale = el, setDigests(o), o.Elements, false
		return Elements, nil
	}
	a.carry(o, rs)
	// add + delete + add: the first add makes the delete valid when the
	// table does not exist yet; all of it commits together or not at all.
	a.conn.AddTable(o.Table)
	a.conn.DelTable(o.Table)
	a.conn.AddTable(o.Table)
	// Chains before the maps whose elements jump to them; sets and
	// counters before the rules that refer to them.
	for _, c := range o.Chains {
		a.conn.AddChain(c)
	}
	for _, c := range o.Counters {
		a.conn.AddObj(c)
	}
	for _, s := range o.Sets {
		if err := a.conn.AddSet(s, nil); err != nil {
			return Replaced, fmt.Errorf("failed to queue set %s: %w", s.Name, err)
		}
		if err := a.addElements(s, o.Elements[s.Name]); err != nil {
			return Replaced, err
		}
	}
	for _, r := range o.Rules {
		a.conn.AddRule(r)
	}
	if err := a.conn.Flush(); err != nil {
		a.forgetAll()
		return Replaced, fmt.Errorf("failed to replace nftables table %s: %w", TableName, err)
	}
	a.elements, a.sets, a.applied, a.stale = el, setDigests(o), o.Elements, false
	return Replaced, nil
}

// updateElements changes the elements of the kernel's table to o's in
// one batch.
func (a *Applier) updateElements(o Objects) error {
	digests := setDigests(o)
	for _, s := range o.Sets {
		want := o.Elements[s.Name]
		if s.Interval {
			// Peer sets: rewritten when they differ (an interval's bounds
			// move as addresses join, so a diff would not be simpler).
			if !a.stale && a.sets != nil && a.sets[s.Name] == digests[s.Name] {
				continue
			}
			a.conn.FlushSet(s)
			if err := a.addElements(s, want); err != nil {
				return err
			}
			continue
		}
		// Maps and drop sets: add and delete what differs, so the drop
		// sets' per-pod counters survive.
		old, known := a.applied[s.Name]
		if a.stale || a.applied == nil {
			known = false
			if s.Counter { // re-read, to repair drift without resetting counters
				if k, err := a.conn.GetSetElements(s); err == nil {
					old, known = k, true
				}
			}
		}
		if !known {
			a.conn.FlushSet(s)
			if err := a.addElements(s, want); err != nil {
				return err
			}
			continue
		}
		del, add := diffExact(old, want)
		for len(del) > 0 {
			n := min(maxElements, len(del))
			if err := a.conn.SetDeleteElements(s, del[:n]); err != nil {
				return fmt.Errorf("failed to queue element deletions of set %s: %w", s.Name, err)
			}
			del = del[n:]
		}
		if err := a.addElements(s, add); err != nil {
			return err
		}
	}
	if err := a.conn.Flush(); err != nil {
		return fmt.Errorf("failed to update elements of nftables table %s: %w", TableName, err)
	}
	return nil
}

// diffExact compares the elements of a set without intervals by key (and
// verdict, for maps): what to delete and what to add.
func diffExact(old, want []nftables.SetElement) (del, add []nftables.SetElement) {
	id := func(e nftables.SetElement) string {
		if e.VerdictData != nil {
			return string(e.Key) + ">" + e.VerdictData.Chain
		}
		return string(e.Key)
	}
	have := make(map[string]bool, len(old))
	for _, e := range old {
		have[id(e)] = true
	}
	keep := make(map[string]bool, len(want))
	for _, e := range want {
		keep[id(e)] = true
		if !have[id(e)] {
			add = append(add, e)
		}
	}
	for _, e := range old {
		if !keep[id(e)] {
			del = append(del, nftables.SetElement{Key: e.Key})
		}
	}
	return del, add
}

func (a *Applier) forgetAll() { a.elements, a.sets, a.applied = "", nil, nil }

// Forget makes the next Apply repair the elements even when they look
// unchanged: peer sets and maps are rewritten, the per-pod drop sets are
// re-read from the kernel and corrected (keeping their counters).
func (a *Applier) Forget() { a.stale = true }

// maxElements bounds the elements sent in one netlink message: the list
// is one attribute, whose length field is 16 bits, so a few thousand
// elements (a large namespace's pods, a busy node's map) overflow it.
const maxElements = 512

// addElements queues el in messages of at most maxElements, never
// separating an interval's start from its end.
func (a *Applier) addElements(s *nftables.Set, el []nftables.SetElement) error {
	for len(el) > 0 {
		n := min(maxElements, len(el))
		if n < len(el) && el[n].IntervalEnd {
			n++
		}
		if err := a.conn.SetAddElements(s, el[:n]); err != nil {
			return fmt.Errorf("failed to queue elements of set %s: %w", s.Name, err)
		}
		el = el[n:]
	}
	return nil
}

// setDigests identifies each set's elements.
func setDigests(o Objects) map[string]string {
	out := make(map[string]string, len(o.Sets))
	for _, s := range o.Sets {
		var b strings.Builder
		for _, e := range o.Elements[s.Name] {
			fmt.Fprintf(&b, "%x/%v", e.Key, e.IntervalEnd)
			if e.VerdictData != nil {
				b.WriteString(">" + e.VerdictData.Chain)
			}
			b.WriteByte(' ')
		}
		out[s.Name] = digest(b.String())
	}
	return out
}

// kernelFingerprint is the fingerprint the kernel's table carries, or ""
// when there is no such table or it was not written by weft.
func (a *Applier) kernelFingerprint(t *nftables.Table) string {
	rules, err := a.conn.GetRules(t, &nftables.Chain{Name: forwardChain, Table: t})
	if err != nil || len(rules) == 0 {
		return ""
	}
	s, _ := userdata.GetString(rules[0].UserData, userdata.TypeComment)
	return strings.TrimPrefix(s, commentTag)
}
