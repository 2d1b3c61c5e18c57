package kube

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"time"
)

// Config says where and how to run a control plane. Zero values of the
// optional fields mean the defaults documented beside them.
type Config struct {
	// Dir holds certificates, etcd's data, kubeconfigs, logs and pid files.
	// Required; created if missing.
	Dir string
	// NetNS is the network namespace the processes run in: a name (as
	// `ip netns` knows it, /run/netns/NAME) or a path. Required; it must
	// exist and have Address on one of its interfaces.
	NetNS string
	// Address is the apiserver's bind and advertise address inside NetNS
	// (and so the endpoint of the "kubernetes" Service). Required, IPv4.
	Address netip.Addr
	// BinDir holds kube-apiserver and kube-controller-manager. Required.
	BinDir string
	// Etcd is the etcd binary. Default: "etcd" from PATH.
	Etcd string

	// ClusterCIDR is the pod network; kube-controller-manager assigns each
	// Node a /NodeCIDRMaskSize of it as spec.podCIDR.
	// Default: 10.244.0.0/16.
	ClusterCIDR netip.Prefix
	// NodeCIDRMaskSize is the size of each node's block. Default: 24.
	NodeCIDRMaskSize int
	// ServiceCIDR is the Service ClusterIP range; its first address is the
	// "kubernetes" Service's. Default: 10.96.0.0/16.
	ServiceCIDR netip.Prefix
	// ClusterDomain is the DNS domain in the serving certificate and the
	// service-account issuer. Default: cluster.local.
	ClusterDomain string

	// Kubelets says real kubelets run on the Nodes: kube-scheduler runs
	// too, and the node lifecycle controller is on (without kubelets it
	// would mark every Node NotReady and evict its pods).
	Kubelets bool

	// StartTimeout bounds how long Start waits for readiness.
	// Default: 2 minutes.
	StartTimeout time.Duration
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Ports inside NetNS. They are fixed: the namespace belongs to the lab.
const (
	APIServerPort         = 6443
	etcdClientPort        = 2379
	etcdPeerPort          = 2380
	controllerManagerPort = 10257
	schedulerPort         = 10259
)

// withDefaults returns c with every unset optional field set.
func (c Config) withDefaults() Config {
	if c.Etcd == "" {
		c.Etcd = "etcd"
	}
	if !c.ClusterCIDR.IsValid() {
		c.ClusterCIDR = netip.MustParsePrefix("10.244.0.0/16")
	}
	if c.NodeCIDRMaskSize == 0 {
		c.NodeCIDRMaskSize = 24
	}
	if !c.ServiceCIDR.IsValid() {
		c.ServiceCIDR = netip.MustParsePrefix("10.96.0.0/16")
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 2 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate checks a Config that has been through withDefaults, naming the
// field at fault.
func (c Config) validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("Dir: required"))
	}
	if c.NetNS == "" {
		errs = append(errs, errors.New("NetNS: required"))
	}
	if !c.Address.IsValid() || !c.Address.Is4() {
		errs = append(errs, fmt.Errorf("Address: %q is not an IPv4 address", c.Address))
	}
	if c.BinDir == "" {
		errs = append(errs, errors.New("BinDir: required"))
	}
	if !c.ClusterCIDR.Addr().Is4() {
		errs = append(errs, fmt.Errorf("ClusterCIDR: %s is not IPv4", c.ClusterCIDR))
	}
	if c.NodeCIDRMaskSize <= c.ClusterCIDR.Bits() || c.NodeCIDRMaskSize > 30 {
		errs = append(errs, fmt.Errorf("NodeCIDRMaskSize: %d must be longer than ClusterCIDR's /%d and at most 30",
			c.NodeCIDRMaskSize, c.ClusterCIDR.Bits()))
	}
	if !c.ServiceCIDR.Addr().Is4() || c.ServiceCIDR.Bits() < 12 || c.ServiceCIDR.Bits() > 28 {
		// kube-apiserver refuses IPv4 service ranges larger than /12.
		errs = append(errs, fmt.Errorf("ServiceCIDR: %s must be IPv4, between /12 and /28", c.ServiceCIDR))
	}
	if c.ClusterCIDR.Overlaps(c.ServiceCIDR) {
		errs = append(errs, fmt.Errorf("ServiceCIDR: %s overlaps ClusterCIDR %s", c.ServiceCIDR, c.ClusterCIDR))
	}
	if c.ClusterDomain != "" && (strings.HasPrefix(c.ClusterDomain, ".") || strings.HasSuffix(c.ClusterDomain, ".")) {
		errs = append(errs, fmt.Errorf("ClusterDomain: %q must not start or end with a dot", c.ClusterDomain))
	}
	if c.StartTimeout < 0 {
		errs = append(errs, fmt.Errorf("StartTimeout: %s is negative", c.StartTimeout))
	}
	return errors.Join(errs...)
}

