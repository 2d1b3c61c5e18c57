package kube

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

func testConfig(dir string) Config {
	return Config{
		Dir:     dir,
		NetNS:   "weft-test-cp",
		Address: netip.MustParseAddr("192.168.77.2"),
		BinDir:  "/opt/weft/bin",
		Etcd:    "/usr/bin/etcd",
	}.withDefaults()
}

func TestDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.ClusterCIDR.String() != "10.244.0.0/16" || c.ServiceCIDR.String() != "10.96.0.0/16" ||
		c.NodeCIDRMaskSize != 24 || c.ClusterDomain != "cluster.local" || c.StartTimeout != 2*time.Minute || c.Etcd != "etcd" {
		t.Fatalf("defaults: %+v", c)
	}
	if got := c.kubernetesServiceIP().String(); got != "10.96.0.1" {
		t.Errorf("kubernetes service IP = %s, want 10.96.0.1", got)
	}
	if got := (Config{NetNS: "cp"}).netnsPath(); got != "/run/netns/cp" {
		t.Errorf("netns path of a name = %s", got)
	}
	if got := (Config{NetNS: "/proc/1/ns/net"}).netnsPath(); got != "/proc/1/ns/net" {
		t.Errorf("netns path of a path = %s", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string // "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no dir", func(c *Config) { c.Dir = "" }, "Dir"},
		{"no netns", func(c *Config) { c.NetNS = "" }, "NetNS"},
		{"no address", func(c *Config) { c.Address = netip.Addr{} }, "Address"},
		{"ipv6 address", func(c *Config) { c.Address = netip.MustParseAddr("fd00::1") }, "Address"},
		{"no bindir", func(c *Config) { c.BinDir = "" }, "BinDir"},
		{"mask too short", func(c *Config) { c.NodeCIDRMaskSize = 16 }, "NodeCIDRMaskSize"},
		{"service range too big", func(c *Config) { c.ServiceCIDR = netip.MustParsePrefix("10.0.0.0/8") }, "ServiceCIDR"},
		{"overlap", func(c *Config) { c.ServiceCIDR = netip.MustParsePrefix("10.244.128.0/20") }, "ServiceCIDR"},
		{"domain dot", func(c *Config) { c.ClusterDomain = "cluster.local." }, "ClusterDomain"},
		{"negative timeout", func(c *Config) { c.StartTimeout = -time.Second }, "StartTimeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig("/tmp/x")
			tc.edit(&c)
			err := c.validate()
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.field != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.field+":")):
				t.Fatalf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
}

// flags turns --k=v arguments into a map (a repeated flag keeps the last).
func flags(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		m[k] = v
	}
	return m
}

