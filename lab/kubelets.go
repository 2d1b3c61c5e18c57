package lab

// The real nodes of a --kubelets lab: beside each agent, containerd and a
// kubelet (lab/kubelet) that register the Node and run real Pods, whose
// sandboxes containerd's CRI wires through weft-cni.

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftnet/weft/lab/image"
	"github.com/weftnet/weft/lab/kube"
	"github.com/weftnet/weft/lab/kubelet"
)

// Images the lab's nodes carry, under the names the upstream test suites
// (k8s.io/kubernetes/test/utils/image, 1.34) and containerd's sandbox use.
const (
	AgnhostImage  = "registry.k8s.io/e2e-test-images/agnhost:2.56"
	BusyboxImage  = "registry.k8s.io/e2e-test-images/busybox:1.37.0-1"
	DNSUtilsImage = "registry.k8s.io/e2e-test-images/jessie-dnsutils:1.7"
)

// webServerImages stand in for the upstream suites' web-server images
// (nginx, httpd): agnhost netexec answering HTTP on port 80, which is all
// those tests ask of them.
var webServerImages = []string{
	"registry.k8s.io/e2e-test-images/nginx:1.14-4",
	"registry.k8s.io/e2e-test-images/nginx:1.15-4",
	"registry.k8s.io/e2e-test-images/httpd:2.4.38-4",
	"registry.k8s.io/e2e-test-images/httpd:2.4.39-4",
}

// loopbackPlugin is the CNI plugin containerd calls for every sandbox's
// loopback (Debian's containernetworking-plugins).
const loopbackPlugin = "/usr/lib/cni/loopback"

// kubeletTools are the programs a --kubelets lab runs, with the Debian
// package that brings each.
var kubeletTools = map[string]string{"containerd": "containerd", "ctr": "containerd", "runc": "runc", "busybox": "busybox-static"}

// imageTools are the host's programs the images carry beside busybox, as
// the upstream agnhost image does (bind-tools, curl, netcat-openbsd, bash):
// the upstream tests run dig, curl and `nc -v -t`, which busybox lacks.
var imageTools = []struct{ program, path, pkg string }{
	{"dig", "usr/bin/dig", "bind9-dnsutils"},
	{"curl", "usr/bin/curl", "curl"},
	{"nc.openbsd", "usr/bin/nc", "netcat-openbsd"},
	{"bash", "bin/bash", "bash"},
	// the DNS tests ask getent about /etc/hosts (glibc's files and dns
	// lookups are built into its libc)
	{"getent", "usr/bin/getent", "libc-bin"},
}

// pauseImages are the sandbox image's names: containerd's (the lab sets
// it) and the kubelet 1.34's default, which the upstream suites run as a
// plain container.
var pauseImages = []string{kubelet.PauseImage, "registry.k8s.io/pause:3.10.1"}

