package serviceproxy

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/weftnet/weft/internal/nftable"
)

var scaleSeq int

// scaleNetns is a bare namespace for tables that carry no traffic, and a
// connection into it with buffers for large batches.
func scaleNetns(tb testing.TB) *nftables.Conn {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: programs nftables in a network namespace")
	}
	scaleSeq++
	name := fmt.Sprintf("wsvcs%d-%d", os.Getpid()%100000, scaleSeq)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatal(err)
	}
	defer orig.Close()
	h, err := netns.NewNamed(name)
	if err != nil {
		tb.Fatal(err)
	}
	if err := netns.Set(orig); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close(); _ = netns.DeleteNamed(name) })
	conn, err := nftable.NewLargeConn(nftables.WithNetNSFd(int(h)))
	if err != nil {
		tb.Fatal(err)
	}
	return conn
}

// manyServices is n Services of 2 ports with 3 endpoints each, on 3 nodes.
func manyServices(n int) (map[string]Service, map[string][]Slice) {
	svcs, sls := map[string]Service{}, map[string][]Slice{}
	for i := range n {
		s := Service{Namespace: "ns", Name: fmt.Sprintf("svc-%d", i),
			ClusterIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})},
			Ports:      []ServicePort{{Name: "http", Protocol: TCP, Port: 80}, {Name: "dns", Protocol: UDP, Port: 53}}}
		sl := Slice{Namespace: "ns", Name: s.Name + "-x", Service: s.Name,
			Ports: []SlicePort{{Name: "http", Protocol: TCP, Port: 8080}, {Name: "dns", Protocol: UDP, Port: 5353}}}
		for j := range 3 {
			sl.Endpoints = append(sl.Endpoints, Endpoint{Addr: netip.AddrFrom4([4]byte{10, 244, byte(j + 1), byte(i%250 + 2)}),
				Node: fmt.Sprintf("n%d", j+1), Ready: true, Serving: true})
		}
		svcs[s.Key()], sls[s.Key()] = s, []Slice{sl}
	}
	return svcs, sls
}

func planAll(svcs map[string]Service, sls map[string][]Slice) *Plan {
	p := &Plan{Services: make(map[string]*ServicePlan, len(svcs))}
	for k, s := range svcs {
		p.Services[k] = PlanService(testCtx, s, sls[k])
	}
	p.Resolve()
	return p
}

var scale = flag.Bool("services.scale", false, "apply 10,000 Services in a namespace and print the times (make bench)")

// TestServiceTableScale applies 10,000 Services, then one endpoint change,
// and prints how long each took; the incremental batch must touch only the
// changed Service.
func TestServiceTableScale(t *testing.T) {
	if !*scale {
		t.Skip("a measurement: -services.scale runs it (make bench)")
	}
	conn := scaleNetns(t)
	svcs, sls := manyServices(10000)
	a := NewApplier(conn)
	start := time.Now()
	p := planAll(svcs, sls)
	planned := time.Since(start)
	st, err := a.Apply(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10,000 Services (20,000 ports, 60,000 endpoint chains): planned in %s, table written in %s (%s)", planned.Round(time.Millisecond), (time.Since(start) - planned).Round(time.Millisecond), st.Outcome)

	// One endpoint leaves one Service: replan it, apply the difference.
	key := "ns/svc-4242"
	sl := sls[key][0]
	sl.Endpoints = sl.Endpoints[:2]
	start = time.Now()
	next := &Plan{Services: make(map[string]*ServicePlan, len(p.Services))}
	for k, sp := range p.Services {
		next.Services[k] = sp
	}
	next.Services[key] = PlanService(testCtx, svcs[key], []Slice{sl})
	next.Resolve()
	st, err = a.Apply(next)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("one endpoint of one Service removed, among 10,000: applied in %s (%+v)", time.Since(start).Round(time.Microsecond), st)
	if st.Outcome != Incremental || st.ChainsChanged != 2 || st.Chains != 2 || st.ElementsAdded != 0 {
		t.Errorf("the change wrote %+v, want the Service's 2 service chains rewritten and its 2 gone endpoint chains deleted", st)
	}
	if a.Drifted(conn) {
		t.Error("the table reads as drifted right after an apply")
	}
}

// TestServiceTableOddInput applies Services that are valid but unusual:
// SCTP, hundreds of ports, endpoints outside every pod range, a Service
// without ports. Each applies cleanly.
func TestServiceTableOddInput(t *testing.T) {
	conn := scaleNetns(t)
	a := NewApplier(conn)
	many := Service{Namespace: "odd", Name: "ports", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.1.1")}}
	manySl := Slice{Namespace: "odd", Name: "ports-x", Service: "ports", Endpoints: []Endpoint{ready(netip.MustParseAddr("192.0.2.7"), "elsewhere")}}
	for i := range 300 {
		name := fmt.Sprintf("p%d", i)
		many.Ports = append(many.Ports, ServicePort{Name: name, Protocol: TCP, Port: uint16(1 + i), NodePort: uint16(30000 + i%200)})
		manySl.Ports = append(manySl.Ports, SlicePort{Name: name, Protocol: TCP, Port: uint16(1 + i)})
	}
	sctp := Service{Namespace: "odd", Name: "sctp", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.1.2")},
		Ports: []ServicePort{{Name: "s", Protocol: SCTP, Port: 9899, NodePort: 32000}}}
	sctpSl := Slice{Namespace: "odd", Name: "sctp-x", Service: "sctp", Ports: []SlicePort{{Name: "s", Protocol: SCTP, Port: 9899}},
		Endpoints: []Endpoint{ready(ep1, "n1")}}
	none := Service{Namespace: "odd", Name: "noports", ClusterIPs: []netip.Addr{netip.MustParseAddr("10.96.1.3")}}
	p := &Plan{Services: map[string]*ServicePlan{
		many.Key(): PlanService(testCtx, many, []Slice{manySl}),
		sctp.Key(): PlanService(testCtx, sctp, []Slice{sctpSl}),
		none.Key(): PlanService(testCtx, none, nil),
	}}
	p.Resolve()
	if _, err := a.Apply(p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	// A node port of odd/ports claimed again by another Service: left
	// out of the second and said.
	other := sctp
	other.Name, other.ClusterIPs, other.Ports = "zagain", []netip.Addr{netip.MustParseAddr("10.96.1.4")}, []ServicePort{{Name: "s", Protocol: TCP, Port: 80, NodePort: 30005}}
	p.Services[other.Key()] = PlanService(testCtx, other, nil)
	p.Resolve()
	if _, err := a.Apply(p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if len(p.Conflicts) != 1 || !strings.Contains(p.Conflicts[0], "odd/zagain: node port tcp/30005 is odd/ports's") {
		t.Errorf("conflicts %q, want odd/zagain's node port 30005 left to odd/ports", p.Conflicts)
	}
}
