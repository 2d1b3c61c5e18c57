package dnsproxy

import (
	"context"
	"encoding/binary"
	"github.com/weftnet/weft/internal/nftable/nftabletest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/weftnet/weft/internal/netnstest"
)

var _ NftConn = (*nftabletest.Recorder)(nil)

func TestPlanNotrack(t *testing.T) {
	listen := netip.MustParseAddrPort("169.254.20.10:53")
	rs, err := PlanNotrack(listen)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Chains) != 2 || len(rs.Rules) != 6 {
		t.Fatalf("%d chains, %d rules; want 2 and 6", len(rs.Chains), len(rs.Rules))
	}
	for _, c := range rs.Chains {
		if *c.Priority != *nftables.ChainPriorityRaw {
			t.Errorf("chain %s at priority %d, want raw (before conntrack)", c.Name, *c.Priority)
		}
	}
	for _, r := range rs.Rules {
		var cmps [][]byte
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Cmp); ok {
				cmps = append(cmps, c.Data)
			}
		}
		if len(cmps) != 3 || string(cmps[0]) != string([]byte{169, 254, 20, 10}) || binary.BigEndian.Uint16(cmps[2]) != 53 {
			t.Errorf("rule %s matches %v, want the listen address and port 53", r.UserData, cmps)
		}
		if _, ok := r.Exprs[len(r.Exprs)-1].(*expr.Notrack); !ok {
			t.Errorf("rule %s does not end in notrack", r.UserData)
		}
	}
	f := &nftabletest.Recorder{}
	if err := ApplyNotrack(f, rs); err != nil {
		t.Fatal(err)
	}
	want := "add table weft-dns,del table weft-dns,add table weft-dns,add chain prerouting,add chain output," +
		"add rule prerouting,add rule prerouting,add rule output,add rule output,add rule output,add rule output,flush"
	if got := strings.Join(f.Ops, ","); got != want {
		t.Errorf("ops %s, want %s: one flush", got, want)
	}
	if _, err := PlanNotrack(netip.MustParseAddrPort("[fd00::10]:53")); err == nil || !strings.Contains(err.Error(), "listenAddress") {
		t.Errorf("IPv6 listen address: err %v, want one naming listenAddress", err)
	}
}

// TestNodeLocal runs the proxy as the agent does, in a fresh network
// namespace: a dummy interface with 169.254.20.10, port 53 over UDP and
// TCP, the NOTRACK table (its counters prove the queries bypassed
// conntrack), and removal.
func TestNodeLocal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace, an interface and an nftables table")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft tool to read the counters back")
	}
	ns := netnstest.Enter(t)

	listen := netip.MustParseAddrPort("169.254.20.10:53")
	for range 2 {
		if err := EnsureListenLink("weft-dns", listen.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := PlanNotrack(listen)
	if err := ApplyNotrack(conn, rs); err != nil {
		t.Fatal(err)
	}
	if !NotrackCurrent(conn, rs) {
		t.Error("NotrackCurrent = false right after ApplyNotrack")
	}
	zone, _ := NewCluster(ZoneConfig{Zone: "cluster.local"}, testRecords(), HandlerFunc(func(_ context.Context, w dns.ResponseWriter, r *dns.Msg) {
		reply(w, r, dns.RcodeRefused)
	}))
	s := NewServer(ServerConfig{Addr: listen}, zone, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, network := range []string{"udp", "tcp"} {
		m := new(dns.Msg)
		m.SetQuestion("web.default.svc.cluster.local.", dns.TypeA)
		resp, _, err := (&dns.Client{Net: network}).Exchange(m, listen.String())
		if err != nil || len(resp.Answer) != 1 {
			t.Fatalf("%s query to %s: %v %v", network, listen, err, resp)
		}
	}
	out, err := exec.Command("nft", "list", "table", "ip", NotrackTable).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "notrack"); n != 6 {
		t.Errorf("%d NOTRACK rules in the kernel, want 6:\n%s", n, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "notrack") && strings.Contains(line, "packets 0 ") {
			t.Errorf("a NOTRACK rule matched nothing: %s", strings.TrimSpace(line))
		}
	}
	if err := RemoveNotrack(conn); err != nil {
		t.Fatal(err)
	}
	if err := RemoveNotrack(conn); err != nil {
		t.Errorf("second RemoveNotrack: %v", err)
	}
	if err := RemoveListenLink("weft-dns"); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName("weft-dns"); err == nil {
		t.Error("weft-dns still exists after RemoveListenLink")
	}
	if err := RemoveListenLink("weft-dns"); err != nil {
		t.Errorf("second RemoveListenLink: %v", err)
	}
}
