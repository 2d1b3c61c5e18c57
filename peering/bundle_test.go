package peering

import (
	"reflect"
	"strings"
	"testing"
)

func TestBundleRoundTrip(t *testing.T) {
	b := Bundle{Name: "west", ID: "west-1", PodCIDRs: []string{"10.245.0.0/16"}, ServiceCIDRs: []string{"10.97.0.0/16"},
		Gateways: []Gateway{{Node: "gw-1", Endpoint: "192.0.2.10:51821", PublicKey: keyW1.String()}}}
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "\n  - node: gw-1\n    endpoint: 192.0.2.10:51821\n") {
		t.Errorf("not indented by two:\n%s", out)
	}
	if strings.Contains(string(out), "zone") {
		t.Errorf("empty zone written:\n%s", out)
	}
	got, err := ParseBundle(out)
	if err != nil || !reflect.DeepEqual(got, b) {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, b)
	}
	if _, err := ParseBundle([]byte("name: x\nendpoints: []\n")); err == nil || !strings.Contains(err.Error(), "endpoints (line 2)") {
		t.Errorf("unknown field: %v", err)
	}
}
