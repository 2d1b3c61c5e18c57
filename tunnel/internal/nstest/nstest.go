package nstest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/tunnel"
)

// RequireRoot skips the test when not running as root.
func RequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	for _, tool := range []string{"ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

// Pair is two fresh network namespaces joined by a veth pair.
type Pair struct {
	A, B           string // namespace names
	VethA, VethB   string
	UnderA, UnderB netip.Addr
}

var seq struct {
	sync.Mutex
	n int
}

// Unique returns a short name unique to this process and call, suitable
// for interfaces (at most 15 bytes for prefixes up to 4 bytes).
func Unique(prefix string) string {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return fmt.Sprintf("%s%d%c", prefix, os.Getpid()%100000, 'a'+rune(seq.n%26))
}

// NewPair creates namespaces and a veth pair with the given MTU, addresses
// 192.168.77.1 (A) and .2 (B) on /24 (IPv6 off), and loopback up. Cleanup deletes the
// namespaces (and with them the veth pair).
func NewPair(t *testing.T, mtu int) *Pair {
	t.Helper()
	id := Unique("")
	p := &Pair{
		A: "weft-test-" + id + "-a", B: "weft-test-" + id + "-b",
		VethA: "wtv" + id + "a", VethB: "wtv" + id + "b",
		UnderA: netip.MustParseAddr("192.168.77.1"), UnderB: netip.MustParseAddr("192.168.77.2"),
	}
	for _, ns := range []string{p.A, p.B} {
		Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Logf("cleanup: ip netns del %s: %v: %s", ns, err, out)
			}
		})
		Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	Run(t, "ip", "link", "add", p.VethA, "netns", p.A, "mtu", fmt.Sprint(mtu), "type", "veth",
		"peer", "name", p.VethB, "netns", p.B, "mtu", fmt.Sprint(mtu))
	for _, s := range []struct {
		ns, dev string
		addr    netip.Addr
	}{{p.A, p.VethA, p.UnderA}, {p.B, p.VethB, p.UnderB}} {
		// IPv4 underlay only: no IPv6 neighbour discovery noise in captures.
		Run(t, "ip", "netns", "exec", s.ns, "sysctl", "-q", "-w", "net.ipv6.conf."+s.dev+".disable_ipv6=1")
		Run(t, "ip", "-n", s.ns, "addr", "add", s.addr.String()+"/24", "dev", s.dev)
		Run(t, "ip", "-n", s.ns, "link", "set", s.dev, "up")
	}
	return p
}

// AddPod creates a pod namespace behind node namespace ns, the way a CNI
// plugin would: a veth pair, addr/32 on the pod side with MTU mtu and a
// default route via 169.254.1.1 (held by the node side of the veth),
// a /32 route to the pod in the node, and forwarding on. It returns the
// pod namespace; Cleanup deletes it.
func AddPod(t *testing.T, ns string, addr netip.Addr, mtu int) string {
	t.Helper()
	pod := ns + "-pod"
	Run(t, "ip", "netns", "add", pod)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", pod).CombinedOutput(); err != nil {
			t.Logf("cleanup: ip netns del %s: %v: %s", pod, err, out)
		}
	})
	dev := Unique("wtp")
	Run(t, "ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", "eth0", "netns", pod)
	Run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	Run(t, "ip", "-n", ns, "addr", "add", "169.254.1.1/32", "dev", dev)
	Run(t, "ip", "-n", ns, "link", "set", dev, "up")
	Run(t, "ip", "-n", ns, "route", "add", addr.String()+"/32", "dev", dev)
	Run(t, "ip", "-n", pod, "link", "set", "lo", "up")
	Run(t, "ip", "-n", pod, "link", "set", "eth0", "mtu", fmt.Sprint(mtu), "up")
	Run(t, "ip", "-n", pod, "addr", "add", addr.String()+"/32", "dev", "eth0")
	Run(t, "ip", "-n", pod, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
	Run(t, "ip", "-n", pod, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
	return pod
}

// Run runs a command and fails the test if it fails; it returns stdout.
func Run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := Output(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Output runs a command and returns its stdout, or an error with stderr.
func Output(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// InNS runs a command inside ns and returns its stdout.
func InNS(ns, name string, args ...string) (string, error) {
	return Output("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Eventually polls cond until it returns nil or the deadline passes.
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v: %v", what, timeout, err)
		}
		time.Sleep(wait) // polling interval, not a fixed wait for an outcome
		wait = min(wait*2, 200*time.Millisecond)
	}
}

// Node is a backend running in a helper child process inside a namespace.
type Node struct {
	t      *testing.T
	NS     string
	cmd    *exec.Cmd
	enc    *json.Encoder
	dec    *json.Decoder
	stdin  io.Closer
	stderr *lockedBuffer
	done   bool
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartNode re-executes the test binary as a helper inside ns. Cleanup
// kills it (by pid) if the test did not close it, and logs its stderr.
func StartNode(t *testing.T, ns string) *Node {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), EnvHelper+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{t: t, NS: ns, cmd: cmd, stdin: stdin, stderr: &lockedBuffer{}}
	cmd.Stderr = n.stderr
	n.enc = json.NewEncoder(stdin)
	n.dec = json.NewDecoder(bufio.NewReader(stdout))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !n.done {
			n.cmd.Process.Signal(syscall.SIGKILL)
			n.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("helper in %s (pid %d) stderr:\n%s", ns, n.cmd.Process.Pid, n.stderr.String())
		}
	})
	return n
}

