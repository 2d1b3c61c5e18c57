package kubelet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Supervision timings.
const (
	socketTimeout = 30 * time.Second // containerd's socket appearing
	stopGrace     = 10 * time.Second // SIGTERM to SIGKILL
	restartMin    = time.Second
	restartMax    = 30 * time.Second
)

// child is one supervised process.
type child struct {
	name string
	argv []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

func (ch *child) start() error {
	f, err := os.OpenFile(ch.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "--- weft lab node-runtime: starting %s at %s\n", ch.name, time.Now().Format(time.RFC3339))
	cmd := exec.Command(ch.argv[0], ch.argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("failed to start %s: %w", ch.name, err)
	}
	ch.cmd, ch.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(ch.done) }()
	return nil
}

// stop sends SIGTERM and waits, then SIGKILL.
func (ch *child) stop() {
	if ch.cmd == nil {
		return
	}
	_ = ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.done:
	case <-time.After(stopGrace):
		_ = ch.cmd.Process.Kill()
		<-ch.done
	}
}

// Run is the supervisor: it must run in the node's network namespace and
// in a mount namespace of its own (see supervisorArgv). It returns when ctx
// ends, after stopping everything it started.
func Run(ctx context.Context, c Config, log *slog.Logger) error {
	if err := c.validate(); err != nil {
		return fmt.Errorf("node runtime: %w", err)
	}
	p := c.Paths()
	for _, s := range Sysctls {
		if err := unix.Mount(sysctlFile(p, s), filepath.Join("/proc/sys", s.Key), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("failed to show the kubelet %s=%s: %w", s.Key, s.Value, err)
		}
	}
	for _, b := range c.Binds {
		// The mount point is created on the host's filesystem (an empty
		// directory there), the bind stays in this mount namespace.
		if err := os.MkdirAll(b.Dst, 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(b.Src, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(b.Src, b.Dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("failed to show %s at %s: %w", b.Src, b.Dst, err)
		}
	}
	// containerd's shims daemonize; as a subreaper this process becomes
	// their parent, so it can end them when containerd is gone.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("failed to become a subreaper: %w", err)
	}
	ctrd := &child{name: "containerd", argv: containerdArgv(c), log: p.ContainerdLog}
	kubelet := &child{name: "kubelet", argv: kubeletArgv(c), log: p.KubeletLog}
	defer shutdown(c, log, kubelet, ctrd)

	startContainerd := func() error {
		_ = os.Remove(p.ContainerdSocket)
		if err := ctrd.start(); err != nil {
			return err
		}
		if err := waitSocket(ctx, p.ContainerdSocket, ctrd.done); err != nil {
			return fmt.Errorf("containerd: %w (see %s)", err, p.ContainerdLog)
		}
		for _, im := range c.Images {
			argv := importArgv(c, im)
			out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("failed to import %s: %w: %s", im, err, strings.TrimSpace(string(out)))
			}
		}
		log.Info("containerd ready", "pid", ctrd.cmd.Process.Pid, "images", len(c.Images))
		return nil
	}
	if err := startContainerd(); err != nil {
		return err
	}
	if err := kubelet.start(); err != nil {
		return err
	}
	log.Info("kubelet started", "pid", kubelet.cmd.Process.Pid)

	backoff := map[string]time.Duration{"containerd": restartMin, "kubelet": restartMin}
	restart := func(ch *child, start func() error) error {
		log.Warn("process exited; restarting", "process", ch.name, "state", ch.cmd.ProcessState.String(), "in", backoff[ch.name])
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff[ch.name]):
		}
		backoff[ch.name] = min(2*backoff[ch.name], restartMax)
		return start()
	}
	reap := time.NewTicker(time.Second)
	defer reap.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ctrd.done:
			if err := restart(ctrd, startContainerd); err != nil {
				log.Error("containerd restart failed", "err", err)
			}
		case <-kubelet.done:
			if err := restart(kubelet, kubelet.start); err != nil {
				log.Error("kubelet restart failed", "err", err)
			}
		case <-reap.C:
			// Orphans re-parented here (exited shims, containers' leftovers).
			for {
				pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}

// shutdown stops the kubelet, kills every container (the processes in the
// node's cgroups), stops containerd and ends what is left of its shims.
func shutdown(c Config, log *slog.Logger, kubelet, ctrd *child) {
	t := time.Now()
	kubelet.stop()
	log.Info("kubelet stopped", "took", time.Since(t).Round(time.Millisecond))
	killUntilGone(func() []int { return cgroupsPids(c.CgroupName()) })
	ctrd.stop()
	killChildren()
	log.Info("node runtime stopped", "took", time.Since(t).Round(time.Millisecond))
}

// killChildren kills every remaining child of this process (the shims it
// adopted as subreaper) and reaps them.
func killChildren() {
	self := os.Getpid()
	var children []int
	for _, pid := range pids() {
		if ppid(pid) == self {
			children = append(children, pid)
		}
	}
	removeShimSockets(children)
	for _, pid := range children {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pid, err := unix.Wait4(-1, nil, 0, nil)
		if pid <= 0 || errors.Is(err, unix.ECHILD) {
			return
		}
	}
}

// waitSocket waits until the unix socket exists, the process exits or ctx
// ends.
func waitSocket(ctx context.Context, path string, exited <-chan struct{}) error {
	deadline := time.NewTimer(socketTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("exited before its socket appeared")
		case <-deadline.C:
			return fmt.Errorf("no socket %s after %s", path, socketTimeout)
		case <-tick.C:
		}
	}
}

// pids lists every process.
func pids() []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// ppid is pid's parent, 0 when unknown.
func ppid(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