// checkKubelets fails, saying what to install or build, when a --kubelets
// lab cannot run here.
func checkKubelets(spec Spec) error {
	var missing []string
	for tool, pkg := range kubeletTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", tool, pkg))
		}
	}
	for _, t := range imageTools {
		if _, err := exec.LookPath(t.program); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", t.program, t.pkg))
		}
	}
	for _, p := range []string{loopbackPlugin, filepath.Join(filepath.Dir(loopbackPlugin), portmapPlugin)} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p+" (Debian package containernetworking-plugins)")
		}
	}
	for _, b := range []string{"kubelet", "agnhost", kube.Scheduler, "agnhost-files/localhost.crt"} {
		if _, err := os.Stat(filepath.Join(spec.KubeBinDir, b)); err != nil {
			missing = append(missing, filepath.Join(spec.KubeBinDir, b)+" (`make controlplane` builds it)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("--kubelets: missing %s; `make deps controlplane` installs and builds them", strings.Join(missing, ", "))
	}
	return nil
}

// LabImages are the images of every node: pause (the sandbox), agnhost,
// busybox, dnsutils and the web-server stand-ins, all on one layer (agnhost,
// a static busybox with its applets in /bin, and extra: the imageTools with
// the shared libraries they load), so each node stores it once.
func LabImages(agnhost, busybox string, applets []string, extra []image.Entry) []image.Image {
	layer := []image.Entry{
		{Path: "agnhost", Src: agnhost},
		{Path: "agnhost-2", Link: "agnhost"},
		{Path: "bin/busybox", Src: busybox},
		// root, and the user and group agnhost's image defines
		{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n")},
		{Path: "etc/group", Data: []byte("root:x:0:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n")},
		{Path: "etc/nsswitch.conf", Data: []byte("passwd: files\ngroup: files\nhosts: files dns\n")},
		{Path: "tmp", Dir: true}, {Path: "proc", Dir: true}, {Path: "root", Dir: true}, {Path: "uploads", Dir: true},
		{Path: "sys", Dir: true}, {Path: "dev", Dir: true}, {Path: "var/run", Dir: true},
		{Path: "usr/bin", Dir: true},
	}
	taken := map[string]bool{}
	for _, e := range extra {
		taken[e.Path] = true
	}
	if taken["bin/bash"] {
		// Debian's busybox shell runs its own applets before anything on
		// PATH (so `nc` would never be netcat-openbsd's): sh is bash.
		layer = append(layer, image.Entry{Path: "bin/sh", Link: "bash"})
		taken["bin/sh"] = true
	}
	for _, a := range applets {
		// A program of extra wins over the applet of the same name
		// (/bin comes first in PATH).
		if a == "" || a == "busybox" || strings.Contains(a, "/") || taken["usr/bin/"+a] || taken["bin/"+a] {
			continue
		}
		layer = append(layer, image.Entry{Path: "bin/" + a, Link: "busybox"})
	}
	layer = append(layer, extra...)
	var ims []image.Image
	for _, ref := range pauseImages {
		ims = append(ims, image.Image{Ref: ref, Entrypoint: []string{"/agnhost", "pause"}, Layer: layer})
	}
	ims = append(ims, []image.Image{
		{Ref: AgnhostImage, Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Layer: layer},
		{Ref: BusyboxImage, Cmd: []string{"sh"}, Layer: layer},
		{Ref: DNSUtilsImage, Cmd: []string{"sh"}, Layer: layer},
	}...)
	for _, ref := range webServerImages {
		ims = append(ims, image.Image{Ref: ref, Entrypoint: []string{"/agnhost", "netexec", "--http-port=80"}, Layer: layer})
	}
	return ims
}

// withLibraries adds program at path and every shared library ldd says it
// loads, at the paths the loader looks for them, to entries.
func withLibraries(entries []image.Entry, program, path string) ([]image.Entry, error) {
	out, err := exec.Command("ldd", program).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", program, err)
	}
	entries = append(entries, image.Entry{Path: path, Src: program})
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		var lib string
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0] // the loader
		default:
			continue
		}
		if !slices.ContainsFunc(entries, func(e image.Entry) bool { return e.Path == lib }) {
			entries = append(entries, image.Entry{Path: lib, Src: lib})
		}
	}
	return entries, nil
}

// prepareKubelets writes what every node's runtime shares: the images and
// the CNI plugin directory.
func (lb *Lab) prepareKubelets(spec Spec) error {
	l := lb.layout
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return err
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	var extra []image.Entry
	for _, t := range imageTools {
		prog, err := exec.LookPath(t.program)
		if err != nil {
			return err
		}
		if extra, err = withLibraries(extra, prog, t.path); err != nil {
			return err
		}
	}
	// The porter's TLS certificate, which agnhost's image keeps at its root.
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		extra = append(extra, image.Entry{Path: f, Src: filepath.Join(spec.KubeBinDir, "agnhost-files", f)})
	}
	ims := LabImages(filepath.Join(spec.KubeBinDir, "agnhost"), bb, strings.Fields(string(out)), extra)
	if spec.DaemonSet() {
		ims = append(ims, WeftImageOf(lb.opts.Weft, filepath.Join(lb.opts.BinDir, CNIPluginType), bb))
	}
	if err := image.WriteFile(l.ImagesFile(), ims...); err != nil {
		return fmt.Errorf("failed to write the lab's images: %w", err)
	}
	if err := os.MkdirAll(l.CNIBinDir(), 0o755); err != nil {
		return err
	}
	return linkCNIPlugins(l.CNIBinDir(), map[string]string{
		CNIPluginType: filepath.Join(lb.opts.BinDir, CNIPluginType),
		"loopback":    loopbackPlugin,
		portmapPlugin: filepath.Join(filepath.Dir(loopbackPlugin), portmapPlugin),
	})
}

