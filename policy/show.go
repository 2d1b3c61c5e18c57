package policy

import (
	"fmt"
	"io"
	"strings"
)

var protoNames = map[uint8]string{6: "tcp", 17: "udp", 132: "sctp"}

// writeChain writes a chain's rules in nft syntax; it is also what a
// chain's name is a digest of.
func writeChain(w io.Writer, c Chain) {
	fmt.Fprintf(w, "\tchain %s {\t# %s of pods selected by %s\n", c.Name, c.Direction, strings.Join(c.Policies, ", "))
	for _, r := range c.Rules {
		fmt.Fprintf(w, "\t\t%s\t# %s %s[%d]\n", ruleText(c.Direction, r), r.Policy, c.Direction, r.Index)
	}
	own := "daddr"
	drops := "ingress-drops"
	if c.Direction == Egress {
		own, drops = "saddr", "egress-drops"
	}
	fmt.Fprintf(w, "\t\tip %s @%s counter name %q drop\t# counted per pod too\n\t}\n", own, drops, c.Name)
}

func ruleText(d Direction, r Rule) string {
	var parts []string
	if r.Peers != "" {
		field := "saddr"
		if d == Egress {
			field = "daddr"
		}
		parts = append(parts, fmt.Sprintf("ip %s @%s", field, r.Peers))
	}
	if r.Proto != 0 {
		parts = append(parts, "meta l4proto "+protoNames[r.Proto])
	}
	switch {
	case r.PortFirst == 0:
	case r.PortFirst == r.PortLast:
		parts = append(parts, fmt.Sprintf("th dport %d", r.PortFirst))
	default:
		parts = append(parts, fmt.Sprintf("th dport %d-%d", r.PortFirst, r.PortLast))
	}
	return strings.Join(append(parts, d.verdict()), " ")
}

// Show writes the ruleset as nft would list it, with comments saying which
// policy and pod each part comes from, followed by the problems.
func Show(w io.Writer, rs Ruleset) {
	fmt.Fprintf(w, "# %d policies select %d pods on this node (%d policies in the cluster)\n", rs.Policies, rs.Pods, rs.AllPolicies)
	fmt.Fprintf(w, "table ip %s {\n", TableName)
	for _, s := range rs.Sets {
		fmt.Fprintf(w, "\tset %s {\n\t\ttype ipv4_addr\n\t\tflags interval\n", s.Name)
		if len(s.Ranges) > 0 {
			el := make([]string, len(s.Ranges))
			for i, r := range s.Ranges {
				el[i] = r.String()
			}
			fmt.Fprintf(w, "\t\telements = { %s }\n", strings.Join(el, ", "))
		}
		fmt.Fprintf(w, "\t}\n")
	}
	for _, m := range []struct {
		name string
		es   []MapEntry
	}{{"ingress", rs.Ingress}, {"egress", rs.Egress}} {
		fmt.Fprintf(w, "\tmap %s {\n\t\ttype ipv4_addr : verdict\n", m.name)
		for _, e := range m.es {
			fmt.Fprintf(w, "\t\t%s : jump %s\t# %s\n", e.IP, e.Chain, e.Pod)
		}
		fmt.Fprintf(w, "\t}\n")
	}
	for _, m := range []struct {
		name string
		es   []MapEntry
	}{{"ingress-drops", rs.Ingress}, {"egress-drops", rs.Egress}} {
		fmt.Fprintf(w, "\tset %s {\t# drops counted per pod\n\t\ttype ipv4_addr\n\t\tcounter\n", m.name)
		for _, e := range m.es {
			fmt.Fprintf(w, "\t\t%s\t# %s\n", e.IP, e.Pod)
		}
		fmt.Fprintf(w, "\t}\n")
	}
	fmt.Fprintf(w, "\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	fmt.Fprintf(w, "\t\tct state established,related accept\n")
	if rs.SourceCheck.IsValid() {
		fmt.Fprintf(w, "\t\tip saddr %s fib saddr . iif oif missing counter name %q drop\t# a pod address must come from where it is routed\n", rs.SourceCheck, SourceCheckCounter)
	}
	fmt.Fprintf(w, "\t\tip saddr vmap @egress\n\t\tip daddr vmap @ingress\n\t}\n")
	for _, c := range rs.Chains {
		writeChain(w, c)
	}
	fmt.Fprintf(w, "}\n")
	for _, p := range rs.Problems {
		fmt.Fprintf(w, "# not enforced exactly: %s\n", p)
	}
}
