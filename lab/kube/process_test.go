package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// fakeEnv makes the test binary, re-executed, sleep: a stand-in process
// whose command line we choose (argv[0] need not be the executable).
const fakeEnv = "WEFT_KUBE_FAKE_COMPONENT"

// startChildEnv makes the test binary, re-executed, Start the control plane
// described by the JSON Config in it and exit: a stand-in for `weft lab up`.
const startChildEnv = "WEFT_KUBE_START_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(fakeEnv) != "" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	if js := os.Getenv(startChildEnv); js != "" {
		var cfg Config
		if err := json.Unmarshal([]byte(js), &cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if _, err := Start(context.Background(), cfg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startFake starts a process with command line argv in its own session and
// returns it; the test kills it at the end whatever happens.
func startFake(t *testing.T, argv ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &exec.Cmd{Path: self, Args: argv, Env: append(os.Environ(), fakeEnv+"=1"),
		SysProcAttr: &syscall.SysProcAttr{Setsid: true}}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	// Wait until the exec is done and the command line is ours.
	deadline := time.Now().Add(5 * time.Second)
	for len(cmdline(c.Process.Pid)) == 0 || cmdline(c.Process.Pid)[0] != argv[0] {
		if time.Now().After(deadline) {
			t.Fatalf("fake %v did not start", argv)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

func TestStopByPidFiles(t *testing.T) {
	dir := t.TempDir()
	p := pathsOf(dir)
	if err := Stop(dir); err != nil {
		t.Fatalf("Stop of an empty dir: %v", err)
	}

	// The apiserver's pid file names our fake apiserver; etcd's names a
	// process that is not etcd of this dir (a recycled pid); the controller
	// manager's is garbage.
	api := startFake(t, "/x/bin/kube-apiserver", "--tls-cert-file="+filepath.Join(dir, "pki/apiserver.crt"))
	other := startFake(t, "/usr/bin/etcd", "--data-dir=/var/lib/etcd")
	write := func(name, s string) {
		if err := os.WriteFile(p.pidFile(name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(APIServer, strconv.Itoa(api.Process.Pid)+"\n")
	write(Etcd, strconv.Itoa(other.Process.Pid)+"\n")
	write(ControllerManager, "garbage\n")

	apiDone := make(chan struct{})
	go func() { _ = api.Wait(); close(apiDone) }()
	if err := Stop(dir); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-apiDone:
	case <-time.After(5 * time.Second):
		t.Fatal("fake kube-apiserver still running after Stop")
	}
	if err := syscall.Kill(other.Process.Pid, 0); err != nil {
		t.Errorf("Stop killed a process that is not this dir's etcd: %v", err)
	}
	for _, name := range components {
		if _, err := os.Stat(p.pidFile(name)); !os.IsNotExist(err) {
			t.Errorf("%s pid file left behind (%v)", name, err)
		}
	}
	if err := Stop(dir); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
