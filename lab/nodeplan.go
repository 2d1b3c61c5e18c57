package lab

import (
	"fmt"
	"net/netip"
	"strconv"
)

// NodePlan is one node as the lab builds it.
type NodePlan struct {
	Name       string
	Index      int // 1-based; fixes the underlay address and bridge port
	NetNS      string
	UnderlayIP netip.Addr
	// BridgePort is the underlay-side end of the node's eth0, in the
	// underlay namespace.
	BridgePort string
	Paths      NodePaths
}

// PlanNode plans node name at index.
func (l Layout) PlanNode(name string, index int) (NodePlan, error) {
	if err := ValidateNodeName(name); err != nil {
		return NodePlan{}, err
	}
	ip, err := NodeAddr(index)
	if err != nil {
		return NodePlan{}, fmt.Errorf("node %s: %w", name, err)
	}
	return NodePlan{
		Name:       name,
		Index:      index,
		NetNS:      l.NodeNS(name),
		UnderlayIP: ip,
		BridgePort: "v" + strconv.Itoa(index),
		Paths:      l.Node(name),
	}, nil
}

// PlanNodes plans the n nodes of a new lab: n1..nN at indexes 1..N.
func (l Layout) PlanNodes(n int) ([]NodePlan, error) {
	nodes := make([]NodePlan, 0, n)
	for i := 1; i <= n; i++ {
		p, err := l.PlanNode("n"+strconv.Itoa(i), i)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, p)
	}
	return nodes, nil
}

// DefaultNodeName is the name `node add` gives a node at index when the
// user names none: n<index>, or the next free n<k> if that name is taken.
func DefaultNodeName(index int, taken map[string]bool) string {
	for k := index; ; k++ {
		if n := "n" + strconv.Itoa(k); !taken[n] {
			return n
		}
	}
}

// Seeds are the gossip seeds of node self: the underlay addresses of every
// other node, in index order. Listing all of them (rather than only the
// first node) lets any node, the first included, rejoin after a restart
// while others are down.
func Seeds(self string, nodes []NodePlan) []netip.Addr {
	var s []netip.Addr
	for _, n := range nodes {
		if n.Name != self {
			s = append(s, n.UnderlayIP)
		}
	}
	return s
}
