// Package nftable replaces one nftables table atomically and tells whether
// the kernel already holds it. A table's desired state is planned elsewhere
// (masquerade's NAT table, the DNS proxy's NOTRACK table), with a
// fingerprint in each rule's UserData; Current compares those, so a resync
// replaces the table only when it drifted and does not re-register
// netfilter hooks for nothing.
package nftable

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Table is the desired state of one table: its chains, and its rules in
// order (each names its chain).
type Table struct {
	Table  *nftables.Table
	Chains []*nftables.Chain
	Rules  []*nftables.Rule
}

// Conn is the part of *nftables.Conn that Replace and Remove use.
type Conn interface {
	AddTable(*nftables.Table) *nftables.Table
	DelTable(*nftables.Table)
	AddChain(*nftables.Chain) *nftables.Chain
	AddRule(*nftables.Rule) *nftables.Rule
	Flush() error
}

var _ Conn = (*nftables.Conn)(nil)

// Reader is the part of *nftables.Conn that Current uses.
type Reader interface {
	GetRules(*nftables.Table, *nftables.Chain) ([]*nftables.Rule, error)
}

var _ Reader = (*nftables.Conn)(nil)

// Current reports whether the kernel holds exactly t: every chain has t's
// rules for it, each carrying its fingerprint. A missing table or chain is
// simply not current.
func Current(conn Reader, t Table) bool {
	for _, c := range t.Chains {
		got, err := conn.GetRules(t.Table, c)
		if err != nil {
			return false
		}
		var want []*nftables.Rule
		for _, r := range t.Rules {
			if r.Chain == c {
				want = append(want, r)
			}
		}
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if string(got[i].UserData) != string(want[i].UserData) {
				return false
			}
		}
	}
	return true
}

// Replace replaces the table with t in one atomic batch.
func Replace(conn Conn, t Table) error {
	// add + delete + add: the first add makes the delete valid even when
	// the table does not exist yet; all three commit together.
	conn.AddTable(t.Table)
	conn.DelTable(t.Table)
	conn.AddTable(t.Table)
	for _, c := range t.Chains {
		conn.AddChain(c)
	}
	for _, r := range t.Rules {
		conn.AddRule(r)
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("failed to apply nftables table %s: %w", t.Table.Name, err)
	}
	return nil
}

// Remove deletes the table; a missing table is not an error.
func Remove(conn Conn, family nftables.TableFamily, name string) error {
	t := &nftables.Table{Name: name, Family: family}
	conn.AddTable(t)
	conn.DelTable(t)
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("failed to remove nftables table %s: %w", name, err)
	}
	return nil
}

// NewConn opens a netlink connection for nftables in the current network
// namespace.
func NewConn() (*nftables.Conn, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("failed to open nftables netlink connection: %w", err)
	}
	return c, nil
}

// LargeBuffer is the netlink socket buffer NewLargeConn asks for. A batch
// is one sendmsg, and a large cluster's table (thousands of set elements)
// does not fit the default buffer (about 200KiB).
const LargeBuffer = 64 << 20

// NewLargeConn opens a netlink connection for nftables (in the current
// network namespace unless an option says otherwise) whose buffers hold a
// large batch and the kernel's acknowledgement of every message in it.
func NewLargeConn(opts ...nftables.ConnOption) (*nftables.Conn, error) {
	c, err := nftables.New(append(opts, nftables.WithSockOptions(largeBuffers))...)
	if err != nil {
		return nil, fmt.Errorf("failed to open nftables netlink connection: %w", err)
	}
	return c, nil
}

// largeBuffers sets SO_SNDBUFFORCE and SO_RCVBUFFORCE (past
// net.core.wmem_max and rmem_max; needs CAP_NET_ADMIN, which programming
// nftables needs anyway), falling back to the plain options.
func largeBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err == nil {
		var serr, rerr error
		err = rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, LargeBuffer)
			rerr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, LargeBuffer)
		})
		if err == nil && serr == nil && rerr == nil {
			return nil
		}
	}
	if err := c.SetWriteBuffer(LargeBuffer); err != nil {
		return err
	}
	return c.SetReadBuffer(LargeBuffer)
}
