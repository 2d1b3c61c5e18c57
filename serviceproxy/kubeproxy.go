package serviceproxy

import (
	"github.com/google/nftables"
)

// Lister is the part of *nftables.Conn that reads which tables and chains
// the kernel holds.
type Lister interface {
	ListTablesOfFamily(nftables.TableFamily) ([]*nftables.Table, error)
	ListChainsOfTableFamily(nftables.TableFamily) ([]*nftables.Chain, error)
	ListChain(*nftables.Table, string) (*nftables.Chain, error)
}

var _ Lister = (*nftables.Conn)(nil)

// KubeProxyPresent reports whether kube-proxy's rules are on the node, and
// which: its nftables table (nftables mode) or its KUBE-SERVICES chain
// (iptables mode through iptables-nft). iptables-legacy rules are not
// visible through nftables; services.proxy: off is the setting for such a
// node.
func KubeProxyPresent(l Lister) (string, error) {
	nat := false
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6} {
		ts, err := l.ListTablesOfFamily(fam)
		if err != nil {
			return "", err
		}
		for _, t := range ts {
			switch {
			case t.Name == "kube-proxy":
				return "nftables table kube-proxy", nil
			case t.Name == "nat" && fam == nftables.TableFamilyIPv4:
				nat = true
			}
		}
	}
	if !nat {
		return "", nil
	}
	// One chain looked up, not every chain listed: the service table
	// alone can hold tens of thousands.
	t := &nftables.Table{Name: "nat", Family: nftables.TableFamilyIPv4}
	if c, err := l.ListChain(t, "KUBE-SERVICES"); err == nil && c != nil {
		return "iptables chain KUBE-SERVICES", nil
	}
	return "", nil
}

// Drifted reports whether the kernel's table lacks a chain of the plan
// last applied or has one it does not: a hand edit, or another program's.
// Rules inside a chain are rewritten whenever its Service changes.
func (a *Applier) Drifted(l Lister) bool {
	if a.services == nil {
		return true
	}
	if !a.current() {
		return true
	}
	cs, err := l.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return true
	}
	want := map[string]bool{}
	for _, c := range a.sk.chains {
		want[c.Name] = true
	}
	for _, sp := range a.services {
		for _, c := range sp.Chains {
			want[c.Name] = true
		}
	}
	n := 0
	for _, c := range cs {
		if c.Table == nil || c.Table.Name != TableName {
			continue
		}
		if !want[c.Name] {
			return true
		}
		n++
	}
	return n != len(want)
}