func TestCommands(t *testing.T) {
	c := testConfig("/run/weft-lab/t/kube")
	cmds := commands(c)
	if len(cmds) != 3 || cmds[0].Name != Etcd || cmds[1].Name != APIServer || cmds[2].Name != ControllerManager {
		t.Fatalf("commands: %+v", cmds)
	}
	etcd, api, kcm := flags(cmds[0].Args), flags(cmds[1].Args), flags(cmds[2].Args)
	for _, tc := range []struct {
		what string
		m    map[string]string
		flag string
		want string
	}{
		{"etcd", etcd, "listen-client-urls", "http://127.0.0.1:2379"},
		{"etcd", etcd, "listen-peer-urls", "http://127.0.0.1:2380"},
		{"etcd", etcd, "data-dir", "/run/weft-lab/t/kube/etcd"},
		{"apiserver", api, "etcd-servers", "http://127.0.0.1:2379"},
		{"apiserver", api, "bind-address", "192.168.77.2"},
		{"apiserver", api, "advertise-address", "192.168.77.2"},
		{"apiserver", api, "secure-port", "6443"},
		{"apiserver", api, "authorization-mode", "Node,RBAC"},
		{"apiserver", api, "service-cluster-ip-range", "10.96.0.0/16"},
		{"apiserver", api, "service-account-issuer", "https://kubernetes.default.svc.cluster.local"},
		{"apiserver", api, "service-account-key-file", "/run/weft-lab/t/kube/pki/sa.pub"},
		{"apiserver", api, "service-account-signing-key-file", "/run/weft-lab/t/kube/pki/sa.key"},
		{"apiserver", api, "client-ca-file", "/run/weft-lab/t/kube/pki/ca.crt"},
		{"apiserver", api, "allow-privileged", "true"},
		{"apiserver", api, "kubelet-preferred-address-types", "InternalIP,Hostname"},
		{"apiserver", api, "kubelet-client-certificate", "/run/weft-lab/t/kube/pki/apiserver-kubelet-client.crt"},
		{"kcm", kcm, "allocate-node-cidrs", "true"},
		{"kcm", kcm, "cluster-cidr", "10.244.0.0/16"},
		{"kcm", kcm, "node-cidr-mask-size", "24"},
		{"kcm", kcm, "service-cluster-ip-range", "10.96.0.0/16"},
		{"kcm", kcm, "root-ca-file", "/run/weft-lab/t/kube/pki/ca.crt"},
		{"kcm", kcm, "service-account-private-key-file", "/run/weft-lab/t/kube/pki/sa.key"},
		{"kcm", kcm, "use-service-account-credentials", "true"},
		{"kcm", kcm, "leader-elect", "false"},
		{"kcm", kcm, "controllers", "*,-node-lifecycle-controller"},
		{"kcm", kcm, "kubeconfig", "/run/weft-lab/t/kube/controller-manager.kubeconfig"},
		{"kcm", kcm, "bind-address", "127.0.0.1"},
		{"kcm", kcm, "authentication-skip-lookup", "true"},
	} {
		if got, ok := tc.m[tc.flag]; !ok || got != tc.want {
			t.Errorf("%s --%s = %q (set %v), want %q", tc.what, tc.flag, got, ok, tc.want)
		}
	}
	if cmds[1].Bin != "/opt/weft/bin/kube-apiserver" || cmds[2].Bin != "/opt/weft/bin/kube-controller-manager" || cmds[0].Bin != "/usr/bin/etcd" {
		t.Errorf("binaries: %s %s %s", cmds[0].Bin, cmds[1].Bin, cmds[2].Bin)
	}
	// Every command is recognisable by Stop as the component of this Dir,
	// both as started (nsenter) and once it has exec'd.
	for _, cmd := range cmds {
		argv := cmd.argv("/run/netns/weft-test-cp")
		if argv[0] != "nsenter" || argv[1] != "--net=/run/netns/weft-test-cp" {
			t.Errorf("%s argv = %v", cmd.Name, argv)
		}
		if !isComponentOf(argv, cmd.Name, c.Dir) || !isComponentOf(argv[3:], cmd.Name, c.Dir) {
			t.Errorf("%s not recognised as its own component: %v", cmd.Name, argv)
		}
		if isComponentOf(argv[3:], cmd.Name, "/run/weft-lab/other/kube") {
			t.Errorf("%s recognised as another lab's", cmd.Name)
		}
	}
}

// TestKubeletsCommands: with kubelets the scheduler runs and the node
// lifecycle controller is on.
func TestKubeletsCommands(t *testing.T) {
	c := testConfig("/run/weft-lab/t/kube")
	c.Kubelets = true
	cmds := commands(c)
	if len(cmds) != 4 || cmds[3].Name != Scheduler || cmds[3].Bin != "/opt/weft/bin/kube-scheduler" {
		t.Fatalf("commands: %+v", cmds)
	}
	if !slices.Equal(c.components(), []string{Etcd, APIServer, ControllerManager, Scheduler}) {
		t.Errorf("components = %v", c.components())
	}
	kcm, sched := flags(cmds[2].Args), flags(cmds[3].Args)
	for _, tc := range []struct {
		m          map[string]string
		flag, want string
	}{
		{kcm, "controllers", "*"},
		{sched, "kubeconfig", "/run/weft-lab/t/kube/scheduler.kubeconfig"},
		{sched, "bind-address", "127.0.0.1"},
		{sched, "secure-port", "10259"},
		{sched, "leader-elect", "false"},
	} {
		if got := tc.m[tc.flag]; got != tc.want {
			t.Errorf("--%s = %q, want %q", tc.flag, got, tc.want)
		}
	}
	if argv := cmds[3].argv("/run/netns/x"); !isComponentOf(argv, Scheduler, c.Dir) {
		t.Errorf("scheduler not recognised as its own component: %v", argv)
	}
}

// TestNodeKubeconfig: a kubelet's credentials name its Node, in
// system:nodes, signed by the cluster CA.
func TestNodeKubeconfig(t *testing.T) {
	dir := t.TempDir()
	cp, err := newControlPlane(testConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ensurePKI(cp.cfg, cp.paths, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "n1.kubeconfig")
	if err := cp.NodeKubeconfig("n1", out); err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.LoadFromFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ai := kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo]
	block, _ := pem.Decode(ai.ClientCertificateData)
	if block == nil {
		t.Fatal("no client certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "system:node:n1" || !slices.Equal(cert.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject = %v", cert.Subject)
	}
	pool := x509.NewCertPool()
	pool.AddCert(keys.CA.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode: %v %v", fi.Mode(), err)
	}
}

