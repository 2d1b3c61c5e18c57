package kube

import (
	"time"

	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
)

// Component names: the binaries' names, and the stems of their log and
// pid files under Dir.
const (
	Etcd              = "etcd"
	APIServer         = "kube-apiserver"
	ControllerManager = "kube-controller-manager"
	Scheduler         = "kube-scheduler"
)

// components are every component in start order; Stop goes the other way.
var components = []string{Etcd, APIServer, ControllerManager, Scheduler}

// components are those c runs: kube-scheduler only with kubelets.
func (c Config) components() []string {
	if c.Kubelets {
		return components
	}
	return components[:3]
}

// nodeLifecycleController is kube-controller-manager's name (1.34) for the
// controller that marks Nodes NotReady when their kubelet stops posting
// status, then taints them and evicts their pods. Without kubelets it
// would do exactly that to every Node the lab creates: it is off then.
const nodeLifecycleController = "node-lifecycle-controller"

// command is one process to start: its binary and arguments.
type command struct {
	Name string
	Bin  string
	Args []string
}

// commands plans the three command lines. c has been through withDefaults;
// Dir and BinDir are absolute.
func commands(c Config) []command {
	p := pathsOf(c.Dir)
	loop := func(port int) string {
		return "http://" + netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)).String()
	}
	etcdClient, etcdPeer := loop(etcdClientPort), loop(etcdPeerPort)

	etcd := command{Name: Etcd, Bin: c.Etcd, Args: []string{
		// One member, reachable only on loopback inside NetNS: only
		// kube-apiserver talks to it, so plain HTTP is enough.
		"--name=weft-lab",
		"--data-dir=" + p.etcdData,
		"--listen-client-urls=" + etcdClient,
		"--advertise-client-urls=" + etcdClient,
		"--listen-peer-urls=" + etcdPeer,
		"--initial-advertise-peer-urls=" + etcdPeer,
		"--initial-cluster=weft-lab=" + etcdPeer,
		"--initial-cluster-state=new",
		"--logger=zap",
		"--log-outputs=stderr",
	}}

	api := command{Name: APIServer, Bin: filepath.Join(c.BinDir, APIServer), Args: []string{
		"--etcd-servers=" + etcdClient,
		"--bind-address=" + c.Address.String(),
		"--advertise-address=" + c.Address.String(),
		fmt.Sprintf("--secure-port=%d", APIServerPort),
		"--tls-cert-file=" + p.servingCert,
		"--tls-private-key-file=" + p.servingKey,
		"--client-ca-file=" + p.caCert,
		// Node authorizes kubelets (none yet, but agents may use node
		// identities later); RBAC is what every other client gets.
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=" + c.serviceAccountIssuer(),
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-cluster-ip-range=" + c.ServiceCIDR.Masked().String(),
		// CNI and agent DaemonSets run privileged.
		"--allow-privileged=true",
		// exec, logs and port-forward: the kubelets are reached on their
		// Nodes' InternalIP (lab names do not resolve) and authenticate
		// the API server by this certificate.
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--kubelet-client-certificate=" + p.kubeletClientCert,
		"--kubelet-client-key=" + p.kubeletClientKey,
		// Webhooks and aggregated APIs are called on an endpoint's pod
		// address, not the Service's ClusterIP: the control plane runs
		// off the nodes, where no Service proxy serves ClusterIPs.
		"--enable-aggregator-routing=true",
		"--profiling=false",
		"--v=1",
	}}

	kcm := command{Name: ControllerManager, Bin: filepath.Join(c.BinDir, ControllerManager), Args: []string{
		"--kubeconfig=" + p.kcmKubeconfig,
		"--authentication-kubeconfig=" + p.kcmKubeconfig,
		"--authorization-kubeconfig=" + p.kcmKubeconfig,
		// Clients of its own port (metrics, healthz) authenticate with
		// certificates of the cluster CA or tokens; there is no front
		// proxy, so do not look up its request-header CA.
		"--client-ca-file=" + p.caCert,
		"--authentication-skip-lookup=true",
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", controllerManagerPort),
		"--cert-dir=" + p.kcmCertDir,
		// Node IPAM: every Node gets spec.podCIDR from the cluster CIDR.
		"--allocate-node-cidrs=true",
		"--cluster-cidr=" + c.ClusterCIDR.Masked().String(),
		fmt.Sprintf("--node-cidr-mask-size=%d", c.NodeCIDRMaskSize),
		"--service-cluster-ip-range=" + c.ServiceCIDR.Masked().String(),
		// Service accounts: the root CA published into every namespace
		// (kube-root-ca.crt), token signing, and one identity per
		// controller so RBAC applies to controllers too.
		"--root-ca-file=" + p.caCert,
		"--service-account-private-key-file=" + p.saKey,
		"--use-service-account-credentials=true",
		// CertificateSigningRequests signed by the cluster CA.
		"--cluster-signing-cert-file=" + p.caCert,
		"--cluster-signing-key-file=" + p.caKey,
		"--leader-elect=false",
		"--controllers=" + controllers(c),
		"--profiling=false",
		"--v=1",
	}}
	if !c.Kubelets {
		return []command{etcd, api, kcm}
	}
	// A Node whose kubelet stops posting status (every 5 s in the lab) is
	// NotReady after 20 s rather than the default 50 s.
	kcm.Args = append(kcm.Args, "--node-monitor-grace-period="+NodeMonitorGrace.String())
	sched := command{Name: Scheduler, Bin: filepath.Join(c.BinDir, Scheduler), Args: []string{
		"--kubeconfig=" + p.schedKubeconfig,
		"--authentication-kubeconfig=" + p.schedKubeconfig,
		"--authorization-kubeconfig=" + p.schedKubeconfig,
		"--client-ca-file=" + p.caCert,
		"--authentication-skip-lookup=true",
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", schedulerPort),
		"--cert-dir=" + p.schedCertDir,
		"--leader-elect=false",
		"--profiling=false",
		"--v=1",
	}}
	return []command{etcd, api, kcm, sched}
}

// NodeMonitorGrace is how long a Node may go without a status from its
// kubelet before the node lifecycle controller marks it NotReady.
const NodeMonitorGrace = 20 * time.Second

// controllers is kube-controller-manager's --controllers.
func controllers(c Config) string {
	if c.Kubelets {
		return "*"
	}
	return "*,-" + nodeLifecycleController
}

// argv is the full command line, entering NetNS first. nsenter execs the
// component, so the pid it starts with is the component's own.
func (cmd command) argv(netnsPath string) []string {
	return append([]string{"nsenter", "--net=" + netnsPath, "--", cmd.Bin}, cmd.Args...)
}

// isComponentOf reports whether a process command line is component name
// of the control plane in dir: the command is the component's binary (or
// nsenter about to exec it, an instant after the start) and an argument
// names a file under dir. A recycled pid fails this, so it is never killed.
func isComponentOf(argv []string, name, dir string) bool {
	if len(argv) == 0 {
		return false
	}
	if filepath.Base(argv[0]) == "nsenter" {
		i := slices.Index(argv, "--")
		if i < 0 {
			return false
		}
		argv = argv[i+1:]
	}
	if len(argv) == 0 || filepath.Base(argv[0]) != name {
		return false
	}
	prefix := filepath.Clean(dir) + "/"
	return slices.ContainsFunc(argv[1:], func(a string) bool {
		_, v, _ := strings.Cut(a, "=")
		return strings.HasPrefix(v, prefix) || strings.HasPrefix(a, prefix)
	})
}
