// Package nftabletest has a fake nftables connection for unit tests of
// code that writes tables through package nftable.
package nftabletest

import (
	"errors"

	"github.com/google/nftables"
)

// Recorder is an nftable.Conn and nftable.Reader: it records the batch as
// ops ("add table NAME", "del table NAME", "add chain NAME", "add rule
// CHAIN", "flush") and serves rules from Rules, as the kernel would after a
// flush.
type Recorder struct {
	Ops      []string
	Rules    map[string][]*nftables.Rule // chain name -> rules in the "kernel"
	FlushErr error
}

// AddTable records the op.
func (r *Recorder) AddTable(t *nftables.Table) *nftables.Table {
	r.Ops = append(r.Ops, "add table "+t.Name)
	return t
}

// DelTable records the op.
func (r *Recorder) DelTable(t *nftables.Table) { r.Ops = append(r.Ops, "del table "+t.Name) }

// AddChain records the op.
func (r *Recorder) AddChain(c *nftables.Chain) *nftables.Chain {
	r.Ops = append(r.Ops, "add chain "+c.Name)
	return c
}

// AddRule records the op.
func (r *Recorder) AddRule(x *nftables.Rule) *nftables.Rule {
	r.Ops = append(r.Ops, "add rule "+x.Chain.Name)
	return x
}

// Flush records the op and returns FlushErr.
func (r *Recorder) Flush() error { r.Ops = append(r.Ops, "flush"); return r.FlushErr }

// GetRules serves Rules; a chain not in it does not exist.
func (r *Recorder) GetRules(_ *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error) {
	rs, ok := r.Rules[c.Name]
	if !ok {
		return nil, errors.New("no such chain")
	}
	return rs, nil
}
