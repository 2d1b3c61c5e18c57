package kubelet

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func testConfig() Config {
	return Config{
		Lab: "k1", Node: "n2",
		Dir:          "/run/weft-lab/k1/n2/runtime",
		NetNS:        "/run/netns/k1-n2",
		NodeIP:       netip.MustParseAddr("192.168.77.12"),
		Kubelet:      "/opt/bin/kubelet",
		Weft:         "/opt/bin/weft",
		Kubeconfig:   "/run/weft-lab/k1/n2/kubelet.kubeconfig",
		ClientCAFile: "/run/weft-lab/k1/kube/pki/ca.crt",
		CNIBinDir:    "/run/weft-lab/k1/cni-bin",
		CNIConfDir:   "/run/weft-lab/k1/n2/net.d",
		ClusterDNS:   netip.MustParseAddr("169.254.20.10"), ClusterDomain: "cluster.local",
		Images: []string{"/run/weft-lab/k1/images.tar"},
		Labels: map[string]string{"weft.dev/lab": "k1", "a": "b"},
	}
}

func TestValidate(t *testing.T) {
	if err := testConfig().validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit  func(*Config)
		field string
	}{
		{func(c *Config) { c.Node = "" }, "Node"},
		{func(c *Config) { c.Lab = "a/b" }, "Lab"},
		{func(c *Config) { c.Dir = "runtime" }, "Dir"},
		{func(c *Config) { c.Kubelet = "" }, "Kubelet"},
		{func(c *Config) { c.Images = []string{"images.tar"} }, "Images[0]"},
		{func(c *Config) { c.NodeIP = netip.MustParseAddr("fd00::1") }, "NodeIP"},
		{func(c *Config) { c.ClusterDNS = netip.Addr{} }, "ClusterDNS"},
		{func(c *Config) { c.ClusterDomain = "" }, "ClusterDomain"},
		{func(c *Config) { c.Binds = []Bind{{Src: "/lab/n1", Dst: "run/weft"}} }, "Binds[0]"},
		{func(c *Config) { c.Binds = []Bind{{Src: "/lab/n1", Dst: "/"}} }, "Binds[0]"},
	} {
		c := testConfig()
		tc.edit(&c)
		if err := c.validate(); err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: err = %v", tc.field, err)
		}
	}
}

func TestFiles(t *testing.T) {
	c := testConfig()
	files := map[string]string{}
	for _, f := range Files(c) {
		files[f.Path] = string(f.Data)
	}
	p := c.Paths()
	for _, tc := range []struct{ file, want string }{
		{p.ContainerdConfig, `address = "/run/weft-lab/k1/n2/runtime/containerd.sock"`},
		{p.ContainerdConfig, "[metrics]\n  address = \"127.0.0.1:1338\"\n"},
		{p.ContainerdConfig, `sandbox_image = "registry.k8s.io/pause:3.10"`},
		{p.ContainerdConfig, `bin_dir = "/run/weft-lab/k1/cni-bin"`},
		{p.ContainerdConfig, `conf_dir = "/run/weft-lab/k1/n2/net.d"`},
		{p.ContainerdConfig, "netns_mounts_under_state_dir = true"},
		{p.ContainerdConfig, "restrict_oom_score_adj = true"},
		{p.ContainerdConfig, `Root = "/run/weft-lab/k1/n2/runtime/runc"`},
		{p.KubeletConfig, "address: 192.168.77.12\n"},
		{p.KubeletConfig, "cgroupRoot: /weft-k1-n2\n"},
		{p.KubeletConfig, "authorization: {mode: Webhook}"},
		{p.KubeletConfig, `x509: {clientCAFile: "/run/weft-lab/k1/kube/pki/ca.crt"}`},
		{p.KubeletConfig, "anonymous: {enabled: false}"},
		{p.KubeletConfig, "containerRuntimeEndpoint: unix:///run/weft-lab/k1/n2/runtime/containerd.sock"},
		{p.KubeletConfig, "clusterDNS: [169.254.20.10]"},
		{p.KubeletConfig, "protectKernelDefaults: true"},
		{p.ResolvConf, "nameserver 169.254.20.10\n"},
		{p.SysctlDir + "/vm.overcommit_memory", "1\n"},
		{p.SysctlDir + "/kernel.keys.root_maxkeys", "1000000\n"},
	} {
		if got, ok := files[tc.file]; !ok || !strings.Contains(got, tc.want) {
			t.Errorf("%s lacks %q:\n%s", tc.file, tc.want, got)
		}
	}
	if strings.Contains(files[p.KubeletConfig], "%!") {
		t.Errorf("kubelet config badly formatted:\n%s", files[p.KubeletConfig])
	}
}

func TestArgv(t *testing.T) {
	c := testConfig()
	k := kubeletArgv(c)
	for _, want := range []string{"--hostname-override=n2", "--node-ip=192.168.77.12", "--node-labels=a=b,weft.dev/lab=k1",
		"--kubeconfig=/run/weft-lab/k1/n2/kubelet.kubeconfig", "--root-dir=/run/weft-lab/k1/n2/runtime/kubelet"} {
		if !slices.Contains(k, want) {
			t.Errorf("kubelet argv %v lacks %s", k, want)
		}
	}
	s := supervisorArgv(c)
	if !slices.Equal(s[:7], []string{"nsenter", "--net=/run/netns/k1-n2", "--", "unshare", "--mount", "--propagation", "slave"}) {
		t.Errorf("supervisor argv = %v", s)
	}
	if s[8] != "/opt/bin/weft" || !slices.Contains(s, "node-runtime") || s[len(s)-1] != "/run/weft-lab/k1/n2/runtime/runtime.json" {
		t.Errorf("supervisor argv = %v", s)
	}
	if got := c.CgroupName(); got != "weft-k1-n2" {
		t.Errorf("cgroup = %s", got)
	}
}
