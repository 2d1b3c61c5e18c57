// Package e2e runs weft end to end: real agents in `weft lab` clusters of
// network namespaces, real tunnels, real pods wired by weft-cni, real traffic.
// Everything here needs root; without it every test skips, saying so.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/internal/poll"
	"github.com/weftnet/weft/lab"
)

// binDir holds weft and weft-cni built from this tree for the run.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "weft-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	_, here, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(here), "..", "..")
	for _, c := range []string{"weft", "weft-cni"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, c), "./cmd/"+c)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "failed to build %s: %v\n%s", c, err, out)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and runs weft agents in them")
	}
	if testing.Short() {
		t.Skip("end-to-end lab test; skipped with -short")
	}
}

// cluster is one `weft lab` for a test.
type cluster struct {
	t      *testing.T
	name   string
	layout lab.Layout
}

type labStatus struct {
	Name    string `json:"name"`
	Backend string `json:"backend"`
	Nodes   []struct {
		Name       string `json:"name"`
		NetNS      string `json:"netns"`
		UnderlayIP string `json:"underlayIP"`
		PodCIDR    string `json:"podCIDR"`
		PID        int    `json:"pid"`
		Running    bool   `json:"running"`
		Agent      string `json:"agent"`
	} `json:"nodes"`
	Pods []labPod `json:"pods"`
}

type labPod struct {
	Name  string `json:"name"`
	Node  string `json:"node"`
	NetNS string `json:"netns"`
	IP    string `json:"ip"`
}

func (p labPod) Addr() netip.Addr { return netip.MustParseAddr(p.IP) }
func (p labPod) NSPath() string   { return lab.NetNSPath(p.NetNS) }

// newCluster brings a lab up with the given `weft lab up` flags and tears
// it down when the test ends (also when it fails).
func newCluster(t *testing.T, args ...string) *cluster {
	t.Helper()
	return newClusterNamed(t, "", args...)
}

// newClusterNamed is newCluster for a test that runs several labs at once:
// suffix (lower-case letters and digits) tells them apart.
func newClusterNamed(t *testing.T, suffix string, args ...string) *cluster {
	t.Helper()
	needRoot(t)
	// WEFT_E2E_PREFIX (lower-case letters) keeps the labs of several
	// people running tests on one machine apart by name; default "we".
	prefix := os.Getenv("WEFT_E2E_PREFIX")
	if prefix == "" {
		prefix = "we"
	}
	name := fmt.Sprintf("%s%d%s", prefix, os.Getpid()%100000, suffix)
	c := &cluster{t: t, name: name, layout: lab.Layout{Root: lab.DefaultRoot, Name: name}}
	c.weft("lab", "down", "--name", name) // a leftover from a crashed run
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs()
		}
		c.weft("lab", "down", "--name", name)
	})
	c.mustWeft(append([]string{"lab", "up", "--name", name}, args...)...)
	return c
}

func (c *cluster) weft(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "weft"), args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

func (c *cluster) mustWeft(args ...string) string {
	c.t.Helper()
	out, err := c.weft(args...)
	if err != nil {
		c.t.Fatalf("weft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *cluster) status() labStatus {
	c.t.Helper()
	out := c.mustWeft("lab", "status", "--json", "--name", c.name)
	var st labStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("lab status --json: %v\n%s", err, out)
	}
	return st
}

func (c *cluster) pods() []labPod { return c.status().Pods }

// agentStatus asks one node's agent for its view over its status socket.
func (c *cluster) agentStatus(node string) (agent.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return agent.FetchStatus(ctx, c.layout.Node(node).StatusSocket)
}

func (c *cluster) nodeNSPath(node string) string { return lab.NetNSPath(c.layout.NodeNS(node)) }

func (c *cluster) dumpLogs() {
	entries, _ := filepath.Glob(filepath.Join(c.layout.Dir(), "*", "agent.log"))
	for _, e := range entries {
		b, _ := os.ReadFile(e)
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		c.t.Logf("==== %s (tail)\n%s", e, b)
	}
}

// eventually polls f until it returns nil or the timeout passes, and
// returns how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	return poll.Eventually(t, timeout, 100*time.Millisecond, what, f)
}
