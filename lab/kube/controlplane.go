package kube

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ErrNotBuilt means a control-plane binary is missing from BinDir; run
// scripts/build-controlplane.sh.
var ErrNotBuilt = errors.New("control-plane binary not built (run scripts/build-controlplane.sh)")

// ErrNotRunning means Load found a component of the control plane not
// running.
var ErrNotRunning = errors.New("control plane not running")

// ControlPlane is a running etcd, kube-apiserver and kube-controller-manager.
type ControlPlane struct {
	cfg   Config
	paths paths

	mu      sync.Mutex
	procs   []*proc // start order; guarded by mu
	stopped bool    // guarded by mu
}

// Start starts a control plane as cfg says and waits, bounded by
// cfg.StartTimeout, until kube-apiserver is ready and kube-controller-manager
// is working (it has created the "default" ServiceAccount). The processes
// run detached and outlive the caller; on failure Start stops whatever it
// started and the error carries the end of the failing component's log.
func Start(ctx context.Context, cfg Config) (_ *ControlPlane, err error) {
	cp, err := newControlPlane(cfg)
	if err != nil {
		return nil, err
	}
	if cp.cfg.Etcd, err = checkBinaries(cp.cfg); err != nil {
		return nil, err
	}
	cfg, log := cp.cfg, cp.cfg.Logger
	if err := ns.IsNSorErr(cfg.netnsPath()); err != nil {
		return nil, fmt.Errorf("NetNS: %w", err)
	}
	for _, name := range cfg.components() {
		if pid := readPid(cp.paths.pidFile(name)); running(pid, name, cfg.Dir) {
			return nil, fmt.Errorf("%s of %s already runs (pid %d): stop it first", name, cfg.Dir, pid)
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", cfg.Dir, err)
	}
	began := time.Now()
	keys, err := ensurePKI(cfg, cp.paths, began)
	if err != nil {
		return nil, err
	}
	for _, kc := range []struct {
		kp   keyPair
		user string
		file string
	}{
		{keys.Admin, "admin", cp.paths.adminKubeconfig},
		{keys.ControllerManager, "kube-controller-manager", cp.paths.kcmKubeconfig},
		{keys.Scheduler, "kube-scheduler", cp.paths.schedKubeconfig},
	} {
		k, err := certKubeconfig(cfg.apiServerURL(), keys.CA, kc.kp, kc.user)
		if err != nil {
			return nil, err
		}
		if err := writeKubeconfig(k, kc.file); err != nil {
			return nil, err
		}
	}

	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	client, err := kubernetes.NewForConfig(cp.AdminRESTConfig())
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	ready := map[string]func(context.Context) error{
		Etcd:              func(ctx context.Context) error { return cp.etcdHealthy(ctx) },
		APIServer:         func(ctx context.Context) error { return apiServerReady(ctx, client) },
		ControllerManager: func(ctx context.Context) error { return controllersWorking(ctx, client) },
		Scheduler:         func(ctx context.Context) error { return cp.healthz(ctx, schedulerPort) },
	}
	for _, cmd := range commands(cfg) {
		t := time.Now()
		p, err := startDetached(cmd, cfg.netnsPath(), cfg.Dir, cp.paths.logFile(cmd.Name), cp.paths.pidFile(cmd.Name))
		if err != nil {
			return nil, err
		}
		cp.mu.Lock()
		cp.procs = append(cp.procs, p)
		cp.mu.Unlock()
		if err := cp.waitFor(ctx, p, ready[cmd.Name]); err != nil {
			return nil, err
		}
		log.Info("control-plane component ready", "component", cmd.Name, "pid", p.pid, "took", time.Since(t).Round(time.Millisecond))
	}
	log.Info("control plane ready", "apiserver", cfg.apiServerURL(), "netns", cfg.NetNS, "took", time.Since(began).Round(time.Millisecond))
	return cp, nil
}

// Load reattaches to the control plane that Start left running with the
// same cfg (a later `weft lab` command). It returns ErrNotRunning when a
// component is not running.
func Load(cfg Config) (*ControlPlane, error) {
	cp, err := newControlPlane(cfg)
	if err != nil {
		return nil, err
	}
	for _, name := range cp.cfg.components() {
		pid := readPid(cp.paths.pidFile(name))
		if !running(pid, name, cp.cfg.Dir) {
			return nil, fmt.Errorf("%s of %s: %w", name, cp.cfg.Dir, ErrNotRunning)
		}
		cp.procs = append(cp.procs, &proc{name: name, pid: pid})
	}
	return cp, nil
}

func newControlPlane(cfg Config) (*ControlPlane, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("invalid control-plane config: %w", err)
	}
	var err error
	if cfg.Dir, err = filepath.Abs(cfg.Dir); err != nil {
		return nil, fmt.Errorf("Dir: %w", err)
	}
	if cfg.BinDir, err = filepath.Abs(cfg.BinDir); err != nil {
		return nil, fmt.Errorf("BinDir: %w", err)
	}
	return &ControlPlane{cfg: cfg, paths: pathsOf(cfg.Dir)}, nil
}

// checkBinaries checks that every binary exists and returns the path of
// cfg.Etcd.
func checkBinaries(cfg Config) (etcd string, err error) {
	for _, name := range cfg.components()[1:] {
		bin := filepath.Join(cfg.BinDir, name)
		if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s: %w", bin, ErrNotBuilt)
		}
	}
	etcd, err = exec.LookPath(cfg.Etcd)
	if err != nil {
		return "", fmt.Errorf("etcd (%s): %w (scripts/build-controlplane.sh installs it)", cfg.Etcd, err)
	}
	return filepath.Abs(etcd)
}

