package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weftnet/weft/nodestate"
)

// readyz fetches http://LabMetricsAddress/readyz from inside netns nsName
// and returns the status code. The socket is created on a thread that has
// entered the namespace, so it belongs to that namespace's loopback.
func readyz(nsName string) (int, error) {
	var code int
	err := ns.WithNetNSPath(NetNSPath(nsName), func(ns.NetNS) error {
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.Dial("tcp", LabMetricsAddress)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := fmt.Fprintf(conn, "GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n", LabMetricsAddress); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		code = resp.StatusCode
		return nil
	})
	return code, err
}

// PeerNames extracts peer node names from `weft status --json`. It accepts
// "peers" as a list of objects carrying "name" (or "node"/"nodeName"), a
// list of strings, or an object keyed by node name.
func PeerNames(statusJSON []byte) ([]string, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(statusJSON, &top); err != nil {
		return nil, fmt.Errorf("failed to parse weft status output: %w", err)
	}
	raw, ok := top["peers"]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var names []string
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err == nil {
		for _, e := range list {
			var s string
			if json.Unmarshal(e, &s) == nil {
				names = append(names, s)
				continue
			}
			var obj map[string]any
			if err := json.Unmarshal(e, &obj); err != nil {
				return nil, fmt.Errorf("weft status: unexpected peer entry %s", e)
			}
			for _, k := range []string{"name", "node", "nodeName"} {
				if s, ok := obj[k].(string); ok && s != "" {
					names = append(names, s)
					break
				}
			}
		}
	} else {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("weft status: \"peers\" is neither a list nor an object")
		}
		for k := range m {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names, nil
}

// readiness is one poll of one node.
type readiness struct {
	ready bool
	why   string // what is missing, when not ready
}

// checkNode polls node n: its state file exists, /readyz answers 200 in its
// netns, and `weft status` lists every name in expect (other than itself)
// as a peer.
func checkNode(ctx context.Context, r Runner, weft string, n NodePlan, expect []string) readiness {
	if _, err := nodestate.Read(n.Paths.StateFile); err != nil {
		return readiness{why: err.Error()}
	}
	code, err := readyz(n.NetNS)
	if err != nil {
		return readiness{why: fmt.Sprintf("/readyz: %v", err)}
	}
	if code != http.StatusOK {
		return readiness{why: fmt.Sprintf("/readyz answered %d", code)}
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := r.Run(sctx, weft, "status", "--json", "--socket", n.Paths.StatusSocket)
	if err != nil {
		return readiness{why: err.Error()}
	}
	peers, err := PeerNames(out)
	if err != nil {
		return readiness{why: err.Error()}
	}
	var missing []string
	for _, e := range expect {
		if e != n.Name && !slices.Contains(peers, e) {
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		return readiness{why: fmt.Sprintf("does not see peers %s yet (sees %v)", strings.Join(missing, ","), peers)}
	}
	return readiness{ready: true}
}

// waitReady polls until every node in check is ready and sees every name
// in expect, or timeout. An agent that exits fails the wait at once, with
// the tail of its log; nil pids (DaemonSet agents, which the kubelets
// restart) skips that check.
func waitReady(ctx context.Context, r Runner, weft string, check []NodePlan, pids map[string]int, expect []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pending := slices.Clone(check)
	last := map[string]string{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var still []NodePlan
		for _, n := range pending {
			if pid := pids[n.Name]; pids != nil && !procAlive(pid) {
				return fmt.Errorf("agent of node %s (pid %d) exited; last lines of %s:\n%s", n.Name, pid, n.Paths.Log, tail(n.Paths.Log, 15))
			}
			if st := checkNode(ctx, r, weft, n, expect); !st.ready {
				last[n.Name] = st.why
				still = append(still, n)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			var b strings.Builder
			for _, n := range pending {
				fmt.Fprintf(&b, "\n  node %s: %s (log %s)", n.Name, last[n.Name], n.Paths.Log)
			}
			return fmt.Errorf("nodes not ready after %s:%s", timeout, b.String())
		case <-tick.C:
		}
	}
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