// linkCNIPlugins links each name in dir to its target plugin (made
// absolute), replacing what was there.
func linkCNIPlugins(dir string, targets map[string]string) error {
	for name, target := range targets {
		link := filepath.Join(dir, name)
		_ = os.Remove(link)
		abs, err := filepath.Abs(target)
		if err != nil {
			return err
		}
		if err := os.Symlink(abs, link); err != nil {
			return err
		}
	}
	return nil
}

// runtimeConfig is node n's runtime.
func (lb *Lab) runtimeConfig(spec Spec, n NodePlan) kubelet.Config {
	l := lb.layout
	c := kubelet.Config{
		Lab:           l.Name,
		Node:          n.Name,
		Dir:           n.Paths.RuntimeDir,
		NetNS:         NetNSPath(n.NetNS),
		NodeIP:        n.UnderlayIP,
		Kubelet:       filepath.Join(spec.KubeBinDir, "kubelet"),
		Weft:          lb.opts.Weft,
		Kubeconfig:    n.Paths.KubeletKubeconfig,
		ClientCAFile:  filepath.Join(l.KubeDir(), "pki", "ca.crt"),
		CNIBinDir:     l.CNIBinDir(),
		CNIConfDir:    n.Paths.CRIConfDir,
		ClusterDNS:    LabDNSAddr,
		ClusterDomain: LabDNSZone,
		Images:        []string{l.ImagesFile()},
		Labels:        map[string]string{LabelLab: l.Name},
	}
	if spec.DaemonSet() {
		// As on any node: the host's CNI directories, where the
		// DaemonSet's init container installs weft-cni and its conflist.
		c.CNIBinDir, c.CNIConfDir = hostCNIBin, hostCNIConf
		c.Binds = daemonSetBinds(n.Paths)
	}
	return c
}

// startNodeRuntime starts node n's containerd and kubelet; the kubelet
// registers the Node.
func (lb *Lab) startNodeRuntime(spec Spec, n NodePlan) error {
	cp, err := kube.Load(lb.kubeConfig(spec))
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if err := cp.NodeKubeconfig(n.Name, n.Paths.KubeletKubeconfig); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	if spec.DaemonSet() {
		// No conflist: the node is NotReady until the DaemonSet's init
		// container installs one.
		if err := prepareDaemonSetNode(n.Paths); err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
	} else if err := writeCRIConfList(n.Paths); err != nil {
		return err
	}
	pid, err := kubelet.Start(lb.runtimeConfig(spec, n))
	if err != nil {
		return err
	}
	lb.opts.Log.Info("node runtime started", "node", n.Name, "pid", pid, "log", filepath.Join(n.Paths.RuntimeDir, "runtime.log"))
	return nil
}

func writeCRIConfList(n NodePaths) error {
	cl, err := criConfList(n)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(n.CRIConfDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.CRIConfDir, "10-weft.conflist"), cl, 0o644)
}

