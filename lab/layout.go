package lab

import "path/filepath"

// DefaultRoot is where every lab keeps its state directory.
const DefaultRoot = "/run/weft-lab"

// Layout names everything one lab owns: namespaces and files. It is pure.
type Layout struct {
	// Root holds the state directories of all labs (DefaultRoot).
	Root string
	// Name is the lab's name.
	Name string
}

// Prefix starts the name of every namespace of the lab.
func (l Layout) Prefix() string { return l.Name + "-" }

// OwnerMark is set as the alias of the loopback of every namespace the lab
// creates. `down` deletes a namespace it has no record of only when it
// carries this mark, so a namespace of someone else that merely shares the
// prefix (say weft-test-x beside lab "weft") is never touched.
func (l Layout) OwnerMark() string { return "weft-lab:" + l.Name }

// Dir is the lab's state directory.
func (l Layout) Dir() string { return filepath.Join(l.Root, l.Name) }

// StateFile records what the lab created (state.json).
func (l Layout) StateFile() string { return filepath.Join(l.Dir(), "state.json") }

// LockFile serialises commands that change the lab. It lives beside the
// state directory so that it outlives a half-finished `down`.
func (l Layout) LockFile() string { return filepath.Join(l.Root, l.Name+".lock") }

// GossipKeyFile is the lab's one shared gossip key.
func (l Layout) GossipKeyFile() string { return filepath.Join(l.Dir(), "gossip.key") }

// UnderlayNS holds the bridge every node and the internet hang off.
func (l Layout) UnderlayNS() string { return l.Prefix() + "underlay" }

// InetNS stands in for the outside world.
func (l Layout) InetNS() string { return l.Prefix() + "inet" }

// CPNS holds the Kubernetes control plane of a --kube lab.
func (l Layout) CPNS() string { return l.Prefix() + CPNodeName }

// KubeDir holds the control plane's certificates, etcd data, kubeconfigs,
// logs and pid files (see lab/kube).
func (l Layout) KubeDir() string { return filepath.Join(l.Dir(), "kube") }

// AdminKubeconfig is the control plane's admin kubeconfig (system:masters).
func (l Layout) AdminKubeconfig() string { return filepath.Join(l.KubeDir(), "admin.kubeconfig") }

// AgentKubeconfig is the kubeconfig every agent of a --kube lab uses: a
// TokenRequest token of the weft ServiceAccount.
func (l Layout) AgentKubeconfig() string { return filepath.Join(l.Dir(), "agent.kubeconfig") }

// ImagesFile is the OCI archive of the images every --kubelets node
// imports; CNIBinDir holds the plugins containerd calls (links to weft-cni
// and the loopback plugin).
func (l Layout) ImagesFile() string { return filepath.Join(l.Dir(), "images.tar") }
func (l Layout) CNIBinDir() string  { return filepath.Join(l.Dir(), "cni-bin") }

// PeeringFile is the peering file every agent of the lab reads (Spec.Gateways).
func (l Layout) PeeringFile() string { return filepath.Join(l.Dir(), "peering.yaml") }

// NodeNS is a node's network namespace.
func (l Layout) NodeNS(node string) string { return l.Prefix() + node }

// PodNS is a pod's network namespace.
func (l Layout) PodNS(node, pod string) string { return l.Prefix() + node + "-" + pod }

// NetNSPath is where `ip netns` mounts a named namespace.
func NetNSPath(ns string) string { return filepath.Join(netnsDir, ns) }

const netnsDir = "/run/netns"

// NodePaths are every file of one node. All nodes share one filesystem, so
// every path is per node.
type NodePaths struct {
	Dir          string // the node's directory
	Config       string // agent.yaml
	StateFile    string // node.json, written by the agent, read by weft-cni
	StatusSocket string // weft.sock
	LeaseFile    string // lease.json
	TunnelKey    string // wireguard.key
	PeeringKey   string // peering.key: a gateway's peering WireGuard key
	Log          string // agent.log: the agent's stdout and stderr
	WireGuardDir string // bind-mounted on /run/wireguard in the node's view
	CNIDataDir   string // weft-cni's IPAM store
	CNICacheDir  string // libcni's result cache
	CNIConfList  string // the conflist handed to libcni
	// --kubelets only:
	RuntimeDir        string // lab/kubelet's directory: containerd, kubelet
	CRIConfDir        string // the CNI configuration directory containerd reads
	CRIBinDir         string // --agents daemonset: the node's /opt/cni/bin
	KubeletKubeconfig string // the kubelet's system:node:<name> credentials
}

// Node returns the paths of one node.
func (l Layout) Node(node string) NodePaths {
	d := filepath.Join(l.Dir(), node)
	return NodePaths{
		Dir:          d,
		Config:       filepath.Join(d, "agent.yaml"),
		StateFile:    filepath.Join(d, "node.json"),
		StatusSocket: filepath.Join(d, "weft.sock"),
		LeaseFile:    filepath.Join(d, "lease.json"),
		TunnelKey:    filepath.Join(d, "wireguard.key"),
		PeeringKey:   filepath.Join(d, "peering.key"),
		Log:          filepath.Join(d, "agent.log"),
		WireGuardDir: filepath.Join(d, "wireguard"),
		CNIDataDir:   filepath.Join(d, "cni"),
		CNICacheDir:  filepath.Join(d, "cni-cache"),
		CNIConfList:  filepath.Join(d, "weft.conflist"),

		RuntimeDir:        filepath.Join(d, "runtime"),
		CRIConfDir:        filepath.Join(d, "net.d"),
		CRIBinDir:         filepath.Join(d, "cni-bin"),
		KubeletKubeconfig: filepath.Join(d, "kubelet.kubeconfig"),
	}
}
