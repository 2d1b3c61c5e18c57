package policy

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// IP protocol numbers of the protocols NetworkPolicy names.
var protoNumbers = map[corev1.Protocol]uint8{
	corev1.ProtocolTCP:  6,
	corev1.ProtocolUDP:  17,
	corev1.ProtocolSCTP: 132,
}

func protocolOf(pt networkingv1.NetworkPolicyPort) corev1.Protocol {
	if pt.Protocol == nil || *pt.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return *pt.Protocol
}

// setBase names the peer set of rule i of policy key in direction d. The
// name depends only on the rule's place, never on who the peers are, so a
// label change updates the set's elements and not the chains.
func setBase(key string, d Direction, i int) string {
	return fmt.Sprintf("p-%s-%s%d", digest(key)[:10], string(d[0]), i)
}

// compileRule resolves one rule's peers into a set and checks its ports.
// A rule with anything weft cannot read is marked invalid and reported; it
// then allows nothing.
func (c *compiler) compileRule(pi *policyInfo, d Direction, i int, peers []networkingv1.NetworkPolicyPeer, ports []networkingv1.NetworkPolicyPort) *compiledRule {
	field := fmt.Sprintf("%s: spec.%s[%d]", pi.key, d, i)
	peerField := "from"
	if d == Egress {
		peerField = "to"
	}
	r := &compiledRule{index: i, ports: ports}
	bad := func(format string, args ...any) {
		r.invalid = true
		c.problem("%s: %s; the rule is left out, so the pods it selects stay isolated from what it would allow", field, fmt.Sprintf(format, args...))
	}
	for j, pt := range ports {
		if _, ok := protoNumbers[protocolOf(pt)]; !ok {
			bad("ports[%d].protocol %q is not TCP, UDP or SCTP", j, protocolOf(pt))
		}
		switch {
		case pt.Port == nil:
			if pt.EndPort != nil {
				bad("ports[%d].endPort is set without a port", j)
			}
		case pt.Port.Type == intstr.String:
			if pt.EndPort != nil {
				bad("ports[%d].endPort is set with a named port", j)
			}
		default:
			lo := pt.Port.IntVal
			hi := lo
			if pt.EndPort != nil {
				hi = *pt.EndPort
			}
			if lo < 1 || lo > 65535 || hi < lo || hi > 65535 {
				bad("ports[%d]: port %d endPort %d is not a range within 1-65535", j, lo, hi)
			}
		}
	}
	if len(peers) == 0 {
		r.anyPeer = true
		return r
	}
	var spans []span
	for j, peer := range peers {
		pf := fmt.Sprintf("%s[%d]", peerField, j)
		if peer.IPBlock != nil {
			if peer.PodSelector != nil || peer.NamespaceSelector != nil {
				bad("%s: ipBlock is combined with a selector", pf)
				continue
			}
			s, ok := c.ipBlock(field+"."+pf, peer.IPBlock, bad)
			if ok {
				spans = append(spans, s...)
			}
			continue
		}
		pods, err := c.selectPeers(pi, peer)
		if err != nil {
			bad("%s: %v", pf, err)
			continue
		}
		if hp := c.hostPeer(pi, peer); hp != "" {
			c.problem("%s.%s selects host-network pod %s; its traffic carries its node's address, which is not added (a node's traffic to its own pods passes anyway)", field, pf, hp)
		}
		for _, p := range pods {
			v := u32(p.ip)
			spans = append(spans, span{v, v})
		}
	}
	if r.invalid {
		return r
	}
	r.spans = normalize(spans)
	r.set = setBase(pi.key, d, i)
	c.addSet(r.set, toRanges(r.spans))
	return r
}

// peerPods are the eligible pods among a rule's peers (every pod when the
// rule has none), for resolving named ports on egress.
func (c *compiler) peerPods(r *compiledRule) []*pod {
	if r.anyPeer {
		return c.pods
	}
	if r.peers == nil {
		r.peers = []*pod{}
		for _, p := range c.pods {
			if contains(r.spans, u32(p.ip)) {
				r.peers = append(r.peers, p)
			}
		}
	}
	return r.peers
}

// ipBlock is cidr minus except as spans. An IPv6 block matches nothing in
// weft's IPv4 pod network; that is reported, since the author may expect
// otherwise.
func (c *compiler) ipBlock(field string, b *networkingv1.IPBlock, bad func(string, ...any)) ([]span, bool) {
	p, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		bad("ipBlock.cidr %q is not a CIDR", b.CIDR)
		return nil, false
	}
	if !p.Addr().Is4() {
		c.problem("%s: ipBlock.cidr %s is IPv6; weft's pod network is IPv4, so it matches nothing", field, b.CIDR)
		return nil, true
	}
	s := []span{prefixSpan(p)}
	for k, e := range b.Except {
		ep, err := netip.ParsePrefix(e)
		if err != nil || !ep.Addr().Is4() || !p.Contains(ep.Addr()) || ep.Bits() < p.Bits() {
			bad("ipBlock.except[%d] %q is not an IPv4 CIDR inside %s", k, e, b.CIDR)
			return nil, false
		}
		s = subtract(s, prefixSpan(ep))
	}
	return s, true
}

