package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Input is what Compile reads: the cluster's objects as the informers hold
// them, and which node this is.
type Input struct {
	Node string
	// SourceCheck, when valid (the cluster CIDR), makes the table drop new
	// connections from an address in it that did not arrive on the
	// interface that address is routed through: a pod cannot pass for
	// another pod to get past a policy.
	SourceCheck netip.Prefix
	Policies    []*networkingv1.NetworkPolicy
	Pods        []*corev1.Pod
	Namespaces  []*corev1.Namespace
}

// compiler holds one Compile's indexes and its output under construction.
type compiler struct {
	in    Input
	pods  []*pod // eligible pods, all nodes, sorted by key
	local []*pod // every pod on this node (eligible or not), sorted
	// podsByNS indexes the eligible pods by namespace; podNamespaces
	// lists those namespaces, sorted.
	podsByNS      map[string][]*pod
	podNamespaces []string
	// hostPods are pods on the host network, never peers (reported when
	// a selector matches one).
	hostPods   []*pod
	namespaces map[string]labels.Set
	rs         Ruleset
	sets       map[string]bool // names already in rs.Sets
}

// policyInfo is one parsed NetworkPolicy.
type policyInfo struct {
	key      string
	obj      *networkingv1.NetworkPolicy
	selector labels.Selector
	ingress  bool // policyTypes include Ingress
	egress   bool
	rules    map[Direction][]*compiledRule
}

// compiledRule is one ingress or egress rule with its peers resolved.
type compiledRule struct {
	index   int
	invalid bool
	anyPeer bool   // no from/to: every address
	set     string // peer set name (when !anyPeer)
	spans   []span // the set's addresses
	peers   []*pod // pods among the peers, computed on demand (peerPods)
	ports   []networkingv1.NetworkPolicyPort
}

// Compile computes node in.Node's policy table. It is pure. It fails only
// when a policy's own podSelector cannot be parsed (the API server never
// stores one), since then weft cannot tell which pods the policy isolates;
// the caller keeps its previous ruleset.
func Compile(in Input) (Ruleset, error) {
	c := &compiler{in: in, namespaces: map[string]labels.Set{}, sets: map[string]bool{}}
	for _, ns := range in.Namespaces {
		l := labels.Set{}
		for k, v := range ns.Labels {
			l[k] = v
		}
		if _, ok := l[corev1.LabelMetadataName]; !ok {
			l[corev1.LabelMetadataName] = ns.Name
		}
		c.namespaces[ns.Name] = l
	}
	for _, o := range in.Pods {
		p := newPod(o, in.Node)
		if p.eligible() {
			c.pods = append(c.pods, p)
		} else if p.host {
			c.hostPods = append(c.hostPods, p)
		}
		if p.local {
			c.local = append(c.local, p)
		}
	}
	byKey := func(a, b *pod) int { return strings.Compare(a.key, b.key) }
	slices.SortFunc(c.pods, byKey)
	slices.SortFunc(c.local, byKey)
	c.podsByNS = map[string][]*pod{}
	for _, p := range c.pods {
		if _, ok := c.podsByNS[p.namespace]; !ok {
			c.podNamespaces = append(c.podNamespaces, p.namespace)
		}
		c.podsByNS[p.namespace] = append(c.podsByNS[p.namespace], p)
	}

	pols, err := c.parsePolicies()
	if err != nil {
		return Ruleset{}, err
	}
	c.rs.AllPolicies = len(pols)
	if in.SourceCheck.IsValid() && in.SourceCheck.Addr().Is4() {
		c.rs.SourceCheck = in.SourceCheck.Masked()
	}
	c.assign(pols)
	return c.rs, nil
}

func (c *compiler) parsePolicies() ([]*policyInfo, error) {
	var out []*policyInfo
	for _, np := range c.in.Policies {
		key := np.Namespace + "/" + np.Name
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			return nil, fmt.Errorf("NetworkPolicy %s: spec.podSelector: %w", key, err)
		}
		pi := &policyInfo{key: key, obj: np, selector: sel, rules: map[Direction][]*compiledRule{}}
		pi.ingress, pi.egress = policyTypes(np)
		out = append(out, pi)
	}
	slices.SortFunc(out, func(a, b *policyInfo) int { return strings.Compare(a.key, b.key) })
	return out, nil
}

