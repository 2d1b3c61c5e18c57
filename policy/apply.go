package policy

import (
	"fmt"
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
	Elements  Outcome = "elements"  // only set and map elements were replaced
	Replaced  Outcome = "replaced"  // the whole table was replaced
)

// Applier puts rulesets into the kernel, each in one atomic batch: when
// the kernel's table has the ruleset's structure (recognised by the
// fingerprint in the forward chain's first rule) only the set and map
// elements are replaced, so counters keep counting and no hook is
// re-registered; otherwise the whole table is replaced. A failed batch
// changes nothing, so the previous ruleset stays in force.
//
// An Applier is not safe for concurrent use.
type Applier struct {
	conn     Conn
	elements string            // ElementsFingerprint last applied; "" unknown
	sets     map[string]string // digest of each set's elements last applied; nil unknown
	carried  map[string]uint64 // drops counted by counters a replace reset, by chain
}

// NewApplier returns an Applier on conn.
func NewApplier(conn Conn) *Applier {
	return &Applier{conn: conn, carried: map[string]uint64{}}
}

// Apply makes the kernel's policy table rs.
func (a *Applier) Apply(rs Ruleset) (Outcome, error) {
	o := Render(rs)
	el := rs.ElementsFingerprint()
	if a.kernelFingerprint(o.Table) == o.Fingerprint {
		if el == a.elements {
			return Unchanged, nil
		}
		digests := setDigests(o)
		for _, s := range o.Sets {
			if a.sets != nil && a.sets[s.Name] == digests[s.Name] {
				continue // only the sets that changed
			}
			a.conn.FlushSet(s)
			if err := a.addElements(s, o.Elements[s.Name]); err != nil {
				return Elements, err
			}
		}
		if err := a.conn.Flush(); err != nil {
			a.elements, a.sets = "", nil
			return Elements, fmt.Errorf("failed to update elements of nftables table %s: %w", TableName, err)
		}
		a.elements, a.sets = el, digests
		return Elements, nil
	}
	if live, err := a.liveDrops(o.Table); err == nil {
		for k, v := range live {
			a.carried[k] += v
		}
	}
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
		a.elements, a.sets = "", nil
		return Replaced, fmt.Errorf("failed to replace nftables table %s: %w", TableName, err)
	}
	a.elements, a.sets = el, setDigests(o)
	return Replaced, nil
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

// Forget makes the next Apply rewrite every set's elements even when they
// look unchanged, repairing a hand-edited set.
func (a *Applier) Forget() { a.elements, a.sets = "", nil }

// Drops returns the packets each chain's default deny dropped since the
// Applier started (including counts from before a table replace).
func (a *Applier) Drops() (map[string]uint64, error) {
	live, err := a.liveDrops(&nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4})
	out := make(map[string]uint64, len(a.carried)+len(live))
	for k, v := range a.carried {
		out[k] = v
	}
	for k, v := range live {
		out[k] += v
	}
	return out, err
}

func (a *Applier) liveDrops(t *nftables.Table) (map[string]uint64, error) {
	objs, err := a.conn.GetObjects(t)
	if err != nil {
		return nil, fmt.Errorf("failed to read the counters of nftables table %s: %w", TableName, err)
	}
	out := map[string]uint64{}
	for _, o := range objs {
		if c, ok := o.(*nftables.CounterObj); ok {
			out[c.Name] = c.Packets
		}
	}
	return out, nil
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
