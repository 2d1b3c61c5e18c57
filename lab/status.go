package lab

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/weftnet/weft/nodestate"
)

// Status is the lab as `weft lab status --json` prints it.
type Status struct {
	Name        string       `json:"name"`
	Backend     string       `json:"backend"`
	MTU         int          `json:"mtu"`
	ClusterCIDR string       `json:"clusterCIDR"`
	Dir         string       `json:"dir"`
	UnderlayNS  string       `json:"underlayNetns"`
	InetNS      string       `json:"inetNetns"`
	Nodes       []NodeStatus `json:"nodes"`
	Pods        []PodState   `json:"pods"`
}

// NodeStatus is one node's live state.
type NodeStatus struct {
	Name       string `json:"name"`
	NetNS      string `json:"netns"`
	UnderlayIP string `json:"underlayIP"`
	// PodCIDR comes from the node's state file; empty until the agent has
	// written it.
	PodCIDR string `json:"podCIDR"`
	PID     int    `json:"pid"`
	Running bool   `json:"running"`
}

// Status reports the lab. It takes no lock: state.json is replaced
// atomically.
func (lb *Lab) Status() (Status, error) {
	l := lb.layout
	st, err := loadState(l)
	if err != nil {
		return Status{}, err
	}
	s := Status{
		Name: l.Name, Backend: st.Spec.Backend, MTU: st.Spec.MTU, ClusterCIDR: st.Spec.ClusterCIDR,
		Dir: l.Dir(), UnderlayNS: l.UnderlayNS(), InetNS: l.InetNS(),
		Nodes: []NodeStatus{}, Pods: st.Pods,
	}
	if s.Pods == nil {
		s.Pods = []PodState{}
	}
	for _, n := range st.Nodes {
		p := l.Node(n.Name)
		ns := NodeStatus{Name: n.Name, NetNS: n.NetNS, UnderlayIP: n.UnderlayIP.String(), PID: n.PID}
		ns.Running = agentRunning(n.PID, p.Config)
		if !ns.Running {
			ns.PID = 0
		}
		if ns2, err := nodestate.Read(p.StateFile); err == nil {
			ns.PodCIDR = ns2.PodCIDR.String()
		}
		s.Nodes = append(s.Nodes, ns)
	}
	return s, nil
}

// WriteTable prints s for people.
func (s Status) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "lab %s: backend %s, mtu %d, cluster %s, state %s\n\n", s.Name, s.Backend, s.MTU, s.ClusterCIDR, s.Dir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNETNS\tUNDERLAY\tPODCIDR\tAGENT")
	for _, n := range s.Nodes {
		agent := "stopped"
		if n.Running {
			agent = fmt.Sprintf("running (pid %d)", n.PID)
		}
		cidr := n.PodCIDR
		if cidr == "" {
			cidr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.NetNS, n.UnderlayIP, cidr, agent)
	}
	if err := tw.Flush(); err != nil || len(s.Pods) == 0 {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tNETNS\tIP")
	for _, p := range s.Pods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Node, p.NetNS, p.IP)
	}
	return tw.Flush()
}
