package kubelet

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
)

// File is one file Start writes.
type File struct {
	Path string
	Data []byte
	Mode uint32
}

// Sysctl is a value the kubelet checks (protectKernelDefaults) and refuses
// to start without. The supervisor shows it the value by bind-mounting a
// file over the /proc/sys entry inside its own mount namespace only.
type Sysctl struct {
	Key   string // /proc/sys relative path: vm/overcommit_memory
	Value string
}

// Sysctls are the kubelet's kernel defaults (pkg/kubelet/cm's
// setupKernelTunables, 1.34).
var Sysctls = []Sysctl{
	{"vm/overcommit_memory", "1"},
	{"vm/panic_on_oom", "0"},
	{"kernel/panic", "10"},
	{"kernel/panic_on_oops", "1"},
	{"kernel/keys/root_maxkeys", "1000000"},
	{"kernel/keys/root_maxbytes", "25000000"},
}

// PauseImage is the sandbox image containerd runs in every pod.
const PauseImage = "registry.k8s.io/pause:3.10"

// MetricsAddress is where containerd serves its Prometheus metrics
// (/v1/metrics; the CRI's sandbox and CNI timers among them), inside the
// node's network namespace, beside the agent's 127.0.0.1:9464.
const MetricsAddress = "127.0.0.1:1338"

// Files are every file of c's runtime: containerd's and the kubelet's
// configurations, the pods' base resolv.conf and the sysctl values.
func Files(c Config) []File {
	p := c.Paths()
	out := []File{
		{p.ContainerdConfig, []byte(containerdConfig(c)), 0o644},
		{p.KubeletConfig, []byte(kubeletConfig(c)), 0o644},
		// Pods with dnsPolicy Default (and hostNetwork pods) resolve
		// through the node's DNS proxy too; ClusterFirst pods get
		// ClusterDNS and the cluster's search path from the kubelet.
		{p.ResolvConf, []byte(fmt.Sprintf("nameserver %s\n", c.ClusterDNS)), 0o644},
	}
	for _, s := range Sysctls {
		out = append(out, File{sysctlFile(p, s), []byte(s.Value + "\n"), 0o644})
	}
	return out
}

func sysctlFile(p Paths, s Sysctl) string {
	return filepath.Join(p.SysctlDir, strings.ReplaceAll(s.Key, "/", "."))
}

// containerdConfig is containerd 1.6's config (version 2).
func containerdConfig(c Config) string {
	p := c.Paths()
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = %q

[metrics]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # several containerds on one machine: each mounts its pods' network
  # namespaces under its own state directory
  netns_mounts_under_state_dir = true
  # no CAP_SYS_RESOURCE here: never ask runc for a lower oom_score_adj
  # than containerd's own
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
`, p.ContainerdRoot, p.ContainerdState, p.ContainerdSocket, MetricsAddress, filepath.Join(c.Dir, "containerd/opt"),
		PauseImage, p.RuncRoot, c.CNIBinDir, c.CNIConfDir)
}

// kubeletConfig is the KubeletConfiguration. Clients authenticate with a
// certificate of the cluster CA (the API server's) or a token, and are
// authorized by the API server (Webhook), as kubeadm sets it up.
func kubeletConfig(c Config) string {
	p := c.Paths()
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://%s
cgroupDriver: cgroupfs
cgroupRoot: /%s
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: true
podLogsDir: %q
clusterDNS: [%s]
clusterDomain: %s
resolvConf: %q
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
nodeStatusReportFrequency: 10s
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
fileCheckFrequency: 10s
`, c.NodeIP, c.ClientCAFile, p.ContainerdSocket, c.CgroupName(), p.PodLogs, c.ClusterDNS, c.ClusterDomain, p.ResolvConf)
}

// containerdArgv is containerd's command line.
func containerdArgv(c Config) []string {
	return []string{"containerd", "--config", c.Paths().ContainerdConfig}
}

// kubeletArgv is the kubelet's command line.
func kubeletArgv(c Config) []string {
	p := c.Paths()
	argv := []string{c.Kubelet,
		"--config=" + p.KubeletConfig,
		"--kubeconfig=" + c.Kubeconfig,
		"--root-dir=" + p.KubeletRoot,
		"--hostname-override=" + c.Node,
		"--node-ip=" + c.NodeIP.String(),
		"--v=1",
	}
	if len(c.Labels) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
			kv = append(kv, k+"="+c.Labels[k])
		}
		argv = append(argv, "--node-labels="+strings.Join(kv, ","))
	}
	return argv
}

// importArgv imports archive into containerd's k8s.io namespace, where
// the CRI looks for images.
func importArgv(c Config, archive string) []string {
	return []string{"ctr", "--address", c.Paths().ContainerdSocket, "-n", "k8s.io", "images", "import", archive}
}

// supervisorArgv starts the supervisor inside the node's network namespace
// and a new mount namespace whose mounts receive the host's but do not
// propagate back (slave), so its bind mounts stay its own. nsenter and
// unshare exec, so the pid started is the supervisor's.
func supervisorArgv(c Config) []string {
	return []string{"nsenter", "--net=" + c.NetNS, "--",
		"unshare", "--mount", "--propagation", "slave", "--",
		c.Weft, "lab", "node-runtime", "--config", c.Paths().ConfigJSON}
}
