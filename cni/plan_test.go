package cni

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/weftnet/weft/cni/ipam"
)

func TestHostVethName(t *testing.T) {
	long := strings.Repeat("f", 64)
	a := ipam.Attachment{ContainerID: long, IfName: "eth0"}
	name := HostVethName(a)
	if len(name) != 15 || !strings.HasPrefix(name, HostVethPrefix) {
		t.Fatalf("HostVethName = %q, want weft + 11 hex (15 chars)", name)
	}
	if HostVethName(a) != name {
		t.Fatal("HostVethName is not deterministic")
	}
	for _, other := range []ipam.Attachment{
		{ContainerID: long, IfName: "eth1"},
		{ContainerID: long + "0", IfName: "eth0"},
		// the separator keeps "ab"+"c" and "a"+"bc" apart
		{ContainerID: long[:63], IfName: "feth0"},
	} {
		if HostVethName(other) == name {
			t.Fatalf("%v and %v share host veth %s", a, other, name)
		}
	}
}

func TestAliasRoundTrip(t *testing.T) {
	p := NewPlan("weft", ipam.Attachment{ContainerID: "abc-1.2_3", IfName: "eth0"}, netip.Addr{}, netip.Addr{}, 0)
	nw, a, ok := parseAlias(p.Alias())
	if !ok || nw != "weft" || a != p.Att {
		t.Fatalf("parseAlias(%q) = %q %v %v", p.Alias(), nw, a, ok)
	}
	for _, bad := range []string{"", "weft-cni/", "weft-cni/n/c", "weft-cni/n//eth0", "other/n/c/eth0", "weft-cni/n/c/e/x"} {
		if _, _, ok := parseAlias(bad); ok {
			t.Errorf("parseAlias(%q) accepted", bad)
		}
	}
}

func TestResult(t *testing.T) {
	p := NewPlan("weft", ipam.Attachment{ContainerID: "c", IfName: "eth0"},
		netip.MustParseAddr("10.244.7.5"), netip.MustParseAddr("10.244.7.1"), 1340)
	host := &current.Interface{Name: p.HostVeth, Mac: "aa:bb:cc:dd:ee:ff"}
	cont := &current.Interface{Name: "eth0", Mac: "aa:bb:cc:dd:ee:00", Sandbox: "/run/netns/p"}
	r := p.Result("1.1.0", host, cont, types.DNS{}, nil)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cniVersion":"1.1.0","interfaces":[{"mac":"aa:bb:cc:dd:ee:ff","name":"` + p.HostVeth + `"},` +
		`{"mac":"aa:bb:cc:dd:ee:00","name":"eth0","sandbox":"/run/netns/p"}],` +
		`"ips":[{"address":"10.244.7.5/32","gateway":"10.244.7.1","interface":1}],` +
		`"routes":[{"dst":"10.244.7.1/32","scope":253},{"dst":"0.0.0.0/0","gw":"10.244.7.1"}]}`
	if string(b) != want {
		t.Fatalf("result\n got %s\nwant %s", b, want)
	}
	ip, err := podIPFromResult(r, "eth0", "/run/netns/p")
	if err != nil || ip != p.PodIP {
		t.Fatalf("podIPFromResult = %v, %v", ip, err)
	}
	if _, err := podIPFromResult(r, "eth0", "/run/netns/other"); err == nil {
		t.Fatal("podIPFromResult accepted another sandbox")
	}

	// Chained after another plugin: its entries first, our indices shifted.
	prev := &current.Result{Interfaces: []*current.Interface{{Name: "x"}}}
	r = p.Result("1.1.0", host, cont, types.DNS{Nameservers: []string{"10.96.0.10"}}, prev)
	if len(r.Interfaces) != 3 || *r.IPs[0].Interface != 2 || r.DNS.Nameservers[0] != "10.96.0.10" {
		t.Fatalf("chained result wrong: %+v", r)
	}
	// Older spec versions still print.
	for _, v := range SupportedVersions.SupportedVersions() {
		if _, err := r.GetAsVersion(v); err != nil {
			t.Errorf("result as %s: %v", v, err)
		}
	}
}
