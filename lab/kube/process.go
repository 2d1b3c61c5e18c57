package kube

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long a component gets to exit on SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// proc is a started component.
type proc struct {
	name string
	pid  int
	// exited is closed when the process exits, if this process started it
	// (and so reaps it); nil for a process found by pid file.
	exited chan struct{}
}

// startDetached starts cmd inside the namespace at netnsPath in its own
// session, appending its output to logFile, and records its pid in pidFile.
// The process does not depend on the caller: it keeps running after the
// caller exits (re-parented to init).
func startDetached(cmd command, netnsPath, dir, logFile, pidFile string) (*proc, error) {
	logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s log: %w", cmd.Name, err)
	}
	defer logf.Close()
	argv := cmd.argv(netnsPath)
	fmt.Fprintf(logf, "--- weft lab: starting %s at %s: %s\n", cmd.Name, time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdout, c.Stderr = logf, logf
	c.Dir = dir
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s (%s): %w", cmd.Name, strings.Join(argv, " "), err)
	}
	p := &proc{name: cmd.Name, pid: c.Process.Pid, exited: make(chan struct{})}
	// Reap it if it exits while this process lives; Stop and the
	// readiness wait watch p.exited.
	go func() { _ = c.Wait(); close(p.exited) }()
	if err := writeFile(pidFile, []byte(strconv.Itoa(p.pid)+"\n"), 0o644); err != nil {
		_ = c.Process.Kill()
		return nil, err
	}
	return p, nil
}

// readPid reads a pid file; 0 when it is missing or unreadable.
func readPid(pidFile string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
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

// running reports whether pid is alive and is component name of dir.
func running(pid int, name, dir string) bool {
	return pid > 0 && isComponentOf(cmdline(pid), name, dir)
}

// exited reports whether pid has fully exited: gone, or a zombie whose
// threads are all gone (its sockets closed, its ports free).
func exited(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X' {
		return false
	}
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	return err != nil || len(tasks) <= 1
}

// stopPid stops pid if, and only if, it is component name of dir: SIGTERM,
// then SIGKILL after stopGrace, waiting until it has exited. done, when not
// nil, closes when this process has reaped it.
func stopPid(pid int, name, dir string, done <-chan struct{}) error {
	if !running(pid, name, dir) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("failed to signal %s (pid %d): %w", name, pid, err)
	}
	gone := func() bool {
		if done != nil {
			select {
			case <-done:
				return true
			default:
				return false
			}
		}
		return exited(pid)
	}
	for _, step := range []struct {
		wait time.Duration
		kill bool
	}{{stopGrace, true}, {5 * time.Second, false}} {
		deadline := time.Now().Add(step.wait)
		for !gone() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if gone() {
			return nil
		}
		if step.kill {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("failed to kill %s (pid %d): %w", name, pid, err)
			}
		}
	}
	return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", name, pid)
}

// Stop stops the control plane whose state is in dir, by its pid files:
// for `weft lab down` after the process that started it is gone. It kills
// only processes whose command line is that component's and names dir,
// removes the pid files, and is idempotent. It keeps dir's data.
func Stop(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("failed to resolve %s: %w", dir, err)
	}
	p := pathsOf(dir)
	var errs []error
	for i := len(components) - 1; i >= 0; i-- {
		name := components[i]
		pidFile := p.pidFile(name)
		if err := stopPid(readPid(pidFile), name, dir, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("failed to remove %s: %w", pidFile, err))
		}
	}
	return errors.Join(errs...)
}
