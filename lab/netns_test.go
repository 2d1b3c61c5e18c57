package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// rootLab returns a handle on a fresh lab with a name unique to this test
// process, state under a temporary root, and a cleanup that takes it down
// and checks nothing of it is left.
func rootLab(t *testing.T, suffix string, o Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "unshare", "ping", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	if o.Root == "" {
		o.Root = t.TempDir()
	}
	lb, err := New("wlt"+strconv.Itoa(os.Getpid())+suffix, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lb.Down(context.Background()); err != nil {
			t.Errorf("down: %v", err)
		}
		nss, _ := Namespaces(lb.Layout().Prefix())
		for _, ns := range nss {
			if Owned(context.Background(), ExecRunner{}, lb.Layout(), ns) {
				t.Errorf("namespace %s left after down", ns)
			}
		}
	})
	return lb
}

func inNS(t *testing.T, ns string, argv ...string) (string, error) {
	t.Helper()
	out, err := ExecRunner{}.Run(context.Background(), append([]string{"ip", "netns", "exec", ns}, argv...)...)
	return string(out), err
}

// TestUnderlay builds the underlay and two nodes without agents and checks
// that full-size packets (with DF set) cross the bridge between nodes and
// to the internet, and that one byte more does not.
func TestUnderlay(t *testing.T) {
	const mtu = 1380
	lb := rootLab(t, "u", Options{})
	l := lb.Layout()
	ctx := context.Background()
	r := ExecRunner{}
	// State first, as Up does, so that Down finds everything by name.
	if err := os.MkdirAll(l.Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CreateUnderlay(ctx, r, l, mtu); err != nil {
		t.Fatal(err)
	}
	nodes, err := l.PlanNodes(2)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := CreateNode(ctx, r, l, n, mtu); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{nodes[0].NetNS, nodes[1].NetNS, l.InetNS()} {
		out, err := r.Run(ctx, "ip", "-n", ns, "-o", "link", "show", "eth0")
		if err != nil || !strings.Contains(string(out), fmt.Sprintf(" mtu %d ", mtu)) {
			t.Errorf("%s eth0: %v %s; want mtu %d", ns, err, out, mtu)
		}
	}
	if out, err := inNS(t, nodes[0].NetNS, "sysctl", "-n", "net.ipv4.ip_forward"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("node forwarding: %q %v", out, err)
	}
	full := strconv.Itoa(mtu - 28) // IPv4 + ICMP headers
	over := strconv.Itoa(mtu - 27)
	for _, c := range []struct{ from, to string }{
		{nodes[0].NetNS, nodes[1].UnderlayIP.String()},
		{nodes[1].NetNS, nodes[0].UnderlayIP.String()},
		{nodes[0].NetNS, InetAddr.String()},
		{nodes[1].NetNS, WorldAddr.String()},
	} {
		if out, err := inNS(t, c.from, "ping", "-c1", "-W2", "-M", "do", "-s", full, c.to); err != nil {
			t.Errorf("%s -> %s with %s bytes: %v\n%s", c.from, c.to, full, err, out)
		}
		if _, err := inNS(t, c.from, "ping", "-c1", "-W1", "-M", "do", "-s", over, c.to); err == nil {
			t.Errorf("%s -> %s: %s bytes with DF crossed an MTU %d underlay", c.from, c.to, over, mtu)
		}
	}
	// The host saw none of it.
	if out, _ := r.Run(ctx, "ip", "-o", "link", "show"); strings.Contains(string(out), "vinet") || strings.Contains(string(out), l.Name) {
		t.Errorf("a lab interface appeared in the host namespace:\n%s", out)
	}
}

// TestDownWithoutState removes namespaces with the lab's prefix even when
// state.json is gone (a crash or a lost state directory), and leaves other
// labs' namespaces alone.
func TestDownWithoutState(t *testing.T) {
	lb := rootLab(t, "d", Options{})
	other := rootLab(t, "d0", Options{Root: lb.opts.Root})
	ctx := context.Background()
	r := ExecRunner{}
	for _, c := range []struct {
		l  Layout
		ns string
	}{
		{lb.Layout(), lb.Layout().NodeNS("n1")},
		{lb.Layout(), lb.Layout().PodNS("n1", "p1")},
		{other.Layout(), other.Layout().NodeNS("n1")},
	} {
		if err := runAll(ctx, r, PodNSCmds(c.l, c.ns)); err != nil {
			t.Fatal(err)
		}
	}
	// Someone else's namespace that only shares the prefix.
	foreign := lb.Layout().Prefix() + "test-x"
	if _, err := r.Run(ctx, "ip", "netns", "add", foreign); err != nil {
		t.Fatal(err)
	}
	defer DeleteNS(ctx, r, foreign)
	if err := lb.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if nss, _ := Namespaces(lb.Layout().Prefix()); !slices.Equal(nss, []string{foreign}) {
		t.Errorf("after down: %v; want only the foreign %s", nss, foreign)
	}
	if nss, _ := Namespaces(other.Layout().Prefix()); len(nss) != 1 {
		t.Errorf("down of %s touched lab %s: its namespaces are now %v", lb.Layout().Name, other.Layout().Name, nss)
	}
	if err := lb.Down(ctx); err != nil {
		t.Errorf("second down: %v", err)
	}
	if _, err := os.Lstat(NetNSPath(foreign)); err != nil {
		t.Errorf("down deleted the foreign %s", foreign)
	}
}