func TestIsComponentOf(t *testing.T) {
	dir := "/run/weft-lab/t/kube"
	for _, tc := range []struct {
		argv []string
		name string
		want bool
	}{
		{[]string{"/usr/bin/etcd", "--data-dir=/run/weft-lab/t/kube/etcd"}, Etcd, true},
		{[]string{"/usr/bin/etcd", "--data-dir", "/run/weft-lab/t/kube/etcd"}, Etcd, true},
		{[]string{"/usr/bin/etcd", "--data-dir=/var/lib/etcd"}, Etcd, false},
		{[]string{"/usr/bin/etcd", "--data-dir=/run/weft-lab/t/kube2/etcd"}, Etcd, false},
		{[]string{"cat", "/run/weft-lab/t/kube/etcd"}, Etcd, false},
		{[]string{"/bin/kube-apiserver", "--tls-cert-file=/run/weft-lab/t/kube/pki/apiserver.crt"}, Etcd, false},
		{[]string{"nsenter", "--net=/run/netns/x", "--", "/bin/kube-apiserver", "--client-ca-file=/run/weft-lab/t/kube/pki/ca.crt"}, APIServer, true},
		{[]string{"nsenter", "--net=/run/netns/x", "/bin/kube-apiserver"}, APIServer, false},
		{nil, APIServer, false},
	} {
		if got := isComponentOf(tc.argv, tc.name, dir); got != tc.want {
			t.Errorf("isComponentOf(%v, %s) = %v, want %v", tc.argv, tc.name, got, tc.want)
		}
	}
}

func TestPKI(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(dir)
	p := pathsOf(dir)
	now := time.Now()
	keys, err := ensurePKI(c, p, now)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(keys.CA.Cert)

	serving, _ := readKeyPair(p.servingCert, p.servingKey)
	for _, name := range []string{"192.168.77.2", "127.0.0.1", "10.96.0.1", "kubernetes", "kubernetes.default",
		"kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} {
		if _, err := serving.Cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if err := serving.Cert.VerifyHostname("10.96.0.2"); err == nil {
		t.Error("serving certificate valid for 10.96.0.2")
	}
	for _, tc := range []struct {
		cert, key, cn string
		org           []string
	}{
		{p.adminCert, p.adminKey, "kubernetes-admin", []string{"system:masters"}},
		{p.kcmCert, p.kcmKey, "system:kube-controller-manager", nil},
		{p.schedCert, p.schedKey, "system:kube-scheduler", nil},
		{p.kubeletClientCert, p.kubeletClientKey, "kube-apiserver-kubelet-client", []string{"system:masters"}},
	} {
		kp, err := readKeyPair(tc.cert, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: %v", tc.cn, err)
		}
		if kp.Cert.Subject.CommonName != tc.cn || !slices.Equal(kp.Cert.Subject.Organization, tc.org) {
			t.Errorf("%s subject = %v", tc.cn, kp.Cert.Subject)
		}
		if !kp.Key.PublicKey.Equal(kp.Cert.PublicKey) {
			t.Errorf("%s: key does not match certificate", tc.cn)
		}
	}
	// Secrets are private.
	for _, f := range []string{p.caKey, p.servingKey, p.adminKey, p.kcmKey, p.saKey} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, err %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}
	// sa.pub is the public half of sa.key.
	b, _ := os.ReadFile(p.saPub)
	blk, _ := pem.Decode(b)
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil || !keys.SAKey.PublicKey.Equal(pub.(*ecdsa.PublicKey)) {
		t.Errorf("sa.pub does not match sa.key (err %v)", err)
	}

	// A second run keeps the CA and the service-account key, so handed-out
	// kubeconfigs and tokens stay valid, and issues fresh leaves.
	c.Address = netip.MustParseAddr("192.168.77.3")
	again, err := ensurePKI(c, p, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !again.CA.Cert.Equal(keys.CA.Cert) || !again.SAKey.Equal(keys.SAKey) {
		t.Error("CA or service-account key changed across runs")
	}
	if again.Serving.Cert.Equal(keys.Serving.Cert) {
		t.Error("serving certificate not reissued")
	}
	if err := again.Serving.Cert.VerifyHostname("192.168.77.3"); err != nil {
		t.Errorf("reissued serving certificate: %v", err)
	}
}

func TestKubeconfig(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(dir)
	p := pathsOf(dir)
	keys, err := ensurePKI(c, p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, err := certKubeconfig(c.apiServerURL(), keys.CA, keys.Admin, "admin")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "admin.kubeconfig")
	if err := writeKubeconfig(k, file); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", fi.Mode().Perm())
	}
	rc, err := clientcmd.BuildConfigFromFlags("", file)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Host != "https://192.168.77.2:6443" {
		t.Errorf("host = %s", rc.Host)
	}
	if string(rc.CAData) != string(certPEM(keys.CA.Cert)) || string(rc.CertData) != string(certPEM(keys.Admin.Cert)) || len(rc.KeyData) == 0 {
		t.Error("kubeconfig does not embed the CA, the admin certificate and key")
	}
}
