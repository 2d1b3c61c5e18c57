package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"k8s.io/client-go/kubernetes"
)

// StopComponent stops one component of the control plane in dir by its pid
// file and leaves the others running: an API server outage, say. Like Stop
// it kills only a process whose command line is that component's and names
// dir, and it is idempotent.
func StopComponent(dir, name string) error {
	if !slices.Contains(components, name) {
		return fmt.Errorf("unknown control-plane component %q (want one of %v)", name, components)
	}
	p := pathsOf(dir)
	pidFile := p.pidFile(name)
	if err := stopPid(readPid(pidFile), name, p.dir, nil); err != nil {
		return err
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("failed to remove %s: %w", pidFile, err)
	}
	return nil
}

// StartComponent starts one stopped component of the control plane that
// Start set up with the same cfg, and waits (bounded by cfg.StartTimeout)
// until it is ready. A component that runs already is left alone.
func StartComponent(ctx context.Context, cfg Config, name string) error {
	cp, err := newControlPlane(cfg)
	if err != nil {
		return err
	}
	if cp.cfg.Etcd, err = checkBinaries(cp.cfg); err != nil {
		return err
	}
	i := slices.IndexFunc(commands(cp.cfg), func(c command) bool { return c.Name == name })
	if i < 0 {
		return fmt.Errorf("unknown control-plane component %q (want one of %v)", name, components)
	}
	if running(readPid(cp.paths.pidFile(name)), name, cp.cfg.Dir) {
		return nil
	}
	client, err := kubernetes.NewForConfig(cp.AdminRESTConfig())
	if err != nil {
		return fmt.Errorf("failed to create client: %w", err)
	}
	ready := map[string]func(context.Context) error{
		Etcd:              cp.etcdHealthy,
		APIServer:         func(ctx context.Context) error { return apiServerReady(ctx, client) },
		ControllerManager: func(ctx context.Context) error { return controllersWorking(ctx, client) },
		Scheduler:         func(ctx context.Context) error { return cp.healthz(ctx, schedulerPort) },
	}[name]
	cmd := commands(cp.cfg)[i]
	p, err := startDetached(cmd, cp.cfg.netnsPath(), cp.cfg.Dir, cp.paths.logFile(name), cp.paths.pidFile(name))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cp.cfg.StartTimeout)
	defer cancel()
	if err := cp.waitFor(ctx, p, ready); err != nil {
		_ = stopPid(p.pid, name, cp.cfg.Dir, p.exited)
		return err
	}
	cp.cfg.Logger.Info("control-plane component ready", "component", name, "pid", p.pid)
	return nil
}

// RunningComponents lists the components of the control plane in dir whose
// processes run, in start order.
func RunningComponents(dir string) []string {
	p := pathsOf(dir)
	out := []string{}
	for _, name := range components {
		if running(readPid(p.pidFile(name)), name, p.dir) {
			out = append(out, name)
		}
	}
	return out
}
