package masquerade

import (
	"bytes"
	"github.com/weftnet/weft/internal/nftable/nftabletest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/weftnet/weft/internal/netnstest"
)

func TestPlanMatchesClusterOnly(t *testing.T) {
	tests := []struct {
		cidr     string
		wantMask []byte
		wantNet  []byte
	}{
		{"10.244.0.0/16", []byte{255, 255, 0, 0}, []byte{10, 244, 0, 0}},
		{"10.244.7.9/16", []byte{255, 255, 0, 0}, []byte{10, 244, 0, 0}}, // host bits masked
		{"172.16.0.0/12", []byte{255, 240, 0, 0}, []byte{172, 16, 0, 0}},
	}
	for _, tc := range tests {
		rs, err := Plan(netip.MustParsePrefix(tc.cidr))
		if err != nil {
			t.Fatalf("Plan(%s): %v", tc.cidr, err)
		}
		if len(rs.Rules) != 1 {
			t.Fatalf("Plan(%s): %d rules, want 1", tc.cidr, len(rs.Rules))
		}
		ex := rs.Rules[0].Exprs
		var cmps []*expr.Cmp
		var masks [][]byte
		for _, e := range ex {
			switch v := e.(type) {
			case *expr.Cmp:
				cmps = append(cmps, v)
			case *expr.Bitwise:
				masks = append(masks, v.Mask)
			}
		}
		if len(cmps) != 2 || cmps[0].Op != expr.CmpOpEq || cmps[1].Op != expr.CmpOpNeq {
			t.Fatalf("Plan(%s): want saddr == cluster and daddr != cluster, got %+v", tc.cidr, cmps)
		}
		for i := range cmps {
			if !bytes.Equal(cmps[i].Data, tc.wantNet) || !bytes.Equal(masks[i], tc.wantMask) {
				t.Errorf("Plan(%s): match %d = %v/%v, want %v/%v", tc.cidr, i, cmps[i].Data, masks[i], tc.wantNet, tc.wantMask)
			}
		}
		if _, ok := ex[len(ex)-1].(*expr.Masq); !ok {
			t.Errorf("Plan(%s): last expression is %T, want masquerade", tc.cidr, ex[len(ex)-1])
		}
	}
}

func TestPlanRejectsBadCIDR(t *testing.T) {
	for _, p := range []netip.Prefix{{}, netip.MustParsePrefix("fd00::/64")} {
		if _, err := Plan(p); err == nil {
			t.Errorf("Plan(%v): want error", p)
		}
	}
}

var _ Conn = (*nftabletest.Recorder)(nil)

func TestApplyIsOneBatch(t *testing.T) {
	rs, _ := Plan(netip.MustParsePrefix("10.244.0.0/16"))
	f := &nftabletest.Recorder{}
	if err := Apply(f, rs); err != nil {
		t.Fatal(err)
	}
	want := "add table weft-nat,del table weft-nat,add table weft-nat,add chain postrouting,add rule postrouting,flush"
	if got := strings.Join(f.Ops, ","); got != want {
		t.Errorf("ops = %s, want %s: one flush", got, want)
	}
}

// namespaceConn puts the test in a fresh network namespace and returns an
// nftables connection there; it skips without root or the nft tool.
func namespaceConn(t *testing.T) *nftables.Conn {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft tool to read the ruleset back")
	}
	ns := netnstest.Enter(t)
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestApplyInNamespace applies the table twice in a fresh network namespace
// and reads it back with nft: the second Apply replaces, never duplicates.
func TestApplyInNamespace(t *testing.T) {
	conn := namespaceConn(t)
	rs, _ := Plan(netip.MustParsePrefix("10.244.0.0/16"))
	for i := 0; i < 2; i++ {
		if err := Apply(conn, rs); err != nil {
			t.Fatalf("Apply #%d: %v", i+1, err)
		}
	}
	if !Current(conn, rs) {
		t.Error("Current = false right after Apply")
	}
	other, _ := Plan(netip.MustParsePrefix("10.96.0.0/12"))
	if Current(conn, other) {
		t.Error("Current = true for a plan with another cluster CIDR")
	}
	out, err := exec.Command("nft", "list", "table", "ip", TableName).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	}
	got := string(out)
	if n := strings.Count(got, "masquerade"); n != 1 {
		t.Errorf("want exactly one masquerade rule after two applies, got %d:\n%s", n, got)
	}
	if !strings.Contains(got, "ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16") {
		t.Errorf("rule does not match cluster-to-outside traffic:\n%s", got)
	}
	// A rule deleted by hand makes the table stale.
	if out, err := exec.Command("nft", "flush", "chain", "ip", TableName, "postrouting").CombinedOutput(); err != nil {
		t.Fatalf("nft flush: %v %s", err, out)
	}
	if Current(conn, rs) {
		t.Error("Current = true after the rule was flushed by hand")
	}
	if err := Remove(conn); err != nil {
		t.Fatal(err)
	}
	if Current(conn, rs) {
		t.Error("Current = true with no table")
	}
	if err := Remove(conn); err != nil {
		t.Fatalf("second Remove must be a no-op: %v", err)
	}
}

// TestExemptInNamespace: traffic to a peered cluster's network returns
// before the masquerade rule, and a change of exemptions is not current.
func TestExemptInNamespace(t *testing.T) {
	conn := namespaceConn(t)
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	rs, err := Plan(cluster, netip.MustParsePrefix("10.245.0.0/16"), netip.MustParsePrefix("10.97.0.0/16"), netip.MustParsePrefix("fd00::/64"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(conn, rs); err != nil {
		t.Fatal(err)
	}
	if !Current(conn, rs) {
		t.Error("Current = false right after Apply")
	}
	plain, _ := Plan(cluster)
	if Current(conn, plain) {
		t.Error("Current = true for the plan without exemptions")
	}
	out, err := exec.Command("nft", "list", "table", "ip", TableName).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{"ip saddr 10.244.0.0/16 ip daddr 10.245.0.0/16 return", "ip saddr 10.244.0.0/16 ip daddr 10.97.0.0/16 return"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q:\n%s", want, got)
		}
	}
	if strings.Index(got, "return") > strings.Index(got, "masquerade") {
		t.Errorf("exemptions come after the masquerade rule:\n%s", got)
	}
}