// selectPeers returns the eligible pods a selector peer selects: pods
// matching podSelector (all when nil) in the policy's namespace, or in the
// namespaces namespaceSelector matches when it is set.
func (c *compiler) selectPeers(pi *policyInfo, peer networkingv1.NetworkPolicyPeer) ([]*pod, error) {
	if peer.PodSelector == nil && peer.NamespaceSelector == nil {
		return nil, fmt.Errorf("neither podSelector, namespaceSelector nor ipBlock is set")
	}
	podSel := labels.Everything()
	if peer.PodSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
		if err != nil {
			return nil, fmt.Errorf("podSelector: %w", err)
		}
		podSel = s
	}
	var nsSel labels.Selector
	if peer.NamespaceSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
		if err != nil {
			return nil, fmt.Errorf("namespaceSelector: %w", err)
		}
		nsSel = s
	}
	var out []*pod
	for _, ns := range c.podNamespaces {
		if nsSel == nil && ns != pi.obj.Namespace || nsSel != nil && !nsSel.Matches(namespaceLabels(c.namespaces, ns)) {
			continue
		}
		for _, p := range c.podsByNS[ns] {
			if podSel.Matches(p.labels) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// hostPeer names the first host-network pod a selector peer would select,
// or "" (selectors already parsed by selectPeers).
func (c *compiler) hostPeer(pi *policyInfo, peer networkingv1.NetworkPolicyPeer) string {
	podSel, nsSel := labels.Everything(), labels.Selector(nil)
	if peer.PodSelector != nil {
		podSel, _ = metav1.LabelSelectorAsSelector(peer.PodSelector)
	}
	if peer.NamespaceSelector != nil {
		nsSel, _ = metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
	}
	for _, p := range c.hostPods {
		if nsSel == nil && p.namespace != pi.obj.Namespace || nsSel != nil && !nsSel.Matches(namespaceLabels(c.namespaces, p.namespace)) {
			continue
		}
		if podSel.Matches(p.labels) {
			return p.key
		}
	}
	return ""
}

// render turns a compiled rule into the chain rules for target pod t. A
// named port resolves on the destination: on t itself for ingress, on each
// peer pod for egress (peers are grouped by the port number the name
// resolves to, one set per group).
func (c *compiler) render(pi *policyInfo, d Direction, r *compiledRule, t *pod) []Rule {
	if r.invalid {
		return nil
	}
	base := Rule{Policy: pi.key, Index: r.index}
	if !r.anyPeer {
		base.Peers = r.set
	}
	if len(r.ports) == 0 {
		return []Rule{base}
	}
	var out []Rule
	for _, pt := range r.ports {
		proto := protocolOf(pt)
		x := base
		x.Proto = protoNumbers[proto]
		switch {
		case pt.Port == nil:
			out = append(out, x)
		case pt.Port.Type == intstr.Int:
			x.PortFirst, x.PortLast = uint16(pt.Port.IntVal), uint16(pt.Port.IntVal)
			if pt.EndPort != nil {
				x.PortLast = uint16(*pt.EndPort)
			}
			out = append(out, x)
		case d == Ingress:
			if n, ok := t.namedPort(pt.Port.StrVal, proto); ok {
				x.PortFirst, x.PortLast = n, n
				out = append(out, x)
			}
		default:
			out = append(out, c.namedEgress(pi, r, x, pt.Port.StrVal, proto)...)
		}
	}
	return out
}

// namedEgress groups an egress rule's peer pods by what port name resolves
// to on each of them; each group gets a set and a rule.
func (c *compiler) namedEgress(pi *policyInfo, r *compiledRule, x Rule, name string, proto corev1.Protocol) []Rule {
	groups := map[uint16][]span{}
	for _, p := range c.peerPods(r) {
		if n, ok := p.namedPort(name, proto); ok {
			v := u32(p.ip)
			groups[n] = append(groups[n], span{v, v})
		}
	}
	nums := make([]uint16, 0, len(groups))
	for n := range groups {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	var out []Rule
	for _, n := range nums {
		set := fmt.Sprintf("%s-%s-%s-%d", setBase(pi.key, Egress, r.index), name, proto, n)
		c.addSet(set, toRanges(groups[n]))
		y := x
		y.Peers, y.PortFirst, y.PortLast = set, n, n
		out = append(out, y)
	}
	return out
}

func (c *compiler) addSet(name string, ranges []Range) {
	if c.sets[name] {
		return
	}
	c.sets[name] = true
	c.rs.Sets = append(c.rs.Sets, Set{Name: name, Ranges: ranges})
}
