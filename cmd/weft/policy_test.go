package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/weftnet/weft/agent"
)

func TestPrintPolicyStatus(t *testing.T) {
	var b bytes.Buffer
	printPolicyStatus(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no policy addon printed %q", b.String())
	}
	printPolicyStatus(&b, &agent.PolicyStatus{})
	if !strings.Contains(b.String(), "waiting for the first list") {
		t.Errorf("unsynced: %q", b.String())
	}
	b.Reset()
	printStatus(&b, agent.Status{Node: "n1", Policy: &agent.PolicyStatus{Synced: true, Policies: 3, Pods: 7, ClusterPolicies: 9,
		DroppedPackets: 42, TopDrops: []agent.PolicyPodDrops{{Pod: "x/a", Direction: "ingress", Packets: 40}}, LastError: "apply: no (the previous ruleset stays in force)", Problems: []string{"x/p: host network"}}})
	for _, want := range []string{"policy: policies 3, pods 7 enforced (9 policies in the cluster), 42 packets dropped",
		"x/a ingress: 40 dropped", "policy error: apply: no", "policy not enforced exactly: x/p: host network"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("weft status lacks %q:\n%s", want, b.String())
		}
	}
}
