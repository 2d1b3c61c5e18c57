package kubelet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupFS is where the cgroup hierarchies are mounted.
const cgroupFS = "/sys/fs/cgroup"

// Start writes c's files, creates the node's cgroups and starts the
// supervisor detached (it outlives the caller). It returns the
// supervisor's pid; the Node appears in the API when the kubelet has
// registered it.
func Start(c Config) (int, error) {
	if err := c.validate(); err != nil {
		return 0, fmt.Errorf("node runtime: %w", err)
	}
	p := c.Paths()
	if pid := readPid(p.PidFile); isSupervisor(pid, c.Dir) {
		return 0, fmt.Errorf("the runtime of node %s runs already (pid %d)", c.Node, pid)
	}
	for _, d := range []string{p.Dir, p.ContainerdRoot, p.ContainerdState, p.KubeletRoot, p.PodLogs, p.SysctlDir, p.RuncRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
	}
	for _, f := range Files(c) {
		if err := os.WriteFile(f.Path, f.Data, os.FileMode(f.Mode)); err != nil {
			return 0, err
		}
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(p.ConfigJSON, b, 0o644); err != nil {
		return 0, err
	}
	for _, h := range hierarchies() {
		if err := os.MkdirAll(filepath.Join(h, c.CgroupName()), 0o755); err != nil {
			return 0, fmt.Errorf("failed to create the node's cgroup: %w", err)
		}
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	argv := supervisorArgv(c)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, p.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("failed to start the runtime of node %s: %w", c.Node, err)
	}
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	if err := os.WriteFile(p.PidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return 0, err
	}
	return pid, nil
}

// Stop ends the runtime in dir of the node whose cgroup is cgroup: the
// supervisor by its pid file (SIGTERM; it stops the kubelet, the
// containers and containerd), then whatever a crash left: processes whose
// command line names dir (containerd, its shims, the kubelet), processes in
// the node's cgroups, and the cgroups. It needs no intact state and is
// idempotent.
func Stop(dir, cgroup string) error {
	p := PathsOf(dir)
	if pid := readPid(p.PidFile); isSupervisor(pid, dir) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		if !waitGone(pid, 2*stopGrace+10*time.Second) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, 5*time.Second)
		}
	}
	var errs []error
	killUntilGone(func() []int {
		left := strays(dir)
		removeShimSockets(left)
		return append(left, cgroupsPids(cgroup)...)
	})
	if left := strays(dir); len(left) > 0 {
		errs = append(errs, fmt.Errorf("processes of %s left after SIGKILL: %v", dir, left))
	}
	// The kubelet and runc also create the node's cgroup in a hybrid
	// host's unified hierarchy.
	for _, h := range append(hierarchies(), filepath.Join(cgroupFS, "unified")) {
		if err := removeCgroup(filepath.Join(h, cgroup)); err != nil {
			errs = append(errs, err)
		}
	}
	_ = os.Remove(p.PidFile)
	return errors.Join(errs...)
}

// killUntilGone SIGKILLs the processes find returns until it returns none
// (bounded: about 5 s).
func killUntilGone(find func() []int) {
	for range 50 {
		left := find()
		if len(left) == 0 {
			return
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cgroupsPids lists the processes in the node's cgroup of every hierarchy.
func cgroupsPids(cgroup string) []int {
	var out []int
	for _, h := range hierarchies() {
		out = append(out, cgroupPids(filepath.Join(h, cgroup))...)
	}
	return out
}

// shimSocketDir is where containerd 1.6's shims listen, whichever
// containerd started them (its defaults.DefaultStateDir + "/s").
const shimSocketDir = "/run/containerd/s"

// removeShimSockets removes the sockets of the shims among pids, which a
// killed shim leaves behind. A shim's socket is named by containerd's
// shim.SocketAddress: sha256 of <containerd address>/<namespace>/<id>,
// all three on the shim's command line.
func removeShimSockets(pids []int) {
	for _, pid := range pids {
		argv := cmdline(pid)
		if len(argv) == 0 || !strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") {
			continue
		}
		flag := func(name string) string {
			if i := slices.Index(argv, name); i >= 0 && i+1 < len(argv) {
				return argv[i+1]
			}
			return ""
		}
		addr, ns, id := flag("-address"), flag("-namespace"), flag("-id")
		if addr == "" || ns == "" || id == "" {
			continue
		}
		sum := sha256.Sum256([]byte(filepath.Join(addr, ns, id)))
		_ = os.Remove(filepath.Join(shimSocketDir, hex.EncodeToString(sum[:])))
	}
	// Leave /run/containerd as it was found when nothing else uses it.
	for _, d := range []string{shimSocketDir, filepath.Dir(shimSocketDir)} {
		_ = os.Remove(d) // only when empty
	}
}

func cmdline(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
}

// hierarchies are the cgroup hierarchies a node's cgroup goes in: the
// unified one on a cgroup v2 host; every v1 hierarchy otherwise (the
// kubelet's cgroupfs driver uses v1 there, and not the hybrid's unified).
func hierarchies() []string {
	if _, err := os.Stat(filepath.Join(cgroupFS, "cgroup.controllers")); err == nil {
		return []string{cgroupFS}
	}
	ents, _ := os.ReadDir(cgroupFS)
	var out []string
	for _, e := range ents {
		if e.IsDir() && e.Name() != "unified" {
			out = append(out, filepath.Join(cgroupFS, e.Name()))
		}
	}
	return out
}

// cgroupPids lists the processes in the cgroup tree at dir.
func cgroupPids(dir string) []int {
	var out []int
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				out = append(out, pid)
			}
		}
		return nil
	})
	return out
}

// removeCgroup removes the cgroup tree at dir, deepest first.
func removeCgroup(dir string) error {
	var dirs []string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("failed to remove cgroup %s: %w", d, err)
		}
	}
	return nil
}

// strays are the processes whose command line names a file under dir.
func strays(dir string) []int {
	prefix := []byte(filepath.Clean(dir) + "/")
	self := os.Getpid()
	var out []int
	for _, pid := range pids() {
		if pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err == nil && bytes.Contains(b, prefix) {
			out = append(out, pid)
		}
	}
	return out
}

// isSupervisor reports whether pid is the supervisor of dir: its command
// line is `… lab node-runtime --config <dir>/runtime.json`.
func isSupervisor(pid int, dir string) bool {
	if pid <= 0 {
		return false
	}
	argv := cmdline(pid)
	return slices.Contains(argv, "node-runtime") && slices.Contains(argv, PathsOf(dir).ConfigJSON)
}

func readPid(file string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// waitGone waits until pid has exited (or is a zombie).
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return true
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X') {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
