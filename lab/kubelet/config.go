package kubelet

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

// Config is one node's runtime.
type Config struct {
	// Lab and Node name the node; the kubelet registers Node Node.
	Lab, Node string
	// Dir holds everything of the runtime: configuration, containerd's
	// root and state, the kubelet's root, logs, pid files. Absolute.
	Dir string
	// NetNS is the node's network namespace (a path).
	NetNS string
	// NodeIP is the node's address on the underlay: the kubelet's
	// --node-ip and the address the API server reaches it on.
	NodeIP netip.Addr
	// Kubelet is the kubelet binary; Weft the weft binary whose hidden
	// `lab node-runtime` command is the supervisor.
	Kubelet, Weft string
	// Kubeconfig authenticates the kubelet as system:node:<Node>.
	Kubeconfig string
	// ClientCAFile is the cluster CA: the kubelet accepts clients (the API
	// server) whose certificates it signed.
	ClientCAFile string
	// CNIBinDir holds weft-cni and loopback; CNIConfDir the conflist.
	CNIBinDir, CNIConfDir string
	// ClusterDNS is the pods' nameserver, ClusterDomain their search base.
	ClusterDNS    netip.Addr
	ClusterDomain string
	// Images are OCI archives imported into containerd at every start.
	Images []string
	// Labels are extra labels the kubelet puts on its Node.
	Labels map[string]string
	// Binds are the node's own directories shown at the host's paths
	// inside the runtime's mount namespace (Src on Dst), so containerd,
	// the CNI plugins and hostPath volumes of pods see this node's files
	// where a real node keeps them (/run/weft, /etc/cni/net.d, ...).
	Binds []Bind
}

// Bind shows directory Src at Dst.
type Bind struct{ Src, Dst string }

// Paths of one node's runtime under Dir.
type Paths struct {
	Dir                        string
	ConfigJSON                 string // Config, read by the supervisor
	ContainerdConfig           string
	ContainerdRoot             string
	ContainerdState            string
	ContainerdSocket           string
	RuncRoot                   string
	KubeletConfig, KubeletRoot string
	PodLogs                    string
	ResolvConf                 string
	SysctlDir                  string
	Log                        string // the supervisor's log
	ContainerdLog, KubeletLog  string
	PidFile                    string // the supervisor's pid
}

// PathsOf lays out dir.
func PathsOf(dir string) Paths {
	j := func(n string) string { return filepath.Join(dir, n) }
	return Paths{
		Dir:              dir,
		ConfigJSON:       j("runtime.json"),
		ContainerdConfig: j("containerd.toml"),
		ContainerdRoot:   j("containerd/root"),
		ContainerdState:  j("containerd/state"),
		ContainerdSocket: j("containerd.sock"),
		RuncRoot:         j("runc"),
		KubeletConfig:    j("kubelet.yaml"),
		KubeletRoot:      j("kubelet"),
		PodLogs:          j("pod-logs"),
		ResolvConf:       j("resolv.conf"),
		SysctlDir:        j("sysctl"),
		Log:              j("runtime.log"),
		ContainerdLog:    j("containerd.log"),
		KubeletLog:       j("kubelet.log"),
		PidFile:          j("runtime.pid"),
	}
}

// Paths is c's layout.
func (c Config) Paths() Paths { return PathsOf(c.Dir) }

// CgroupName is the node's cgroup, under the root of every hierarchy: the
// kubelet's cgroupRoot, and what Stop removes.
func (c Config) CgroupName() string { return "weft-" + c.Lab + "-" + c.Node }

// validate names the first field at fault, or every one.
func (c Config) validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"Lab", c.Lab}, {"Node", c.Node}} {
		if f.v == "" || strings.ContainsAny(f.v, "/ \t\n") {
			errs = append(errs, fmt.Errorf("%s: %q is not a name", f.name, f.v))
		}
	}
	for _, f := range []struct{ name, v string }{
		{"Dir", c.Dir}, {"NetNS", c.NetNS}, {"Kubelet", c.Kubelet}, {"Weft", c.Weft},
		{"Kubeconfig", c.Kubeconfig}, {"ClientCAFile", c.ClientCAFile},
		{"CNIBinDir", c.CNIBinDir}, {"CNIConfDir", c.CNIConfDir},
	} {
		if !filepath.IsAbs(f.v) {
			errs = append(errs, fmt.Errorf("%s: %q is not an absolute path", f.name, f.v))
		}
	}
	for i, b := range c.Binds {
		if !filepath.IsAbs(b.Src) || !filepath.IsAbs(b.Dst) || filepath.Clean(b.Dst) == "/" {
			errs = append(errs, fmt.Errorf("Binds[%d]: %q on %q: both must be absolute paths, not /", i, b.Src, b.Dst))
		}
	}
	for i, im := range c.Images {
		if !filepath.IsAbs(im) {
			errs = append(errs, fmt.Errorf("Images[%d]: %q is not an absolute path", i, im))
		}
	}
	if !c.NodeIP.Is4() {
		errs = append(errs, fmt.Errorf("NodeIP: %q is not an IPv4 address", c.NodeIP))
	}
	if !c.ClusterDNS.IsValid() {
		errs = append(errs, errors.New("ClusterDNS: required"))
	}
	if c.ClusterDomain == "" {
		errs = append(errs, errors.New("ClusterDomain: required"))
	}
	return errors.Join(errs...)
}
