package dnsproxy

import "net/netip"

// Clusterset IPs: the active gateway gives each clusterset Service with
// ClusterIPs one virtual address in this cluster, which the Service proxy
// spreads over every exporting cluster's endpoints. The agent hands the
// table to SetClustersetIPs; <svc>.<ns>.svc.clusterset.local answers it,
// and the exporting clusters' ClusterIPs only while the Service has none.

// SetClustersetIPs replaces the table of clusterset IPs ("ns/name" →
// address, names lower case).
func (c *ClustersetRecords) SetClustersetIPs(ips map[string]netip.Addr) {
	next := make(map[string]netip.Addr, len(ips))
	owner := make(map[netip.Addr]string, len(ips))
	for k, a := range ips {
		next[k] = a
		owner[a] = k
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(next) == len(c.ips) {
		same := true
		for k, a := range next {
			if c.ips[k] != a {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	c.gen.Add(1)
	c.ips, c.ipOwner = next, owner
}

// ClustersetIP implements SetRecords.
func (c *ClustersetRecords) ClustersetIP(namespace, name string) (netip.Addr, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	a, ok := c.ips[namespace+"/"+name]
	return a, ok
}
