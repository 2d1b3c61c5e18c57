package lab

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/weftnet/weft/lab/kube"
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
	// Kube is set for a --kube lab.
	Kube *KubeStatus `json:"kube,omitempty"`
}

// KubeStatus is the control plane of a --kube lab.
type KubeStatus struct {
	NetNS string `json:"netns"`
	// Server is the API server's URL on the lab's underlay.
	Server string `json:"server"`
	// Kubeconfig is the admin's; AgentKubeconfig the agents'.
	Kubeconfig      string `json:"kubeconfig"`
	AgentKubeconfig string `json:"agentKubeconfig"`
	// Dir holds the control plane's logs, pid files, PKI and etcd data.
	Dir string `json:"dir"`
	// Running lists the components whose processes run.
	Running []string `json:"running"`
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
	// Agent is "daemonset" where the agent runs as the DaemonSet's pod
	// (Running then means its /readyz answers 200).
	Agent string `json:"agent,omitempty"`
	// Registered: the node's Node object exists (--kube labs).
	Registered bool `json:"registered,omitempty"`
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
		ns := NodeStatus{Name: n.Name, NetNS: n.NetNS, UnderlayIP: n.UnderlayIP.String(), PID: n.PID, Registered: n.Registered}
		ns.Running = agentRunning(n.PID, p.Config)
		if !ns.Running {
			ns.PID = 0
		}
		if st.Spec.DaemonSet() {
			ns.Agent = AgentsDaemonSet
			ns.Running = daemonSetAgentReady(p, n.NetNS)
		}
		if ns2, err := nodestate.Read(p.StateFile); err == nil {
			ns.PodCIDR = ns2.PodCIDR.String()
		}
		s.Nodes = append(s.Nodes, ns)
	}
	if st.Spec.Kube {
		s.Kube = &KubeStatus{
			NetNS: l.CPNS(), Server: "https://" + netip.AddrPortFrom(CPAddr, kube.APIServerPort).String(),
			Kubeconfig: l.AdminKubeconfig(), AgentKubeconfig: l.AgentKubeconfig(), Dir: l.KubeDir(),
			Running: kube.RunningComponents(l.KubeDir()),
		}
	}
	return s, nil
}

// WriteTable prints s for people.
func (s Status) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "lab %s: backend %s, mtu %d, cluster %s, state %s\n", s.Name, s.Backend, s.MTU, s.ClusterCIDR, s.Dir)
	if k := s.Kube; k != nil {
		fmt.Fprintf(w, "kubernetes: %s in netns %s, running %v, kubeconfig %s\n", k.Server, k.NetNS, k.Running, k.Kubeconfig)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNETNS\tUNDERLAY\tPODCIDR\tAGENT")
	for _, n := range s.Nodes {
		agent := "stopped"
		switch {
		case n.Agent == AgentsDaemonSet && n.Running:
			agent = "DaemonSet pod, ready"
		case n.Agent == AgentsDaemonSet:
			agent = "DaemonSet pod, not ready"
		case n.Running:
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
	if s.Kube == nil {
		fmt.Fprintln(tw, "POD\tNODE\tNETNS\tIP")
		for _, p := range s.Pods {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Name, p.Node, p.NetNS, p.IP)
		}
		return tw.Flush()
	}
	fmt.Fprintln(tw, "POD\tNAMESPACE\tNODE\tNETNS\tIP\tLABELS\tREGISTERED")
	for _, p := range s.Pods {
		var labels []string
		for _, k := range sortedKeys(p.Labels) {
			labels = append(labels, k+"="+p.Labels[k])
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", p.Name, p.Namespace, p.Node, p.NetNS, p.IP, strings.Join(labels, ","), p.Registered)
	}
	return tw.Flush()
}
