package lab

import (
	"bytes"
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

// wgRunDir is where wireguard-go puts its UAPI socket and `wg` looks for
// it. Every node sees its own WireGuardDir there, in a private mount
// namespace, because all nodes name their device weft0.
const wgRunDir = "/var/run/wireguard"

// nodeViewScript enters a node's view: a private mount namespace (made by
// the unshare around it) with the node's wireguard directory on wgRunDir,
// then the node's netns. Arguments: DIR NETNS CMD ARGS...; the final exec
// keeps the process id, so the recorded pid is the command's own.
const nodeViewScript = `d=$1; n=$2; shift 2; mount --bind "$d" ` + wgRunDir + ` && exec ip netns exec "$n" "$@"`

// NodeViewArgv runs argv inside node n's view: its netns and its
// /run/wireguard.
func NodeViewArgv(n NodePlan, argv []string) []string {
	out := []string{"unshare", "--mount", "--propagation", "private",
		"sh", "-c", nodeViewScript, "sh", n.Paths.WireGuardDir, n.NetNS}
	return append(out, argv...)
}

// PodArgv runs argv inside a pod's netns.
func PodArgv(ns string, argv []string) []string {
	return append([]string{"ip", "netns", "exec", ns}, argv...)
}

// AgentArgv is the command line of node n's agent.
func AgentArgv(weft string, n NodePlan) []string {
	return NodeViewArgv(n, []string{weft, "agent", "--config", n.Paths.Config})
}

// prepareNodeView creates the directories a node view mounts.
func prepareNodeView(n NodePlan) error {
	// The mount point must exist on the shared filesystem; it stays an
	// empty directory there, wireguard-tools' standard location.
	if err := os.MkdirAll(wgRunDir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", wgRunDir, err)
	}
	if err := os.MkdirAll(n.Paths.WireGuardDir, 0o700); err != nil {
		return fmt.Errorf("failed to create %s: %w", n.Paths.WireGuardDir, err)
	}
	return nil
}

// startAgent starts node n's agent detached (own session, output appended
// to the node's agent.log) and returns its pid.
func startAgent(weft string, n NodePlan) (int, error) {
	if err := prepareNodeView(n); err != nil {
		return 0, fmt.Errorf("node %s: %w", n.Name, err)
	}
	logf, err := os.OpenFile(n.Paths.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("node %s: failed to open agent log: %w", n.Name, err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- weft lab: starting agent of %s at %s\n", n.Name, time.Now().Format(time.RFC3339))
	argv := AgentArgv(weft, n)
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdout, c.Stderr = logf, logf
	c.Dir = n.Paths.Dir
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("node %s: failed to start agent (%s): %w", n.Name, strings.Join(argv, " "), err)
	}
	pid := c.Process.Pid
	// Reap it if it exits while this process lives (tests, long commands);
	// otherwise it is re-parented to init when `weft lab` exits.
	go func() { _ = c.Wait() }()
	return pid, nil
}

// cmdline returns /proc/PID/cmdline split into arguments; nil when the
// process is gone or a zombie.
func cmdline(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00")
}

// isAgentOf reports whether argv is a weft agent started with config cfg
// (or, with cfg a directory prefix ending in '/', any config under it).
func isAgentOf(argv []string, cfg string) bool {
	// The word before "agent" is the weft binary: argv[0] once the agent
	// runs, or the tail of the node-view wrapper an instant before.
	i := slices.Index(argv, "agent")
	if i < 1 || !strings.HasPrefix(filepath.Base(argv[i-1]), "weft") {
		return false
	}
	for j := i + 1; j < len(argv); j++ {
		a := argv[j]
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			a = v
		} else if a == "--config" && j+1 < len(argv) {
			a = argv[j+1]
		} else {
			continue
		}
		if a == cfg || strings.HasSuffix(cfg, "/") && strings.HasPrefix(a, cfg) {
			return true
		}
	}
	return false
}

// procAlive reports whether pid exists and is not a zombie. Unlike
// agentRunning it does not read the command line, which is briefly empty
// while the node-view wrapper execs its way down to the agent.
func procAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}

// procExited reports whether pid has fully exited: gone, or a zombie whose
// other threads are gone too. A multi-threaded process's leader turns
// zombie while its other threads are still exiting, and the files they
// share (the agent's listening sockets among them) close only when the last
// thread is done.
func procExited(pid int) bool {
	if procAlive(pid) {
		return false
	}
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	return err != nil || len(tasks) <= 1
}

// agentRunning reports whether pid is alive and is the agent of cfg.
func agentRunning(pid int, cfg string) bool {
	return pid > 0 && isAgentOf(cmdline(pid), cfg)
}

// killAgent SIGKILLs pid if, and only if, it is the agent of cfg, and
// waits (bounded) until it is gone.
func killAgent(pid int, cfg string) error {
	if !agentRunning(pid, cfg) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("failed to kill agent pid %d: %w", pid, err)
	}
	// Wait on the process state, not the command line: the command line
	// empties when the process drops its memory, before the kernel closes
	// its sockets, and a restarted agent needs the gossip port free.
	deadline := time.Now().Add(5 * time.Second)
	for !procExited(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("agent pid %d did not exit after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// findAgents returns the pids of every weft agent whose config lies under
// dir: the lab's agents even when state.json is lost.
func findAgents(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	prefix := filepath.Clean(dir) + "/"
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if isAgentOf(cmdline(pid), prefix) {
			pids = append(pids, pid)
		}
	}
	return pids
}
