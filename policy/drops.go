package policy

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
)

// Drop counting: every chain's default deny counts in a named counter (per
// chain, that is per set of policies) and looks the pod up in a set whose
// elements carry counters (per pod). A table replace resets both, so the
// Applier carries what they had counted.

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
