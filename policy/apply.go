package policy

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
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

// Drops are packets dropped by policy since the Applier started.
type Drops struct {
	// Chains counts per chain (pods with the same policies) of the current
	// ruleset; Retired is what chains that no longer exist counted.
	Chains  map[string]uint64
	Retired uint64
	// Pods counts per isolated pod (while it stays isolated).
	Pods map[PodDrop]uint64
}

// PodDrop names a pod's default deny in one direction.
type PodDrop struct {
	Direction Direction
	IP        netip.Addr
}

// Total is every packet dropped.
func (d Drops) Total() uint64 {
	t := d.Retired
	for _, n := range d.Chains {
		t += n
	}
	return t
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

// carry adds the live counters to the carried ones before a replace
// resets them; what chains and pods of the new ruleset will not count again
// is retired (chains) or dropped (pods).
func (a *Applier) carry(o Objects, rs Ruleset) {
	live, err := a.liveDrops(o.Table)
	if err != nil {
		return
	}
	for k, v := range live.Chains {
		a.carried.Chains[k] += v
	}
	for k, v := range live.Pods {
		a.carried.Pods[k] += v
	}
	next := map[string]bool{}
	for _, c := range rs.Chains {
		next[c.Name] = true
	}
	for k, v := range a.carried.Chains {
		if !next[k] {
			a.carried.Retired += v
			delete(a.carried.Chains, k)
		}
	}
	isolated := map[PodDrop]bool{}
	for _, m := range rs.Ingress {
		isolated[PodDrop{Ingress, m.IP}] = true
	}
	for _, m := range rs.Egress {
		isolated[PodDrop{Egress, m.IP}] = true
	}
	for k := range a.carried.Pods {
		if !isolated[k] {
			delete(a.carried.Pods, k)
		}
	}
}

// Forget makes the next Apply repair the elements even when they look
// unchanged: peer sets and maps are rewritten, the per-pod drop sets are
// re-read from the kernel and corrected (keeping their counters).
func (a *Applier) Forget() { a.stale = true }

// Drops returns the packets dropped since the Applier started, by chain
// and by pod (including counts from before a table replace).
func (a *Applier) Drops() (Drops, error) {
	live, err := a.liveDrops(&nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4})
	out := Drops{Chains: map[string]uint64{}, Pods: map[PodDrop]uint64{}, Retired: a.carried.Retired}
	for k, v := range a.carried.Chains {
		out.Chains[k] = v
	}
	for k, v := range a.carried.Pods {
		out.Pods[k] = v
	}
	for k, v := range live.Chains {
		out.Chains[k] += v
	}
	for k, v := range live.Pods {
		out.Pods[k] += v
	}
	return out, err
}

func (a *Applier) liveDrops(t *nftables.Table) (Drops, error) {
	d := Drops{Chains: map[string]uint64{}, Pods: map[PodDrop]uint64{}}
	objs, err := a.conn.GetObjects(t)
	if err != nil {
		return d, fmt.Errorf("failed to read the counters of nftables table %s: %w", TableName, err)
	}
	for _, o := range objs {
		if c, ok := o.(*nftables.CounterObj); ok {
			d.Chains[c.Name] = c.Packets
		}
	}
	for dir, name := range map[Direction]string{Ingress: ingressDrops, Egress: egressDrops} {
		el, err := a.conn.GetSetElements(&nftables.Set{Table: t, Name: name, KeyType: nftables.TypeIPAddr})
		if err != nil {
			continue // a table from before per-pod counting
		}
		for _, e := range el {
			if e.Counter != nil && e.Counter.Packets > 0 && len(e.Key) == 4 {
				d.Pods[PodDrop{dir, netip.AddrFrom4([4]byte(e.Key))}] = e.Counter.Packets
			}
		}
	}
	return d, nil
}

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

// Remove deletes weft's policy table; a missing table is not an error.
func Remove(conn Conn) error {
	t := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	conn.AddTable(t)
	conn.DelTable(t)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("failed to remove nftables table %s: %w", TableName, err)
	}
	return nil
}

// SendBuffer is the netlink socket send buffer NewConn asks for. A batch
// is one sendmsg, and a large cluster's table (thousands of set elements)
// does not fit the default buffer (about 200KiB).
const SendBuffer = 64 << 20

// NewConn opens a netlink connection for nftables (in the current network
// namespace unless an option says otherwise) whose send buffer holds a
// large batch.
func NewConn(opts ...nftables.ConnOption) (*nftables.Conn, error) {
	c, err := nftables.New(append(opts, nftables.WithSockOptions(bigSendBuffer))...)
	if err != nil {
		return nil, fmt.Errorf("failed to open nftables netlink connection: %w", err)
	}
	return c, nil
}

// bigSendBuffer sets SO_SNDBUFFORCE and SO_RCVBUFFORCE (past
// net.core.wmem_max and rmem_max; needs CAP_NET_ADMIN, which programming
// nftables needs anyway; the kernel acknowledges every message of a batch,
// so the receive side needs room too), falling back to the plain options.
func bigSendBuffer(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err == nil {
		var serr, rerr error
		err = rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, SendBuffer)
			rerr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, SendBuffer)
		})
		if err == nil && serr == nil && rerr == nil {
			return nil
		}
	}
	if err := c.SetWriteBuffer(SendBuffer); err != nil {
		return err
	}
	return c.SetReadBuffer(SendBuffer)
}