// BinariesBuilt reports whether binDir holds the control-plane binaries and
// etcd is installed; the error says what is missing.
func BinariesBuilt(binDir string) error {
	_, err := checkBinaries(Config{BinDir: binDir}.withDefaults())
	return err
}

// waitFor polls check until it succeeds, p exits, or ctx ends.
func (cp *ControlPlane) waitFor(ctx context.Context, p *proc, check func(context.Context) error) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited during start-up; end of %s:\n%s", p.name, cp.paths.logFile(p.name), logTail(cp.paths.logFile(p.name), 20))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w (last: %v); end of %s:\n%s", p.name, cp.cfg.StartTimeout, ctx.Err(), last,
				cp.paths.logFile(p.name), logTail(cp.paths.logFile(p.name), 20))
		case <-tick.C:
		}
	}
}

// etcdHealthy asks etcd's /health inside NetNS.
func (cp *ControlPlane) etcdHealthy(ctx context.Context) error {
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer(cp.cfg.netnsPath())}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/health", etcdClientPort), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"true"`) {
		return fmt.Errorf("etcd /health: %s %s", resp.Status, body)
	}
	return nil
}

// healthz asks a component's /healthz on its secure port inside NetNS. It
// serves a self-signed certificate and /healthz to anyone, so the
// certificate is not checked: the answer only says the process is up.
func (cp *ControlPlane) healthz(ctx context.Context, port int) error {
	hc := &http.Client{Transport: &http.Transport{
		DialContext:     dialer(cp.cfg.netnsPath()),
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // liveness only, see above
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s", resp.Status)
	}
	return nil
}

// apiServerReady asks kube-apiserver's /readyz as the admin.
func apiServerReady(ctx context.Context, client kubernetes.Interface) error {
	body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("/readyz: %w: %s", err, body)
	}
	return nil
}

// controllersWorking reports whether kube-controller-manager's controllers
// act: the ServiceAccount controller creates "default" in every namespace.
func controllersWorking(ctx context.Context, client kubernetes.Interface) error {
	_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return errors.New("no default ServiceAccount yet")
	}
	return err
}

// logTail returns the last n lines of file.
func logTail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// AdminKubeconfig is the path of the admin kubeconfig (system:masters).
// Its server is https://Address:6443: for clients that reach Address
// (inside NetNS, or across the lab's underlay).
func (cp *ControlPlane) AdminKubeconfig() string { return cp.paths.adminKubeconfig }

// Server is the apiserver's URL, https://Address:6443.
func (cp *ControlPlane) Server() string { return cp.cfg.apiServerURL() }

// CAFile is the path of the cluster CA certificate.
func (cp *ControlPlane) CAFile() string { return cp.paths.caCert }

// Dir is the state directory (absolute).
func (cp *ControlPlane) Dir() string { return cp.cfg.Dir }

// AdminRESTConfig is a client-go config for the admin that opens its
// connections inside NetNS, so it works from the host namespace whether or
// not Address is routed there.
func (cp *ControlPlane) AdminRESTConfig() *rest.Config {
	return &rest.Config{
		Host: cp.cfg.apiServerURL(),
		TLSClientConfig: rest.TLSClientConfig{
			CAFile:   cp.paths.caCert,
			CertFile: cp.paths.adminCert,
			KeyFile:  cp.paths.adminKey,
		},
		Dial:      dialer(cp.cfg.netnsPath()),
		UserAgent: "weft-lab",
	}
}

// NodeKubeconfig writes to out a kubeconfig for the kubelet of node: a
// client certificate for system:node:<node>, issued by the cluster CA, so
// the Node authorizer and NodeRestriction hold it to its own Node and pods.
func (cp *ControlPlane) NodeKubeconfig(node, out string) error {
	ca, err := readKeyPair(cp.paths.caCert, cp.paths.caKey)
	if err != nil {
		return fmt.Errorf("failed to load CA: %w", err)
	}
	kp, err := issue(ca, nodeSpec(node), time.Now())
	if err != nil {
		return err
	}
	k, err := certKubeconfig(cp.cfg.apiServerURL(), ca, kp, "system:node:"+node)
	if err != nil {
		return err
	}
	return writeKubeconfig(k, out)
}

// Pids returns each running component's pid by name.
func (cp *ControlPlane) Pids() map[string]int {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	out := map[string]int{}
	for _, p := range cp.procs {
		if !cp.stopped {
			out[p.name] = p.pid
		}
	}
	return out
}

// Stop stops every component (scheduler, controller manager, apiserver, etcd),
// waiting until each has exited, and removes their pid files. It keeps
// Dir's data and is idempotent.
func (cp *ControlPlane) Stop() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return nil
	}
	var errs []error
	for i := len(cp.procs) - 1; i >= 0; i-- {
		p := cp.procs[i]
		if err := stopPid(p.pid, p.name, cp.cfg.Dir, p.exited); err != nil {
			errs = append(errs, err)
			continue
		}
		pidFile := cp.paths.pidFile(p.name)
		if readPid(pidFile) == p.pid {
			if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("failed to remove %s: %w", pidFile, err))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	cp.stopped = true
	return nil
}
