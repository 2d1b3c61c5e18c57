package serviceproxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/lab/probe"
)

// A node namespace with two pod namespaces behind veths (routed, as weft
// wires pods) and a client namespace on an "underlay" link:
//
//	client 192.168.50.2 ── 192.168.50.1 node ── 10.244.1.2 pod1
//	                                         └── 10.244.1.3 pod2
type testNode struct {
	prefix                 string
	node, pod1, pod2, clnt string // namespace paths
	conn                   *nftables.Conn
}

var (
	nodeAddr   = netip.MustParseAddr("192.168.50.1")
	clientAddr = netip.MustParseAddr("192.168.50.2")
	pod1Addr   = netip.MustParseAddr("10.244.1.2")
	pod2Addr   = netip.MustParseAddr("10.244.1.3")
	gwAddr     = netip.MustParseAddr("10.244.1.1")
	clusterIP  = netip.MustParseAddr("10.96.0.10")
	lbIP       = netip.MustParseAddr("192.168.50.200")
)

func newTestNode(t *testing.T) *testNode {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and programs nftables in them")
	}
	p := fmt.Sprintf("wsvc%d-", os.Getpid()%100000)
	tn := &testNode{prefix: p}
	names := []string{p + "node", p + "pod1", p + "pod2", p + "clnt"}
	for _, n := range names {
		run(t, "ip", "netns", "add", n)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
	}
	tn.node, tn.pod1, tn.pod2, tn.clnt = "/run/netns/"+names[0], "/run/netns/"+names[1], "/run/netns/"+names[2], "/run/netns/"+names[3]
	in := func(ns string, args ...string) { run(t, append([]string{"ip", "netns", "exec", ns}, args...)...) }
	in(names[0], "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for i, pod := range []struct {
		ns   string
		addr netip.Addr
	}{{names[1], pod1Addr}, {names[2], pod2Addr}} {
		host := fmt.Sprintf("veth%d", i+1)
		run(t, "ip", "-n", names[0], "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", pod.ns)
		run(t, "ip", "-n", names[0], "addr", "add", gwAddr.String()+"/32", "dev", host)
		run(t, "ip", "-n", names[0], "link", "set", host, "up")
		run(t, "ip", "-n", names[0], "route", "add", pod.addr.String()+"/32", "dev", host)
		run(t, "ip", "-n", pod.ns, "addr", "add", pod.addr.String()+"/32", "dev", "eth0")
		run(t, "ip", "-n", pod.ns, "link", "set", "eth0", "up")
		run(t, "ip", "-n", pod.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", pod.ns, "route", "add", gwAddr.String()+"/32", "dev", "eth0")
		run(t, "ip", "-n", pod.ns, "route", "add", "default", "via", gwAddr.String(), "dev", "eth0")
	}
	run(t, "ip", "-n", names[0], "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", names[3])
	run(t, "ip", "-n", names[0], "addr", "add", nodeAddr.String()+"/24", "dev", "eth0")
	run(t, "ip", "-n", names[0], "link", "set", "eth0", "up")
	run(t, "ip", "-n", names[0], "link", "set", "lo", "up")
	run(t, "ip", "-n", names[3], "addr", "add", clientAddr.String()+"/24", "dev", "eth0")
	run(t, "ip", "-n", names[3], "link", "set", "eth0", "up")
	run(t, "ip", "-n", names[3], "route", "add", lbIP.String()+"/32", "via", nodeAddr.String())
	run(t, "ip", "-n", names[3], "route", "add", "10.96.0.0/16", "via", nodeAddr.String())
	// Service addresses are routed nowhere in particular, as on a real node:
	// the default route takes them until DNAT says otherwise.
	run(t, "ip", "-n", names[0], "route", "add", "default", "via", clientAddr.String())
	h, err := netns.GetFromPath(tn.node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if tn.conn, err = nftables.New(nftables.WithNetNSFd(int(h))); err != nil {
		t.Fatal(err)
	}
	return tn
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (tn *testNode) nftList() string {
	out, err := exec.Command("ip", "netns", "exec", tn.prefix+"node", "nft", "list", "table", "ip", TableName).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(nft list: %v) %s", err, out)
	}
	return string(out)
}

func serve(t *testing.T, ns string, ap netip.AddrPort) {
	t.Helper()
	s, err := probe.Serve(ns, ap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
}

func tcp(ns string, to netip.AddrPort) (probe.Answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return probe.TCPAnswer(ctx, ns, to)
}

// spreadOver connects n times and returns the endpoints that answered.
func spreadOver(t *testing.T, ns string, to netip.AddrPort, n int) map[netip.Addr]int {
	t.Helper()
	got := map[netip.Addr]int{}
	for range n {
		a, err := tcp(ns, to)
		if err != nil {
			t.Fatalf("%s from %s: %v", to, ns, err)
		}
		got[a.Server.Addr()]++
	}
	return got
}

func webService() Service {
	return Service{Namespace: "default", Name: "web", ClusterIPs: []netip.Addr{clusterIP},
		LoadBalancerIPs: []netip.Addr{lbIP},
		Ports:           []ServicePort{{Name: "http", Protocol: TCP, Port: 80, NodePort: 30080}}}
}

func webSlice(eps ...netip.Addr) Slice {
	s := Slice{Namespace: "default", Name: "web-1", Service: "web", Ports: []SlicePort{{Name: "http", Protocol: TCP, Port: 8080}}}
	for _, a := range eps {
		s.Endpoints = append(s.Endpoints, Endpoint{Addr: a, Node: "n1", Ready: true, Serving: true})
	}
	return s
}

func TestServiceTableInNetns(t *testing.T) {
	tn := newTestNode(t)
	for _, ns := range []string{tn.pod1, tn.pod2} {
		addr := pod1Addr
		if ns == tn.pod2 {
			addr = pod2Addr
		}
		serve(t, ns, netip.AddrPortFrom(addr, 8080))
	}
	ctx := Context{Node: "n1", ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")}
	a := NewApplier(tn.conn)
	apply := func(want Outcome, svcs ...struct {
		s  Service
		sl []Slice
	}) {
		t.Helper()
		p := &Plan{Services: map[string]*ServicePlan{}}
		for _, x := range svcs {
			p.Services[x.s.Key()] = PlanService(ctx, x.s, x.sl)
		}
		p.Resolve()
		st, err := a.Apply(p)
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, tn.nftList())
		}
		if st.Outcome != want {
			t.Errorf("apply: %s, want %s (%+v)", st.Outcome, want, st)
		}
	}
	type svc = struct {
		s  Service
		sl []Slice
	}
	web := webService()
	vip := netip.AddrPortFrom(clusterIP, 80)
	apply(Replaced, svc{web, []Slice{webSlice(pod1Addr, pod2Addr)}})

	t.Run("cluster IP from a pod spreads over both endpoints, source kept", func(t *testing.T) {
		got := spreadOver(t, tn.pod2, vip, 40)
		if got[pod1Addr] == 0 || got[pod2Addr] == 0 {
			t.Errorf("answers by endpoint %v, want both\n%s", got, tn.nftList())
		}
		a, err := tcp(tn.pod2, vip)
		if err != nil {
			t.Fatal(err)
		}
		want := pod2Addr // itself through its Service (hairpin) is masqueraded
		if a.Server.Addr() == pod2Addr {
			want = gwAddr
		}
		if a.Seen.Addr() != want {
			t.Errorf("%s answered seeing %s, want %s", a.Server, a.Seen, want)
		}
	})
	t.Run("cluster IP from the node itself", func(t *testing.T) {
		if _, err := tcp(tn.node, vip); err != nil {
			t.Fatalf("%v\n%s", err, tn.nftList())
		}
	})
	t.Run("node port and load-balancer address from outside, masqueraded", func(t *testing.T) {
		for _, to := range []netip.AddrPort{netip.AddrPortFrom(nodeAddr, 30080), netip.AddrPortFrom(lbIP, 80)} {
			got := spreadOver(t, tn.clnt, to, 30)
			if got[pod1Addr] == 0 || got[pod2Addr] == 0 {
				t.Errorf("%s: answers by endpoint %v, want both", to, got)
			}
			a, _ := tcp(tn.clnt, to)
			if a.Seen.Addr() != gwAddr {
				t.Errorf("%s: endpoint saw %s, want the node's %s (externalTrafficPolicy Cluster)", to, a.Seen, gwAddr)
			}
		}
	})
	t.Run("a port the Service does not have is refused", func(t *testing.T) {
		_, err := tcp(tn.pod1, netip.AddrPortFrom(clusterIP, 81))
		if err == nil || !strings.Contains(err.Error(), "refused") {
			t.Errorf("got %v, want connection refused", err)
		}
	})
	t.Run("an endpoint going away gets no new connections", func(t *testing.T) {
		apply(Incremental, svc{web, []Slice{webSlice(pod1Addr)}})
		got := spreadOver(t, tn.clnt, netip.AddrPortFrom(nodeAddr, 30080), 20)
		if got[pod2Addr] != 0 {
			t.Errorf("answers by endpoint %v, want only %s", got, pod1Addr)
		}
	})
	t.Run("no endpoints: refused at once", func(t *testing.T) {
		apply(Incremental, svc{web, nil})
		for _, to := range []netip.AddrPort{vip, netip.AddrPortFrom(nodeAddr, 30080), netip.AddrPortFrom(lbIP, 80)} {
			from := tn.pod1
			if to.Addr() != clusterIP {
				from = tn.clnt
			}
			start := time.Now()
			_, err := tcp(from, to)
			if err == nil || !strings.Contains(err.Error(), "refused") {
				t.Errorf("%s: got %v, want connection refused\n%s", to, err, tn.nftList())
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s: refused after %s, want at once", to, d)
			}
		}
	})
	t.Run("session affinity keeps a client on one endpoint", func(t *testing.T) {
		sticky := web
		sticky.Affinity = 30 * time.Second
		apply(Incremental, svc{sticky, []Slice{webSlice(pod1Addr, pod2Addr)}})
		for _, from := range []string{tn.clnt, tn.pod1} {
			to := vip
			if from == tn.clnt {
				to = netip.AddrPortFrom(nodeAddr, 30080)
			}
			got := spreadOver(t, from, to, 20)
			if len(got) != 1 {
				t.Errorf("from %s: answers by endpoint %v, want one", from, got)
			}
		}
	})
	t.Run("externalTrafficPolicy Local keeps the client address", func(t *testing.T) {
		local := web
		local.ExternalLocal = true
		apply(Incremental, svc{local, []Slice{webSlice(pod1Addr, pod2Addr)}})
		a, err := tcp(tn.clnt, netip.AddrPortFrom(lbIP, 80))
		if err != nil {
			t.Fatal(err)
		}
		if a.Seen.Addr() != clientAddr {
			t.Errorf("endpoint saw %s, want the client's %s", a.Seen, clientAddr)
		}
		other := local
		other.Name, other.ClusterIPs, other.LoadBalancerIPs, other.Ports = "remote", []netip.Addr{netip.MustParseAddr("10.96.0.11")}, nil,
			[]ServicePort{{Name: "http", Protocol: TCP, Port: 80, NodePort: 30081}}
		sl := webSlice(pod1Addr)
		sl.Service, sl.Endpoints[0].Node = "remote", "n2"
		apply(Incremental, svc{local, []Slice{webSlice(pod1Addr, pod2Addr)}}, svc{other, []Slice{sl}})
		if _, err := tcp(tn.clnt, netip.AddrPortFrom(nodeAddr, 30081)); err == nil {
			t.Error("a node port with externalTrafficPolicy Local and no endpoint on this node answered")
		}
		if _, err := tcp(tn.pod2, netip.AddrPortFrom(netip.MustParseAddr("10.96.0.11"), 80)); err != nil {
			t.Errorf("its cluster IP from a pod: %v", err)
		}
	})
	t.Run("unchanged plan writes nothing; Forget rewrites the table", func(t *testing.T) {
		local := web
		local.ExternalLocal = true
		p := &Plan{Services: map[string]*ServicePlan{web.Key(): PlanService(ctx, web, []Slice{webSlice(pod1Addr)})}}
		if _, err := a.Apply(p); err != nil {
			t.Fatal(err)
		}
		st, err := a.Apply(p)
		if err != nil || st.Outcome != Unchanged {
			t.Errorf("second apply of the same plan: %+v, %v", st, err)
		}
		a.Forget()
		if st, err := a.Apply(p); err != nil || st.Outcome != Replaced {
			t.Errorf("apply after Forget: %+v, %v", st, err)
		}
		if _, err := tcp(tn.clnt, netip.AddrPortFrom(lbIP, 80)); err != nil {
			t.Errorf("after replace: %v", err)
		}
	})
	t.Run("UDP flows to a gone endpoint are cut, so they move to another", func(t *testing.T) {
		dns := Service{Namespace: "default", Name: "dns", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.0.53")},
			Ports: []ServicePort{{Name: "dns", Protocol: UDP, Port: 53}}}
		sl := func(eps ...netip.Addr) []Slice {
			s := webSlice(eps...)
			s.Service, s.Ports = "dns", []SlicePort{{Name: "dns", Protocol: UDP, Port: 8080}}
			return []Slice{s}
		}
		before := PlanService(ctx, dns, sl(pod1Addr, pod2Addr))
		apply(Incremental, svc{dns, sl(pod1Addr, pod2Addr)})
		var conn net.Conn
		if err := probe.InNetns(tn.clnt, func() error {
			var err error
			conn, err = net.Dial("udp", "10.96.0.53:53")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ask := func() (netip.Addr, error) {
			buf := make([]byte, 200)
			for range 10 {
				conn.Write([]byte("probe"))
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if n, err := conn.Read(buf); err == nil {
					_, at, _ := strings.Cut(strings.TrimSpace(string(buf[:n])), " at ")
					ap, err := netip.ParseAddrPort(at)
					return ap.Addr(), err
				}
			}
			return netip.Addr{}, fmt.Errorf("no answer")
		}
		first, err := ask()
		if err != nil {
			t.Fatalf("%v\n%s", err, tn.nftList())
		}
		other := pod1Addr
		if first == pod1Addr {
			other = pod2Addr
		}
		after := PlanService(ctx, dns, sl(other))
		apply(Incremental, svc{dns, sl(other)})
		var n uint
		if err := probe.InNetns(tn.node, func() error {
			var err error
			n, err = DeleteUDPFlows(goneUDP(before, after))
			return err
		}); err != nil || n == 0 {
			t.Fatalf("deleted %d flows: %v", n, err)
		}
		if got, err := ask(); err != nil || got != other {
			t.Errorf("the flow went on to %s (%v), want %s once %s left", got, err, other, first)
		}
	})
	if err := Remove(tn.conn); err != nil {
		t.Fatal(err)
	}
}
