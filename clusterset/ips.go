package clusterset

// Clusterset IPs. Every clusterset Service with ClusterIPs (type
// ClusterSetIP, exported by this cluster or imported) gets one virtual
// address in the importing cluster, its clusterset IP, which
// <svc>.<ns>.svc.clusterset.local answers and every node's Service proxy
// spreads over the endpoints of every exporting cluster.
//
// The active gateway allocates them (AllocateIPs) and publishes the table
// as one ConfigMap (IPsConfigMap in IPsNamespace, key "<ns>.<name>", value
// the address); every node reads it. The table in the API is the state: a
// new active gateway reads it and keeps every address that is still
// valid, so addresses survive failover and restarts. A new Service's
// address is found by hashing its name into the range and probing for
// the next free one, so the same name tends to get the same address back
// after it was gone.

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
)

// Where the table of clusterset IPs lives, and its bounds.
const (
	IPsConfigMap = "weft-clusterset-ips"
	IPsNamespace = "weft-system"
	// DefaultIPRange is the clusterset IP range unless configured: outside
	// the usual pod (10.244.0.0/16) and service (10.96.0.0/12) networks.
	DefaultIPRange = "10.255.0.0/16"
	// MaxIPs bounds the table, so that it fits one ConfigMap (1 MiB).
	MaxIPs = 5000
)

// IPKey is the table's key of Service namespace/name: "<ns>.<name>".
// Both are DNS labels, so the dot cannot be ambiguous, and the key is a
// valid ConfigMap key.
func IPKey(namespace, name string) string { return namespace + "." + name }

// ValidIPRange checks a clusterset IP range: an IPv4 prefix without host
// bits (the Service proxy serves IPv4), of at least 4 addresses.
func ValidIPRange(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("missing")
	case !p.Addr().Is4():
		return fmt.Errorf("%s is not IPv4", p)
	case p.Masked() != p:
		return fmt.Errorf("%s has host bits set (did you mean %s?)", p, p.Masked())
	case p.Bits() > 30:
		return fmt.Errorf("%s is smaller than a /30", p)
	case p.Bits() < 8:
		return fmt.Errorf("%s is larger than a /8", p)
	}
	return nil
}

// Allocation is what AllocateIPs decided.
type Allocation struct {
	// IPs maps "ns/name" to its clusterset IP.
	IPs map[string]netip.Addr
	// Full are the Services ("ns/name", sorted) left without an address:
	// the range has no free one, or the table holds MaxIPs.
	Full []string
	// Moved are Services whose existing address was given up (outside the
	// range, excluded, or held by another), with the reason; each got a
	// new one if it could.
	Moved []string
}

// AllocateIPs gives each wanted Service ("ns/name") an address of rng that
// lies in none of exclude (the cluster's own and its peers' networks).
// existing is the table as published: an address is kept while it is
// valid and no other Service (earlier by key) keeps it. Services no
// longer wanted lose theirs. It is pure and deterministic: the same
// inputs give the same table on any gateway.
func AllocateIPs(rng netip.Prefix, exclude []netip.Prefix, wanted []string, existing map[string]netip.Addr) Allocation {
	al := Allocation{IPs: map[string]netip.Addr{}}
	if ValidIPRange(rng) != nil {
		al.Full = slices.Sorted(slices.Values(wanted))
		return al
	}
	want := slices.Sorted(slices.Values(wanted))
	want = slices.Compact(want)
	first, last := rangeBounds(rng)
	usable := func(a netip.Addr) string {
		switch {
		case !a.Is4() || !rng.Contains(a):
			return "outside the range " + rng.String()
		case a.Less(first) || last.Less(a):
			return "the range's first or last address"
		}
		for _, x := range exclude {
			if x.Contains(a) {
				return "inside " + x.String()
			}
		}
		return ""
	}
	taken := map[netip.Addr]string{}
	var fresh []string
	for _, k := range want {
		a, ok := existing[k]
		if !ok {
			fresh = append(fresh, k)
			continue
		}
		why := usable(a)
		if owner, dup := taken[a]; why == "" && dup {
			why = "also " + owner + "'s"
		}
		if why != "" {
			al.Moved = append(al.Moved, fmt.Sprintf("%s: %s is %s", k, a, why))
			fresh = append(fresh, k)
			continue
		}
		taken[a] = k
		al.IPs[k] = a
	}
	slices.Sort(fresh)
	size := uint64(ipv4(last)-ipv4(first)) + 1
	for _, k := range fresh {
		if len(al.IPs) >= MaxIPs {
			al.Full = append(al.Full, k)
			continue
		}
		start := hashOf(k) % size
		found := false
		for i := uint64(0); i < size; i++ {
			a := addrOf(ipv4(first) + uint32((start+i)%size))
			if _, t := taken[a]; t || usable(a) != "" {
				continue
			}
			taken[a] = k
			al.IPs[k] = a
			found = true
			break
		}
		if !found {
			al.Full = append(al.Full, k)
		}
	}
	return al
}