// stopNodeRuntimes stops the runtime of every node directory of the lab,
// recorded or not (after a crash state.json may be missing).
func (lb *Lab) stopNodeRuntimes() error {
	l := lb.layout
	ents, err := os.ReadDir(l.Dir())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := l.Node(e.Name()).RuntimeDir
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		c := kubelet.Config{Lab: l.Name, Node: e.Name()}
		if err := kubelet.Stop(dir, c.CgroupName()); err != nil {
			errs = append(errs, fmt.Errorf("node %s runtime: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// realPodTimeout bounds the wait for a kubelet to run a lab pod.
const realPodTimeout = 90 * time.Second

// addRealPod creates pod p (node, name, namespace, labels, ports set) as a
// Pod the node's kubelet runs, waits until it runs with an address, and
// names its network namespace <lab>-<node>-<pod> (`ip netns attach`) so
// exec, check and serve reach it as any lab pod.
func (lb *Lab) addRealPod(ctx context.Context, st *State, p PodState) (PodState, error) {
	a, err := lb.api(ctx, st.Spec)
	if err != nil {
		return p, err
	}
	if err := a.ensureNamespace(ctx, p.Namespace); err != nil {
		return p, err
	}
	pods := a.cs.CoreV1().Pods(p.Namespace)
	if _, err := pods.Create(ctx, RealPodObject(lb.layout.Name, p), metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		return p, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	var got *corev1.Pod
	err = poll(ctx, realPodTimeout, func(ctx context.Context) error {
		if got, err = pods.Get(ctx, p.Name, metav1.GetOptions{}); err != nil {
			return err
		}
		if got.Status.Phase != corev1.PodRunning || got.Status.PodIP == "" {
			return fmt.Errorf("Pod %s/%s is %s", p.Namespace, p.Name, got.Status.Phase)
		}
		return nil
	})
	if err != nil {
		_ = a.deletePod(ctx, p)
		return p, fmt.Errorf("the kubelet of %s did not run pod %s: %w", p.Node, p.Name, err)
	}
	n, _ := st.node(p.Node)
	pid, err := podPid(lb.runtimeConfig(st.Spec, NodePlan{Name: n.Name}).CgroupName(), string(got.UID))
	if err == nil {
		_, err = lb.opts.Runner.Run(ctx, "ip", "netns", "attach", p.NetNS, strconv.Itoa(pid))
	}
	if err == nil {
		_, err = lb.opts.Runner.Run(ctx, ipn(p.NetNS, "link", "set", "lo", "alias", lb.layout.OwnerMark())...)
	}
	if err == nil {
		err = writePodResolvConf(p.NetNS, p.Namespace)
	}
	if err != nil {
		_ = DeleteNS(ctx, lb.opts.Runner, p.NetNS)
		_ = a.deletePod(ctx, p)
		return p, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	p.IP, _ = netip.ParseAddr(got.Status.PodIP)
	p.ContainerID = string(got.UID)
	p.Registered = true
	return p, nil
}

// podPid is a process of the pod whose UID is uid: the kubelet's cgroupfs
// driver puts each pod in a cgroup pod<uid> under the node's cgroup root.
func podPid(nodeCgroup, uid string) (int, error) {
	want := "pod" + uid
	for _, h := range []string{"pids", "memory", "cpu", ""} {
		root := filepath.Join("/sys/fs/cgroup", h, nodeCgroup)
		var pid int
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || pid != 0 || d.Name() != "cgroup.procs" || !strings.Contains(path, "/"+want+"/") {
				return nil
			}
			b, _ := os.ReadFile(path)
			if f := strings.Fields(string(b)); len(f) > 0 {
				pid, _ = strconv.Atoi(f[0])
			}
			return nil
		})
		if pid > 0 {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process of pod %s under cgroup %s", uid, nodeCgroup)
}

// routeFromCP routes node n's podCIDR from the control plane's namespace
// to n's underlay address (--kubelets only), as on a cluster whose control
// plane runs on nodes of the pod network: the API server reaches pods for
// `kubectl port-forward`-less proxying (pods/proxy, services/proxy) and
// webhooks and aggregated APIs (by endpoint address, see lab/kube).
func (lb *Lab) routeFromCP(ctx context.Context, spec Spec, n NodePlan, podCIDR string) error {
	if !spec.Kubelets {
		return nil
	}
	if _, err := lb.opts.Runner.Run(ctx, ipn(lb.layout.CPNS(), "route", "replace", podCIDR, "via", n.UnderlayIP.String())...); err != nil {
		return fmt.Errorf("node %s: failed to route its pods from the control plane: %w", n.Name, err)
	}
	return nil
}
