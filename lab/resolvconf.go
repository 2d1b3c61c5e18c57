package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Pods of a --kube lab resolve names as pods of a real cluster do: through
// their node's weft DNS proxy, with the Kubernetes search path. `ip netns
// exec` (lab.PodArgv) bind-mounts /etc/netns/<podns>/resolv.conf over
// /etc/resolv.conf, so every command run in a pod sees it.

// Where the agents' DNS proxy answers and what it serves: the agent's
// defaults (agent.DefaultDNSListenAddress, agent.DefaultDNSZone), which
// the lab does not change.
var (
	LabDNSAddr = netip.MustParseAddr("169.254.20.10")
	LabDNSZone = "cluster.local"
)

// etcNetnsDir is where ip-netns looks for a namespace's own /etc files.
const etcNetnsDir = "/etc/netns"

// PodResolvConf is the resolv.conf of a pod in namespace ns, as the
// kubelet writes it for dnsPolicy ClusterFirst.
func PodResolvConf(ns string, nameserver netip.Addr, zone string) []byte {
	var b strings.Builder
	b.WriteString("# written by weft lab: the node's weft DNS proxy, as a kubelet would\n")
	fmt.Fprintf(&b, "nameserver %s\n", nameserver)
	fmt.Fprintf(&b, "search %s.svc.%s svc.%s %s\n", ns, zone, zone, zone)
	b.WriteString("options ndots:5\n")
	return []byte(b.String())
}

// PodResolvConfPath is where the resolv.conf of netns podNS lives.
func PodResolvConfPath(podNS string) string {
	return filepath.Join(etcNetnsDir, podNS, "resolv.conf")
}

// writePodResolvConf gives netns podNS its resolv.conf.
func writePodResolvConf(podNS, namespace string) error {
	p := PodResolvConfPath(podNS)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", filepath.Dir(p), err)
	}
	if err := os.WriteFile(p, PodResolvConf(namespace, LabDNSAddr, LabDNSZone), 0o644); err != nil {
		return fmt.Errorf("failed to write %s: %w", p, err)
	}
	return nil
}

// removeNetnsEtc removes /etc/netns/<ns>, which `ip netns del` leaves.
func removeNetnsEtc(ns string) error {
	if ns == "" || strings.ContainsAny(ns, "/.") {
		return errors.New("removeNetnsEtc: not a namespace name: " + ns)
	}
	if err := os.RemoveAll(filepath.Join(etcNetnsDir, ns)); err != nil {
		return fmt.Errorf("failed to remove %s: %w", filepath.Join(etcNetnsDir, ns), err)
	}
	return nil
}
