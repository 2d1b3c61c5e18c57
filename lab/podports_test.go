package lab

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParsePorts(t *testing.T) {
	got, err := ParsePorts("http=80, dns=53/udp,s=9/SCTP")
	if err != nil {
		t.Fatal(err)
	}
	want := []PodPort{{"http", 80, "TCP"}, {"dns", 53, "UDP"}, {"s", 9, "SCTP"}}
	if len(got) != len(want) {
		t.Fatalf("ParsePorts = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("ParsePorts[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if got, err := ParsePorts(""); got != nil || err != nil {
		t.Errorf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"80", "http=0", "http=x", "http=80/icmp", "Bad_Name=80", "a=1,a=2", "toolongportname1=1"} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("ParsePorts(%q) accepted", bad)
		} else if !strings.HasPrefix(err.Error(), "ports:") {
			t.Errorf("error does not name the flag: %v", err)
		}
	}
	p := PodObject("l", PodState{Name: "a", Namespace: "x", Ports: got}, netip.Addr{}, time.Unix(0, 0))
	cp := p.Spec.Containers[0].Ports
	if len(cp) != 3 || cp[1].Name != "dns" || cp[1].ContainerPort != 53 || cp[1].Protocol != "UDP" {
		t.Errorf("Pod container ports = %v", cp)
	}
}