// policyTypes applies the API's defaulting when policyTypes is empty:
// Ingress always, Egress when the policy has egress rules.
func policyTypes(np *networkingv1.NetworkPolicy) (ingress, egress bool) {
	if len(np.Spec.PolicyTypes) == 0 {
		return true, len(np.Spec.Egress) > 0
	}
	for _, t := range np.Spec.PolicyTypes {
		switch t {
		case networkingv1.PolicyTypeIngress:
			ingress = true
		case networkingv1.PolicyTypeEgress:
			egress = true
		}
	}
	return ingress, egress
}

// assign finds, for every local pod, the policies that isolate it in each
// direction, and builds (or shares) its chains.
func (c *compiler) assign(pols []*policyInfo) {
	chains := map[string]int{} // chain name -> index in rs.Chains
	used := map[string]bool{}  // policies selecting a local pod
	byNS := map[string][]*policyInfo{}
	for _, pi := range pols {
		byNS[pi.obj.Namespace] = append(byNS[pi.obj.Namespace], pi)
	}
	for _, p := range c.local {
		var in, eg []*policyInfo
		for _, pi := range byNS[p.namespace] {
			if !pi.selector.Matches(p.labels) {
				continue
			}
			if !p.eligible() {
				if p.host {
					c.problem("%s: pod %s is on the host network; weft does not enforce policy there", pi.key, p.key)
				}
				continue
			}
			used[pi.key] = true
			if pi.ingress {
				in = append(in, pi)
			}
			if pi.egress {
				eg = append(eg, pi)
			}
		}
		if len(in) > 0 {
			name := c.chainFor(chains, Ingress, p, in)
			c.rs.Ingress = append(c.rs.Ingress, MapEntry{IP: p.ip, Pod: p.key, Chain: name})
		}
		if len(eg) > 0 {
			name := c.chainFor(chains, Egress, p, eg)
			c.rs.Egress = append(c.rs.Egress, MapEntry{IP: p.ip, Pod: p.key, Chain: name})
		}
		if len(in)+len(eg) > 0 {
			c.rs.Pods++
		}
	}
	c.rs.Policies = len(used)
	slices.SortFunc(c.rs.Chains, func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(c.rs.Sets, func(a, b Set) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(c.rs.Problems, strings.Compare)
	c.rs.Problems = slices.Compact(c.rs.Problems)
}

// chainFor renders the allow rules of pols for target pod p in direction
// d and returns the name of the chain holding them, adding it when no pod
// before had the same rules.
func (c *compiler) chainFor(chains map[string]int, d Direction, p *pod, pols []*policyInfo) string {
	ch := Chain{Direction: d}
	for _, pi := range pols {
		ch.Policies = append(ch.Policies, pi.key)
		for _, r := range c.rulesOf(pi, d) {
			ch.Rules = append(ch.Rules, c.render(pi, d, r, p)...)
		}
	}
	var b strings.Builder
	writeChain(&b, ch)
	prefix := "in-"
	if d == Egress {
		prefix = "eg-"
	}
	ch.Name = prefix + digest(b.String())
	if _, ok := chains[ch.Name]; !ok {
		chains[ch.Name] = len(c.rs.Chains)
		c.rs.Chains = append(c.rs.Chains, ch)
	}
	return ch.Name
}

// rulesOf compiles a policy's rules in one direction once.
func (c *compiler) rulesOf(pi *policyInfo, d Direction) []*compiledRule {
	if rs, ok := pi.rules[d]; ok {
		return rs
	}
	var rs []*compiledRule
	if d == Ingress {
		for i, r := range pi.obj.Spec.Ingress {
			rs = append(rs, c.compileRule(pi, d, i, r.From, r.Ports))
		}
	} else {
		for i, r := range pi.obj.Spec.Egress {
			rs = append(rs, c.compileRule(pi, d, i, r.To, r.Ports))
		}
	}
	pi.rules[d] = rs
	return rs
}

func (c *compiler) problem(format string, args ...any) {
	c.rs.Problems = append(c.rs.Problems, fmt.Sprintf(format, args...))
}