// netnsPath is the filesystem path of NetNS.
func (c Config) netnsPath() string {
	if strings.Contains(c.NetNS, "/") {
		return c.NetNS
	}
	return filepath.Join("/run/netns", c.NetNS)
}

// apiServerURL is the apiserver's URL inside NetNS.
func (c Config) apiServerURL() string {
	return "https://" + netip.AddrPortFrom(c.Address, APIServerPort).String()
}

// kubernetesServiceIP is the first address of ServiceCIDR, the ClusterIP
// kube-apiserver gives the "kubernetes" Service.
func (c Config) kubernetesServiceIP() netip.Addr {
	return c.ServiceCIDR.Masked().Addr().Next()
}

// serviceAccountIssuer is the iss claim of service-account tokens.
func (c Config) serviceAccountIssuer() string {
	return "https://kubernetes.default.svc." + c.ClusterDomain
}

// paths are the files under Dir.
type paths struct {
	dir, pki, etcdData             string
	caCert, caKey                  string
	servingCert, servingKey        string
	adminCert, adminKey            string
	kcmCert, kcmKey                string
	schedCert, schedKey            string
	kubeletClientCert              string
	kubeletClientKey               string
	saKey, saPub                   string
	adminKubeconfig, kcmKubeconfig string
	schedKubeconfig                string
	kcmCertDir, schedCertDir       string
}

// logFile and pidFile are a component's log and pid file.
func (p paths) logFile(component string) string { return filepath.Join(p.dir, component+".log") }
func (p paths) pidFile(component string) string { return filepath.Join(p.dir, component+".pid") }

func pathsOf(dir string) paths {
	dir = filepath.Clean(dir)
	pki := filepath.Join(dir, "pki")
	j := func(base, name string) string { return filepath.Join(base, name) }
	return paths{
		dir:               dir,
		pki:               pki,
		etcdData:          j(dir, "etcd"),
		caCert:            j(pki, "ca.crt"),
		caKey:             j(pki, "ca.key"),
		servingCert:       j(pki, "apiserver.crt"),
		servingKey:        j(pki, "apiserver.key"),
		adminCert:         j(pki, "admin.crt"),
		adminKey:          j(pki, "admin.key"),
		kcmCert:           j(pki, "controller-manager.crt"),
		kcmKey:            j(pki, "controller-manager.key"),
		schedCert:         j(pki, "scheduler.crt"),
		schedKey:          j(pki, "scheduler.key"),
		kubeletClientCert: j(pki, "apiserver-kubelet-client.crt"),
		kubeletClientKey:  j(pki, "apiserver-kubelet-client.key"),
		saKey:             j(pki, "sa.key"),
		saPub:             j(pki, "sa.pub"),
		adminKubeconfig:   j(dir, "admin.kubeconfig"),
		kcmKubeconfig:     j(dir, "controller-manager.kubeconfig"),
		kcmCertDir:        j(dir, "controller-manager-serving"),
		schedKubeconfig:   j(dir, "scheduler.kubeconfig"),
		schedCertDir:      j(dir, "scheduler-serving"),
	}
}
