package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestPartitionKube cuts n1 off from n2 and n3 in a --kube lab, where
// leases are the podCIDRs Kubernetes assigned and seeds come from the
// Node objects. The control plane stays reachable from both sides, so the
// node-local DNS proxies must keep answering, including for a Service
// created during the cut; after the heal pods talk again, and no sample
// routes a block to two peers or to anyone but its holder.
func TestPartitionKube(t *testing.T) {
	c, _ := newKubeCluster(t, "--nodes", "3")
	c.mustWeft("lab", "pod", "add", "n1", "p1", "--name", c.name, "--labels", "app=web")
	c.mustWeft("lab", "pod", "add", "n2", "p2", "--name", c.name, "--labels", "app=web")
	pods := c.pods()
	servers := startPodServers(t, pods)
	defer closeAll(servers)
	checkPodMatrix(t, pods, 30*time.Second)
	apply := func(name string) {
		f := filepath.Join(t.TempDir(), name+".yaml")
		doc := fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n", name)
		if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		c.mustWeft("lab", "apply", "--name", c.name, "-f", f)
	}
	answers := func(p labPod, svc string) error {
		r, err := askFrom(p.NSPath(), "udp", proxyAddr, svc+".default.svc.cluster.local.", dns.TypeA, nil)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
			return fmt.Errorf("%s from %s: rcode %s, %d answers", svc, p.Node, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
		return nil
	}
	apply("web")
	askers := pods
	eventually(t, 20*time.Second, "web resolves on every node", func() error {
		for _, p := range askers {
			if err := answers(p, "web"); err != nil {
				return err
			}
		}
		return nil
	})
	leases := c.leases("n1", "n2", "n3")
	s := c.sampleRoutes([]string{"n1", "n2", "n3"})

	cut := time.Now()
	c.partition([]string{"n1"}, []string{"n2", "n3"}, "all")
	c.waitPeers(t, 20*time.Second, "cut seen", map[string][]string{"n1": nil, "n2": {"n3"}, "n3": {"n2"}})
	detected := time.Since(cut)
	for _, p := range askers {
		if err := answers(p, "web"); err != nil {
			t.Errorf("during the cut: %v", err)
		}
	}
	apply("late")
	late := eventually(t, 20*time.Second, "a Service created during the cut resolves on both sides", func() error {
		for _, p := range askers {
			if err := answers(p, "late"); err != nil {
				return err
			}
		}
		return nil
	})

	healAt := time.Now()
	c.heal()
	all := map[string][]string{"n1": {"n2", "n3"}, "n2": {"n1", "n3"}, "n3": {"n1", "n2"}}
	c.waitPeers(t, 60*time.Second, "healed", all)
	healed := time.Since(healAt)
	traffic := eventually(t, 30*time.Second, "pods talk across the healed cut", func() error { return reachAll(pods, pods, time.Second) })
	samples, bad, split := s.stop()
	t.Logf("--kube: cut seen %.1fs after it was made; a Service created during the cut resolved on both sides %.1fs after its apply; peers back %.1fs and pod traffic %.1fs after the heal; %d route samples, %d bad, %d split",
		detected.Seconds(), late.Seconds(), healed.Seconds(), (healed + traffic).Seconds(), samples, len(bad), len(split))
	for _, e := range slices.Concat(bad, split)[:min(len(bad)+len(split), 10)] {
		t.Error(e)
	}
	if after := c.leases("n1", "n2", "n3"); fmt.Sprint(after) != fmt.Sprint(leases) {
		t.Errorf("leases moved: %v -> %v", leases, after)
	}
}
