package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/weftnet/weft/lab/probe"
)

// checkPort is where `check` listens in every pod (TCP and UDP).
const checkPort = 7077

// CheckResult is one probe between two pods.
type CheckResult struct {
	From, To string // node/pod
	Proto    string // icmp, tcp or udp
	// Err is nil when the probe got through and, for TCP and UDP, the
	// receiver saw the sender's own pod address (no NAT between pods).
	Err error
}

// Check probes, for every ordered pair of pods on different nodes, ping,
// TCP and UDP, and reports each result. It fails when the lab has fewer
// than two nodes with pods.
func (lb *Lab) Check(ctx context.Context) ([]CheckResult, error) {
	st, err := loadState(lb.layout)
	if err != nil {
		return nil, err
	}
	var servers []*probe.Server
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	for _, p := range st.Pods {
		s, err := probe.Serve(NetNSPath(p.NetNS), netip.AddrPortFrom(p.IP, checkPort))
		if err != nil {
			return nil, fmt.Errorf("pod %s/%s: %w", p.Node, p.Name, err)
		}
		servers = append(servers, s)
	}
	var out []CheckResult
	for _, a := range st.Pods {
		for _, b := range st.Pods {
			if a.Node == b.Node {
				continue
			}
			from, to := a.Node+"/"+a.Name, b.Node+"/"+b.Name
			_, err := lb.opts.Runner.Run(ctx, PodArgv(a.NetNS, []string{"ping", "-c1", "-W2", "-q", b.IP.String()})...)
			out = append(out, CheckResult{from, to, "icmp", err})
			target := netip.AddrPortFrom(b.IP, checkPort)
			for _, proto := range []string{"tcp", "udp"} {
				pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				var seen netip.AddrPort
				if proto == "tcp" {
					seen, err = probe.TCP(pctx, NetNSPath(a.NetNS), target)
				} else {
					seen, err = probe.UDP(pctx, NetNSPath(a.NetNS), target)
				}
				cancel()
				if err == nil && seen.Addr() != a.IP {
					err = fmt.Errorf("%s arrived from %s, not from the pod's %s", proto, seen.Addr(), a.IP)
				}
				out = append(out, CheckResult{from, to, proto, err})
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("check needs pods on at least two nodes (weft lab up --pods-per-node 1, or weft lab pod add)")
	}
	return out, nil
}
