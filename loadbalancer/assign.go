package loadbalancer

// Assigning is pure: from the pools and every Service that is, or holds an
// address as if it were, a weft LoadBalancer, it computes which address
// each Service should have. Every replica that computes it from the same
// Services gets the same answer, so a new leader does not reshuffle.
//
// The rules, in the order they are applied:
//
//  1. A Service weft serves keeps an address its status already holds,
//     when the address is in a pool, is the one it asks for (if it asks),
//     and no older Service kept it first (two Services showing one address
//     only happens after a split; the older keeps it).
//  2. Every other pool address some Service's status still shows stays
//     reserved until that status is cleared, whether or not weft serves
//     the Service (not type LoadBalancer, another class, asks for another
//     address): an address is never handed to a second Service while the
//     first still shows it. It is free at the next pass.
//  3. Services that ask for an address (spec.loadBalancerIP or the
//     weft.dev/load-balancer-ip annotation) get it if it is in a pool and
//     free.
//  4. The rest get the lowest free address, pools in configuration order.
//
// Within each step Services go in creation order, then by key.

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Request is what Assign needs of one Service.
type Request struct {
	Key  string // namespace/name
	Type corev1.ServiceType
	// Class is spec.loadBalancerClass; nil is no class (weft serves it).
	Class *string
	// Requested is the address the Service asks for, "" for any. Not
	// parsed by the caller, so a bad one is reported like the rest.
	Requested string
	// Current is the addresses status.loadBalancer.ingress holds now.
	Current []netip.Addr
	Created time.Time
}

// Reason says why a Service has no address from weft.
type Reason string

// Reasons. The first two are not problems: weft leaves the Service alone.
const (
	ReasonNotLoadBalancer Reason = "NotLoadBalancer"
	ReasonOtherClass      Reason = "OtherClass"
	ReasonPoolExhausted   Reason = "PoolExhausted"
	ReasonInvalidRequest  Reason = "InvalidRequest"
	ReasonOutsidePools    Reason = "OutsidePools"
	ReasonTaken           Reason = "Taken"
)

// Unserved reports whether the reason is a Service weft should serve but
// cannot.
func (r Reason) Unserved() bool {
	return r != "" && r != ReasonNotLoadBalancer && r != ReasonOtherClass
}

// Assignment is the outcome for one Service: Addr when it has one, else
// Reason (and Detail, a sentence for an Event).
type Assignment struct {
	Key    string
	Addr   netip.Addr
	Reason Reason
	Detail string
}

// Serves reports whether weft serves Services of this type and class.
func Serves(typ corev1.ServiceType, class *string, ours string) bool {
	return typ == corev1.ServiceTypeLoadBalancer && (class == nil || *class == ours)
}

// Assign computes every Service's address (see the rules above). The
// result has one Assignment per request, in the requests' order. class is
// the loadBalancerClass weft serves besides none.
func Assign(pools []Pool, class string, reqs []Request) []Assignment {
	order := make([]int, len(reqs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(reqs[a].Created.Compare(reqs[b].Created), cmp.Compare(reqs[a].Key, reqs[b].Key))
	})
	out := make([]Assignment, len(reqs))
	taken := map[netip.Addr]string{} // address → key of the Service holding it
	inPools := func(a netip.Addr) bool {
		return slices.ContainsFunc(pools, func(p Pool) bool { return p.Contains(a) })
	}
	requested := make([]netip.Addr, len(reqs))

	// 1: keep what is valid.
	for _, i := range order {
		r := reqs[i]
		out[i].Key = r.Key
		if !Serves(r.Type, r.Class, class) {
			out[i].Reason = ReasonOtherClass
			if r.Type != corev1.ServiceTypeLoadBalancer {
				out[i].Reason = ReasonNotLoadBalancer
			}
			continue
		}
		if r.Requested != "" {
			a, err := netip.ParseAddr(r.Requested)
			if err != nil || a.Zone() != "" {
				out[i].Reason, out[i].Detail = ReasonInvalidRequest, "requested address "+strconv.Quote(r.Requested)+" is not an IP address"
				continue
			}
			requested[i] = a.Unmap()
		}
		for _, a := range r.Current {
			a = a.Unmap()
			if !inPools(a) || (requested[i].IsValid() && a != requested[i]) {
				continue
			}
			if _, ok := taken[a]; !ok {
				taken[a] = r.Key
				out[i].Addr = a
				break
			}
		}
	}
	// 2: whatever else a status shows stays reserved this time round (the
	// status is cleared by the write this assignment leads to).
	for _, i := range order {
		for _, a := range reqs[i].Current {
			if a = a.Unmap(); inPools(a) {
				if _, ok := taken[a]; !ok {
					taken[a] = reqs[i].Key
				}
			}
		}
	}
	// 3.
	for _, i := range order {
		a := requested[i]
		if !a.IsValid() || out[i].Addr.IsValid() {
			continue
		}
		switch holder, ok := taken[a]; {
		case !inPools(a):
			out[i].Reason, out[i].Detail = ReasonOutsidePools, "requested address "+a.String()+" is in no pool"
		case ok:
			out[i].Reason, out[i].Detail = ReasonTaken, "requested address "+a.String()+" is held by Service "+holder
		default:
			taken[a] = reqs[i].Key
			out[i].Addr = a
		}
	}
	// 4. next remembers where each pool's scan stopped: the addresses
	// before it are all taken, so Services after the first cost no rescan.
	next := make([]netip.Addr, len(pools))
	for j, p := range pools {
		next[j] = p.First
	}
	for _, i := range order {
		if out[i].Addr.IsValid() || out[i].Reason != "" || requested[i].IsValid() {
			continue
		}
		for j, p := range pools {
			for a := next[j]; a.IsValid() && p.Contains(a); a = a.Next() {
				if _, ok := taken[a]; !ok {
					taken[a] = reqs[i].Key
					out[i].Addr = a
					next[j] = a.Next()
					break
				}
			}
			if out[i].Addr.IsValid() {
				break
			}
			next[j] = netip.Addr{} // full
		}
		if !out[i].Addr.IsValid() {
			out[i].Reason, out[i].Detail = ReasonPoolExhausted, "no free address in the pools"
		}
	}
	return out
}

// PoolUsage counts the addresses of each pool that assignments hold.
func PoolUsage(pools []Pool, as []Assignment) []uint64 {
	used := make([]uint64, len(pools))
	for _, a := range as {
		if !a.Addr.IsValid() {
			continue
		}
		for j, p := range pools {
			if p.Contains(a.Addr) {
				used[j]++
				break
			}
		}
	}
	return used
}
