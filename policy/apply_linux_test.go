package policy

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"
	"github.com/weftnet/weft/lab/probe"
	networkingv1 "k8s.io/api/networking/v1"
)

// testNetns makes a named network namespace for one test and returns an
// nftables connection into it.
func testNetns(t testing.TB) (*nftables.Conn, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and programs nftables in it")
	}
	name := fmt.Sprintf("weft-poltest-%d", os.Getpid())
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close(); _ = netns.DeleteNamed(name) })
	conn, err := NewConn(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	return conn, name
}

// nftList is `nft list table` for the failure log, when nft is installed.
func nftList(ns string) string {
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "ip", TableName).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(nft list: %v) %s", err, out)
	}
	return string(out)
}

func TestApplierInNetns(t *testing.T) {
	conn, ns := testNetns(t)
	in := cluster()
	in.Node = "n1"
	in.Policies = []*networkingv1.NetworkPolicy{
		np("x", "from-web", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &all, PodSelector: sel("role", "web")}},
				Ports: []networkingv1.NetworkPolicyPort{tcp(80, 90), udp(53), named("serve", "TCP")}}}}),
		np("y", "out", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: egressOnly,
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{
				CIDR: "0.0.0.0/0", Except: []string{"10.244.0.0/16", "0.0.0.0/8"}}}}}}}),
	}
	a := NewApplier(conn)
	step := func(what string, want Outcome) Ruleset {
		t.Helper()
		rs, err := Compile(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Apply(rs)
		if err != nil {
			t.Fatalf("%s: Apply: %v\n%s", what, err, nftList(ns))
		}
		if got != want {
			t.Errorf("%s: Apply did %s, want %s", what, got, want)
		}
		return rs
	}
	rs := step("first apply", Replaced)
	listing := nftList(ns)
	for _, want := range []string{"hook forward", "ct state established,related accept", "vmap @ingress", "tcp dport 80-90", "counter name"} {
		if !strings.Contains(listing, want) && !strings.Contains(listing, "nft list:") {
			t.Errorf("nft list lacks %q:\n%s", want, listing)
		}
	}
	step("same input again", Unchanged)

	in.Pods[4].Labels = map[string]string{"role": "web"} // y/b 10.244.1.5
	rs2 := step("a peer's label change", Elements)
	set, err := conn.GetSetByName(&nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}, rs2.Sets[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	el, err := conn.GetSetElements(set)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range el {
		if !e.IntervalEnd && string(e.Key) == string([]byte{10, 244, 1, 5}) {
			found = true
		}
	}
	if !found {
		t.Errorf("set %s lacks 10.244.1.5 after the label change: %v\n%s", set.Name, el, nftList(ns))
	}
	if rs.StructureFingerprint() != rs2.StructureFingerprint() {
		t.Error("structure changed with a label")
	}

	// Drift: a hand-flushed set returns after Forget (the resync), a
	// deleted table on the next Apply.
	conn.FlushSet(set)
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	a.Forget()
	step("resync after a hand-flushed set", Elements)
	if el, _ := conn.GetSetElements(set); len(el) == 0 {
		t.Error("the flushed set was not refilled")
	}
	if err := Remove(conn); err != nil {
		t.Fatal(err)
	}
	step("resync after a deleted table", Replaced)

	in.Policies = in.Policies[:1]
	step("a policy deleted", Replaced)

	// A ruleset the kernel refuses leaves the previous table in force.
	bad := rs2
	bad.Chains = append([]Chain(nil), bad.Chains...)
	bad.Chains[0].Rules = append([]Rule{{Policy: "x/bad", Peers: "no-such-set"}}, bad.Chains[0].Rules...)
	before := a.kernelFingerprint(Render(rs2).Table)
	if _, err := a.Apply(bad); err == nil {
		t.Fatal("a rule on a missing set was accepted")
	}
	if after := a.kernelFingerprint(Render(rs2).Table); after != before || after == "" {
		t.Errorf("a failed apply changed the table: fingerprint %q -> %q", before, after)
	}
	if drops, err := a.Drops(); err != nil || len(drops.Chains) == 0 {
		t.Errorf("Drops = %v, %v; want a counter per chain", drops, err)
	}
	if err := Remove(conn); err != nil {
		t.Fatal(err)
	}
	if err := Remove(conn); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if fp := a.kernelFingerprint(Render(rs2).Table); fp != "" {
		t.Errorf("table still there after Remove: %q", fp)
	}
}

// TestApplierLargeRuleset: 1,000 policies over 5,000 pods, half of them on
// this node, so the verdict maps hold thousands of elements (more than one
// netlink attribute can carry) and the batch is megabytes.
func TestApplierLargeRuleset(t *testing.T) {
	conn, ns := testNetns(t)
	rs, err := Compile(scaleInput(1000, 5000, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewApplier(conn).Apply(rs); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	tbl := &nftables.Table{Name: TableName, Family: nftables.TableFamilyIPv4}
	m, err := conn.GetSetByName(tbl, ingressMap)
	if err != nil {
		t.Fatal(err)
	}
	el, err := conn.GetSetElements(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(el) != len(rs.Ingress) || len(rs.Ingress) < 2000 {
		t.Errorf("ingress map has %d elements, want %d (> 2000)\n%.2000s", len(el), len(rs.Ingress), nftList(ns))
	}
}

// TestApplierTraffic sends real packets through the table: two pod
// namespaces (x/a 10.244.1.1 and x/c 10.244.1.3 of cluster()) wired to the
// node namespace by veths, routed ptp-style.
func TestApplierTraffic(t *testing.T) {
	conn, node := testNetns(t)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	pods := map[string]string{"a": "10.244.1.1", "c": "10.244.1.3", "b": "10.244.1.5"} // x/a, x/c, y/b
	for name, ip := range pods {
		ns := node + "-" + name
		run("ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run("ip", "-n", node, "link", "add", "v"+name, "type", "veth", "peer", "name", "eth0", "netns", ns)
		run("ip", "-n", ns, "addr", "add", ip+"/32", "dev", "eth0")
		run("ip", "-n", ns, "link", "set", "lo", "up")
		run("ip", "-n", ns, "link", "set", "eth0", "up")
		run("ip", "-n", ns, "route", "add", "default", "dev", "eth0")
		run("ip", "-n", node, "addr", "add", "169.254.1.1/32", "dev", "v"+name)
		run("ip", "-n", node, "link", "set", "v"+name, "up")
		run("ip", "-n", node, "route", "add", ip+"/32", "dev", "v"+name)
		run("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.conf.v"+name+".proxy_arp=1")
		// Proxy ARP answers after a random delay of up to 0.8s by default.
		run("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.neigh.v"+name+".proxy_delay=0")
	}
	run("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	ping := func() bool {
		return exec.Command("ip", "netns", "exec", node+"-a", "ping", "-c", "1", "-W", "1", pods["c"]).Run() == nil
	}
	// The first ping also resolves neighbours: poll.
	for i := 0; !ping(); i++ {
		if i == 5 {
			t.Fatal("x/a cannot reach x/c before any policy")
		}
	}

	in := cluster()
	in.Node = "n1"
	in.Policies = []*networkingv1.NetworkPolicy{np("x", "deny", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly})}
	a := NewApplier(conn)
	apply := func(want Outcome) {
		t.Helper()
		rs, err := Compile(in)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := a.Apply(rs); err != nil || got != want {
			t.Fatalf("Apply = %s, %v; want %s", got, err, want)
		}
	}
	apply(Replaced)
	if ping() {
		t.Fatal("x/a reached x/c through a deny-all ingress")
	}
	cDrop := PodDrop{Ingress, netip.MustParseAddr(pods["c"])}
	d, err := a.Drops()
	if err != nil || d.Pods[cDrop] == 0 || d.Total() < d.Pods[cDrop] {
		t.Fatalf("after a dropped ping: %+v, %v; want x/c's drops counted", d, err)
	}
	before := d.Pods[cDrop]

	// Allowing x/a replaces the table; replies pass (x/a is isolated too).
	in.Policies = append(in.Policies, np("x", "from-a", networkingv1.NetworkPolicySpec{PodSelector: all, PolicyTypes: ingressOnly,
		Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{PodSelector: sel("pod", "a")}}}}}))
	apply(Replaced)
	if !ping() {
		t.Fatal("x/a cannot reach x/c once allowed")
	}
	if d, _ := a.Drops(); d.Pods[cDrop] < before || d.Total() < before {
		t.Errorf("drops went back after a replace: %+v, had %d", d, before)
	}

	// A peer's label change updates elements; the per-pod counters stay.
	in.Pods[0].Labels = map[string]string{"pod": "not-a"} // x/a
	apply(Elements)
	if ping() {
		t.Fatal("x/a reached x/c after losing its label")
	}
	d, _ = a.Drops()
	if d.Pods[cDrop] <= before {
		t.Errorf("x/c's drops %d after another dropped ping, had %d", d.Pods[cDrop], before)
	}
	before = d.Pods[cDrop]
	a.Forget()
	apply(Elements)
	if d, _ := a.Drops(); d.Pods[cDrop] != before {
		t.Errorf("a resync changed x/c's drops %d -> %d", before, d.Pods[cDrop])
	}

	// y/b forges x/a's address to get past x/from-a: it does without the
	// source check, and does not with it.
	in.Pods[0].Labels = map[string]string{"pod": "a"}
	run("ip", "-n", node+"-b", "addr", "add", pods["a"]+"/32", "dev", "eth0")
	forged := func() bool {
		t.Helper()
		got, err := udpArrives(node+"-b", node+"-c", netip.MustParseAddrPort(pods["a"]+":4000"), netip.MustParseAddrPort(pods["c"]+":9999"))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	apply(Elements)
	if !forged() {
		t.Fatal("without the source check a forged datagram did not arrive; the test cannot tell")
	}
	in.SourceCheck = netip.MustParsePrefix("10.244.0.0/16")
	apply(Replaced)
	if forged() {
		t.Error("a datagram forged with x/a's address got past x/from-a despite the source check")
	}
	if !ping() {
		t.Error("x/a cannot reach x/c with the source check on")
	}
	if d, _ := a.Drops(); d.Chains[SourceCheckCounter] == 0 {
		t.Errorf("the source check counted nothing: %+v", d)
	}
}

// udpArrives sends a datagram from the namespace from (bound to src) to dst
// and reports whether a listener in namespace to receives it within a
// second.
func udpArrives(from, to string, src, dst netip.AddrPort) (bool, error) {
	var l net.PacketConn
	if err := probe.InNetns("/run/netns/"+to, func() (err error) {
		l, err = net.ListenPacket("udp4", dst.String())
		return err
	}); err != nil {
		return false, err
	}
	defer l.Close()
	var c *net.UDPConn
	if err := probe.InNetns("/run/netns/"+from, func() (err error) {
		c, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		return false, err
	}
	defer c.Close()
	deadline := time.Now().Add(time.Second)
	_ = l.SetReadDeadline(deadline)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		if _, err := c.Write([]byte("forged")); err != nil {
			return false, err
		}
		_ = l.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, from, err := l.ReadFrom(buf); err == nil {
			return from.(*net.UDPAddr).AddrPort().Addr() == src.Addr(), nil
		}
	}
	return false, nil
}
