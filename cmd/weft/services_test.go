package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/weftnet/weft/serviceproxy"
)

func TestPrintServicesStatus(t *testing.T) {
	for _, tc := range []struct {
		st   *serviceproxy.Status
		want []string
	}{
		{nil, nil},
		{&serviceproxy.Status{Proxy: "weft"}, []string{"waiting for the first list"}},
		{&serviceproxy.Status{Proxy: "weft", Synced: true, Services: 3, Endpoints: 7, Chains: 12, LastOutcome: "incremental",
			Problems: []string{"default/x: node port tcp/30080 is default/a's"}, LastError: "boom"},
			[]string{"3 served, 7 endpoints, 12 chains (last update incremental)", "services error: boom", "node port tcp/30080 is default/a's"}},
		{&serviceproxy.Status{Proxy: "kube-proxy (nftables table kube-proxy)"}, []string{"served by kube-proxy (nftables table kube-proxy); weft stands aside"}},
	} {
		var b bytes.Buffer
		printServicesStatus(&b, tc.st)
		if tc.want == nil && b.Len() != 0 {
			t.Errorf("nil status printed %q", b.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%+v printed %q, want %q in it", tc.st, b.String(), w)
			}
		}
	}
}
