package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// TableName is the nftables table (family ip) weft owns for policy.
const TableName = "weft-policy"

// Direction is ingress or egress.
type Direction string

// Directions.
const (
	Ingress Direction = "ingress"
	Egress  Direction = "egress"
)

// Ruleset is the whole desired policy state of one node. It is a plain
// value: Compile makes it, Render and Show read it.
type Ruleset struct {
	// Sets are the peer sets the chains' rules refer to, by name.
	Sets []Set
	// Chains are the per-class allow lists, ingress and egress.
	Chains []Chain
	// Ingress and Egress map each isolated local pod to its chain.
	Ingress []MapEntry
	Egress  []MapEntry
	// Policies is the number of NetworkPolicies that select at least one
	// pod on this node; AllPolicies counts every policy seen.
	Policies    int
	AllPolicies int
	// Pods is the number of local pods isolated in at least one direction.
	Pods int
	// Problems are what weft could not enforce exactly, one line each.
	Problems []string
	// SourceCheck is the prefix whose source addresses are checked against
	// the routes (see Input.SourceCheck); invalid when off.
	SourceCheck netip.Prefix
}

// SourceCheckCounter names the counter of packets the source check drops.
const SourceCheckCounter = "source-check"

// Set is a named set of IPv4 addresses, as ranges.
type Set struct {
	Name   string
	Ranges []Range
}

// Range is an inclusive IPv4 address range.
type Range struct{ First, Last netip.Addr }

func (r Range) String() string {
	if r.First == r.Last {
		return r.First.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// Chain is the allow list shared by the pods whose policies compile to the
// same rules. Packets that match no rule are counted and dropped.
type Chain struct {
	Name      string
	Direction Direction
	// Policies select the pods that use this chain ("ns/name").
	Policies []string
	Rules    []Rule
}

// Rule allows packets from (ingress) or to (egress) Peers, with protocol
// and destination port range when set.
type Rule struct {
	// Policy and Index name the NetworkPolicy rule this came from.
	Policy string
	Index  int
	// Peers is a Set name; empty means any address.
	Peers string
	// Proto is an IP protocol number (6, 17, 132); 0 means any.
	Proto uint8
	// PortFirst-PortLast is the destination port range; 0 means any.
	PortFirst, PortLast uint16
}

// MapEntry sends an isolated local pod's packets to its chain.
type MapEntry struct {
	IP    netip.Addr
	Pod   string // ns/name
	Chain string
}

// Verdict is what an allow rule does: egress rules return to the forward
// chain (the destination's ingress is checked next), ingress rules accept.
func (d Direction) verdict() string {
	if d == Egress {
		return "return"
	}
	return "accept"
}

// StructureFingerprint identifies everything but set and map elements:
// the chains and their rules and the names of the sets. Two rulesets with
// the same structure differ only in elements, which can be updated in place.
func (rs *Ruleset) StructureFingerprint() string {
	var b strings.Builder
	b.WriteString("weft-policy-v3\n")
	fmt.Fprintf(&b, "source-check %v\n", rs.SourceCheck)
	for _, s := range rs.Sets {
		fmt.Fprintf(&b, "set %s\n", s.Name)
	}
	for _, c := range rs.Chains {
		writeChain(&b, c)
	}
	return digest(b.String())
}

// ElementsFingerprint identifies the set and map elements.
func (rs *Ruleset) ElementsFingerprint() string {
	var b strings.Builder
	for _, s := range rs.Sets {
		fmt.Fprintf(&b, "set %s", s.Name)
		for _, r := range s.Ranges {
			b.WriteString(" " + r.String())
		}
		b.WriteByte('\n')
	}
	for _, m := range rs.Ingress {
		fmt.Fprintf(&b, "in %s %s\n", m.IP, m.Chain)
	}
	for _, m := range rs.Egress {
		fmt.Fprintf(&b, "eg %s %s\n", m.IP, m.Chain)
	}
	return digest(b.String())
}

func digest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:8])
}