// rangeBounds are the first and last assignable addresses of rng: its
// network and last address are left out, as on any subnet.
func rangeBounds(rng netip.Prefix) (netip.Addr, netip.Addr) {
	base := ipv4(rng.Addr())
	n := uint32(1) << (32 - rng.Bits())
	return addrOf(base + 1), addrOf(base + n - 2)
}

func ipv4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addrOf(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

func hashOf(key string) uint64 {
	sum := sha256.Sum256([]byte(key))
	return binary.BigEndian.Uint64(sum[:8])
}

// EncodeIPs is the table as ConfigMap data.
func EncodeIPs(ips map[string]netip.Addr) map[string]string {
	out := make(map[string]string, len(ips))
	for k, a := range ips {
		ns, name, _ := strings.Cut(k, "/")
		out[IPKey(ns, name)] = a.String()
	}
	return out
}

// DecodeIPs reads ConfigMap data back into "ns/name" → address. Entries
// that are not a key of two DNS labels and an IPv4 address are left out,
// and an address listed twice stays with the first key (in order):
// every node that reads the same data gets the same table. problems
// names what was left out.
func DecodeIPs(data map[string]string) (ips map[string]netip.Addr, problems []string) {
	ips = map[string]netip.Addr{}
	owner := map[netip.Addr]string{}
	for _, k := range slices.Sorted(maps.Keys(data)) {
		ns, name, ok := strings.Cut(k, ".")
		if !ok || dnsLabel(ns) != nil || dnsLabel(name) != nil {
			problems = append(problems, fmt.Sprintf("%q is not <namespace>.<name>", k))
			continue
		}
		a, err := netip.ParseAddr(data[k])
		if err != nil || !a.Is4() || unicast(a) != nil {
			problems = append(problems, fmt.Sprintf("%s: %q is not a unicast IPv4 address", k, data[k]))
			continue
		}
		if o, dup := owner[a]; dup {
			problems = append(problems, fmt.Sprintf("%s: %s is also %s's", k, a, o))
			continue
		}
		owner[a] = k
		ips[ns+"/"+name] = a
	}
	return ips, problems
}

// IPServices are the Services ("ns/name", sorted) that need a clusterset
// IP: this cluster's exports of type ClusterSetIP (local) and the
// ClusterSetIP imports among the derived slices (those planned and those
// kept as they were). Clusterset IPs are IPv4, as the Service proxy is:
// a Service with IPv6 ClusterIPs only has none, and its name answers
// those.
func IPServices(local Document, derived []*discoveryv1.EndpointSlice) []string {
	seen := map[string]bool{}
	for _, s := range local.Services {
		if s.Type == ClusterSetIP && slices.ContainsFunc(s.ClusterIPs, func(a string) bool {
			ip, err := netip.ParseAddr(a)
			return err == nil && ip.Is4()
		}) {
			seen[s.Namespace+"/"+s.Name] = true
		}
	}
	for _, sl := range derived {
		name := sl.Labels[LabelServiceName]
		if sl.Labels[discoveryv1.LabelManagedBy] != ManagedBy || name == "" || sl.Annotations[AnnotationType] != string(ClusterSetIP) ||
			sl.AddressType != discoveryv1.AddressTypeIPv4 {
			continue
		}
		seen[sl.Namespace+"/"+name] = true
	}
	return slices.Sorted(maps.Keys(seen))
}