func (n *Node) call(req request) (response, error) {
	var resp response
	if n.done {
		return resp, errors.New("helper already closed")
	}
	if err := n.enc.Encode(req); err != nil {
		return resp, fmt.Errorf("send %s to helper in %s: %w", req.Op, n.NS, err)
	}
	if err := n.dec.Decode(&resp); err != nil {
		return resp, fmt.Errorf("read %s reply from helper in %s: %w\nstderr:\n%s", req.Op, n.NS, err, n.stderr.String())
	}
	if resp.Err != "" {
		return resp, errors.New(resp.Err)
	}
	return resp, nil
}

// Setup constructs the backend (first call) and runs Setup.
func (n *Node) Setup(cfg Config, local tunnel.Local) (tunnel.Info, error) {
	r, err := n.call(request{Op: "setup", Config: cfg, Local: local})
	return r.Info, err
}

// Apply runs Apply.
func (n *Node) Apply(peers []tunnel.Peer) error {
	_, err := n.call(request{Op: "apply", Peers: peers})
	return err
}

// Stats runs Stats.
func (n *Node) Stats() ([]tunnel.PeerStats, error) {
	r, err := n.call(request{Op: "stats"})
	return r.Stats, err
}

// Close runs Close(remove) and waits for the helper to exit.
func (n *Node) Close(remove bool) error {
	_, err := n.call(request{Op: "close", Remove: remove})
	n.stdin.Close()
	werr := n.cmd.Wait()
	n.done = true
	return errors.Join(err, werr)
}

// Listen starts a TCP echo server on addr inside the node.
func (n *Node) Listen(addr string) error {
	_, err := n.call(request{Op: "listen", Addr: addr})
	return err
}

// Dial connects from src to addr, sends size bytes and checks the echo.
func (n *Node) Dial(src, addr string, size int) error {
	_, err := n.call(request{Op: "dial", Src: src, Addr: addr, Size: size})
	return err
}

// Ping sends one ICMP echo from src to dst (one second timeout).
func (n *Node) Ping(src, dst string) error {
	_, err := n.call(request{Op: "ping", Src: src, Addr: dst})
	return err
}

// Capture records packets on an interface in a namespace with tcpdump.
type Capture struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	stderr *lockedBuffer
}

// StartCapture starts tcpdump on dev in ns and returns once it is
// listening. Cleanup stops it by pid. Immediate mode hands every packet to
// tcpdump as it arrives: with libpcap's default buffering, packets still
// in the kernel buffer when tcpdump is stopped are lost, and a short
// capture can come back empty.
func StartCapture(t *testing.T, ns, dev string) *Capture {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skipf("needs tcpdump: %v", err)
	}
	c := &Capture{out: &lockedBuffer{}, stderr: &lockedBuffer{}}
	c.cmd = exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-nn", "-l", "-U", "-p", "--immediate-mode")
	c.cmd.Stdout = c.out
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop() })
	Eventually(t, 10*time.Second, "tcpdump listening", func() error {
		if strings.Contains(c.stderr.String(), "listening on") {
			return nil
		}
		if c.cmd.ProcessState != nil {
			return fmt.Errorf("tcpdump exited: %s", c.stderr.String())
		}
		return errors.New(c.stderr.String())
	})
	return c
}

// Stop stops tcpdump (SIGINT, so it flushes) and returns the decoded
// packet lines.
func (c *Capture) Stop() []string {
	if c.cmd.ProcessState == nil {
		c.cmd.Process.Signal(syscall.SIGINT)
		c.cmd.Wait()
	}
	var lines []string
	for _, l := range strings.Split(c.out.String(), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// Dump logs addresses, routes and WireGuard state of each namespace; call
// it when a check fails.
func Dump(t *testing.T, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		var b strings.Builder
		for _, args := range [][]string{
			{"ip", "-o", "addr"}, {"ip", "route"}, {"ip", "neigh"}, {"bridge", "fdb", "show"}, {"wg", "show", "all"},
		} {
			out, err := InNS(ns, args[0], args[1:]...)
			fmt.Fprintf(&b, "$ %s\n%s", strings.Join(args, " "), out)
			if err != nil {
				fmt.Fprintf(&b, "(%v)\n", err)
			}
		}
		t.Logf("namespace %s:\n%s", ns, b.String())
	}
}
