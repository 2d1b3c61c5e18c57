package bench

// Pod setup latency: weft-cni ADD and DEL against the reference bridge
// plugin with host-local IPAM (built from the containernetworking/plugins
// version in go.mod), measured in the same run, the same way: the binary
// is executed with the CNI environment and the network configuration on
// stdin, from a thread inside a fresh "node" network namespace, as a
// runtime does; every ADD gets a fresh pod namespace, created before the
// clock starts. Only the plugin process (start to exit) is timed.
//
// Both IPAM stores live under /var/lib/cni, on the disk a real node uses,
// so that fsync costs what it costs in production.
//
// Phases, each run for both plugins, interleaved so that load from
// elsewhere falls on both alike:
//   - sequential: PODS ADDs one after another (weft, reference, weft, …),
//     then PODS DELs the same way;
//   - concurrent: ROUNDS rounds of CONCURRENCY simultaneous ADDs, then as
//     many simultaneous DELs, per plugin (the order alternates by round).
//
// Settings: WEFT_BENCH_PODS (default 100), WEFT_BENCH_CONCURRENCY (50),
// WEFT_BENCH_ROUNDS (3).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/weftnet/weft/nodestate"
)

const (
	benchMTU   = 1440
	weftBlock  = "10.244.7.0/24"
	refSubnet  = "10.245.7.0/24"
	cniVersion = "1.1.0"
)

// plugin is one CNI plugin under test: its binary and configuration.
type plugin struct {
	label string
	bin   string
	conf  []byte
}

type cniEnv struct {
	b      *testing.B
	binDir string
	node   ns.NetNS
	weft   plugin
	ref    plugin
	seq    int
	seqMu  sync.Mutex
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// goBuild builds a package of this module, as make build does.
func goBuild(b *testing.B, out, pkg string) {
	b.Helper()
	cmd := exec.Command(goTool(), "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, o)
	}
}

// goInstallRef builds a reference plugin from the containernetworking/plugins
// version go.mod names, with that module's own dependency set (weft's go.sum
// does not cover the reference plugins' imports), with the same flags.
func goInstallRef(b *testing.B, dir, pkg string) {
	b.Helper()
	const mod = "github.com/containernetworking/plugins"
	v, err := exec.Command(goTool(), "list", "-m", "-f", "{{.Version}}", mod).Output()
	if err != nil {
		b.Fatalf("go list -m %s: %v", mod, err)
	}
	cmd := exec.Command(goTool(), "install", "-trimpath", "-ldflags", "-s -w", pkg+"@"+strings.TrimSpace(string(v)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+dir, "GOFLAGS=")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go install %s: %v\n%s", pkg, err, o)
	}
}

func newCNIEnv(b *testing.B) *cniEnv {
	b.Helper()
	e := &cniEnv{b: b, binDir: b.TempDir()}
	// Built as make build builds bin/weft-cni, and the references the same way.
	goBuild(b, filepath.Join(e.binDir, "weft-cni"), "github.com/weftnet/weft/cmd/weft-cni")
	goInstallRef(b, e.binDir, "github.com/containernetworking/plugins/plugins/main/bridge")
	goInstallRef(b, e.binDir, "github.com/containernetworking/plugins/plugins/ipam/host-local")

	var err error
	e.node, err = testutils.NewNS()
	if err != nil {
		b.Fatalf("create node netns: %v", err)
	}
	b.Cleanup(func() { removeNS(e.node) })
	if err := e.node.Do(func(ns.NetNS) error {
		// The agent's job on a real node.
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
	}); err != nil {
		b.Fatalf("set up node netns: %v", err)
	}

	// Where the real stores live: /var/lib/cni/weft and
	// /var/lib/cni/networks, here under a directory of our own.
	data, err := os.MkdirTemp("/var/lib/cni", fmt.Sprintf("bench-%d-", os.Getpid()))
	if err != nil {
		if err := os.MkdirAll("/var/lib/cni", 0o755); err != nil {
			b.Fatal(err)
		}
		if data, err = os.MkdirTemp("/var/lib/cni", fmt.Sprintf("bench-%d-", os.Getpid())); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { os.RemoveAll(data) })
	state := filepath.Join(data, "node.json")
	block := netip.MustParsePrefix(weftBlock)
	if err := nodestate.Write(state, nodestate.State{
		Node: "bench", PodCIDR: block, Gateway: nodestate.GatewayFor(block),
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"), MTU: benchMTU,
	}); err != nil {
		b.Fatal(err)
	}
	e.weft = plugin{label: "weft-cni", bin: filepath.Join(e.binDir, "weft-cni"), conf: mustJSON(b, map[string]any{
		"cniVersion": cniVersion, "name": "weft", "type": "weft-cni",
		"stateFile": state, "dataDir": filepath.Join(data, "weft"),
	})}
	e.ref = plugin{label: "bridge+host-local", bin: filepath.Join(e.binDir, "bridge"), conf: mustJSON(b, map[string]any{
		"cniVersion": cniVersion, "name": "ref", "type": "bridge",
		"bridge": fmt.Sprintf("wbbr%d", os.Getpid()%100000), "isGateway": true, "mtu": benchMTU,
		"ipam": map[string]any{
			"type": "host-local", "dataDir": filepath.Join(data, "host-local"),
			"ranges": [][]map[string]string{{{"subnet": refSubnet}}},
		},
	})}
	return e
}

func mustJSON(b *testing.B, v any) []byte {
	b.Helper()
	out, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// removeNS closes and unmounts a namespace made by testutils.NewNS.
func removeNS(n ns.NetNS) {
	_ = n.Close()
	_ = testutils.UnmountNS(n)
}

// pod is one attachment: a container ID and its fresh namespace.
type pod struct {
	id string
	ns ns.NetNS
}

func (e *cniEnv) newPod() pod {
	e.b.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		e.b.Fatalf("create pod netns: %v", err)
	}
	e.seqMu.Lock()
	e.seq++
	id := fmt.Sprintf("bench-%d-%d", os.Getpid(), e.seq)
	e.seqMu.Unlock()
	return pod{id: id, ns: n}
}

// run executes the plugin for cmd on p from a thread in the node netns
// and returns how long the process took.
func (e *cniEnv) run(pl plugin, cmd string, p pod) (time.Duration, error) {
	var d time.Duration
	err := e.node.Do(func(ns.NetNS) error {
		c := exec.Command(pl.bin)
		c.Env = []string{
			"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + p.id, "CNI_NETNS=" + p.ns.Path(),
			"CNI_IFNAME=eth0", "CNI_PATH=" + e.binDir, "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		}
		c.Stdin = bytes.NewReader(pl.conf)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		start := time.Now()
		err := c.Run()
		d = time.Since(start)
		if err != nil {
			return fmt.Errorf("%s %s %s: %v: %s %s", pl.label, cmd, p.id, err, out.String(), errb.String())
		}
		return nil
	})
	return d, err
}

// samples holds latencies per plugin label and operation.
type samples map[string][]time.Duration

func (s samples) add(pl plugin, op string, d time.Duration) {
	s[pl.label+"/"+op] = append(s[pl.label+"/"+op], d)
}

// percentile is the nearest-rank percentile q (0-100) of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*q/100+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (e *cniEnv) sequential(n int, s samples) {
	b := e.b
	pls := []plugin{e.weft, e.ref}
	pods := map[string][]pod{}
	for i := range n {
		for j := range pls {
			pl := pls[(i+j)%2] // alternate which goes first
			p := e.newPod()
			b.Cleanup(func() { removeNS(p.ns) })
			d, err := e.run(pl, "ADD", p)
			if err != nil {
				b.Fatal(err)
			}
			s.add(pl, "ADD", d)
			pods[pl.label] = append(pods[pl.label], p)
		}
	}
	for i := range n {
		for j := range pls {
			pl := pls[(i+j)%2]
			p := pods[pl.label][i]
			d, err := e.run(pl, "DEL", p)
			if err != nil {
				b.Fatal(err)
			}
			s.add(pl, "DEL", d)
			removeNS(p.ns)
		}
	}
}

// burst runs op for every pod at once and records each latency.
func (e *cniEnv) burst(pl plugin, op string, pods []pod, s samples) {
	durs := make([]time.Duration, len(pods))
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, p := range pods {
		wg.Go(func() {
			<-start
			durs[i], errs[i] = e.run(pl, op, p)
		})
	}
	close(start)
	wg.Wait()
	for i := range pods {
		if errs[i] != nil {
			e.b.Fatal(errs[i])
		}
		s.add(pl, op, durs[i])
	}
}

func (e *cniEnv) concurrent(rounds, width int, s samples) {
	for r := range rounds {
		pls := []plugin{e.weft, e.ref}
		if r%2 == 1 {
			pls[0], pls[1] = pls[1], pls[0]
		}
		for _, pl := range pls {
			pods := make([]pod, width)
			for i := range pods {
				pods[i] = e.newPod()
				p := pods[i]
				e.b.Cleanup(func() { removeNS(p.ns) })
			}
			e.burst(pl, "ADD", pods, s)
			e.burst(pl, "DEL", pods, s)
			for _, p := range pods {
				removeNS(p.ns)
			}
		}
	}
}

// BenchmarkPodSetup measures weft-cni ADD and DEL latency (p50, p99),
// sequential and concurrent, against bridge + host-local.
func BenchmarkPodSetup(b *testing.B) {
	requireRoot(b)
	pods := envInt(b, "WEFT_BENCH_PODS", 100)
	width := envInt(b, "WEFT_BENCH_CONCURRENCY", 50)
	rounds := envInt(b, "WEFT_BENCH_ROUNDS", 3)
	e := newCNIEnv(b)

	// Warm the page cache and the bridge (created by the first ADD) so the
	// first sample of either plugin does not pay for one-time work.
	warm := samples{}
	for _, pl := range []plugin{e.weft, e.ref} {
		p := e.newPod()
		b.Cleanup(func() { removeNS(p.ns) })
		for _, op := range []string{"ADD", "DEL"} {
			d, err := e.run(pl, op, p)
			if err != nil {
				b.Fatal(err)
			}
			warm.add(pl, op, d)
		}
	}

	loadBefore := loadavg()
	b.ResetTimer()
	seq, conc := samples{}, samples{}
	for range b.N {
		e.sequential(pods, seq)
		e.concurrent(rounds, width, conc)
	}
	b.StopTimer()
	loadAfter := loadavg()

	fmt.Printf("\npod setup latency: weft-cni vs bridge+host-local (reference), ms; %s\n", machine())
	fmt.Printf("load average before %s, after %s; %s\n", loadBefore, loadAfter, time.Now().UTC().Format("2006-01-02T15:04Z"))
	fmt.Printf("%-22s %-4s %5s %9s %9s %9s %9s %8s %8s\n", "phase", "op", "n", "weft p50", "weft p99", "ref p50", "ref p99", "p50 ×", "p99 ×")
	row := func(phase string, s samples, op string) (float64, float64) {
		w, r := s[e.weft.label+"/"+op], s[e.ref.label+"/"+op]
		w50, w99, r50, r99 := percentile(w, 50), percentile(w, 99), percentile(r, 50), percentile(r, 99)
		fmt.Printf("%-22s %-4s %5d %9.2f %9.2f %9.2f %9.2f %7.2fx %7.2fx\n", phase, op, len(w),
			ms(w50), ms(w99), ms(r50), ms(r99), ms(w50)/ms(r50), ms(w99)/ms(r99))
		return ms(w50), ms(w50) / ms(r50)
	}
	seqAdd, seqRatio := row("sequential", seq, "ADD")
	row("sequential", seq, "DEL")
	cAdd, cRatio := row(fmt.Sprintf("%d-way concurrent", width), conc, "ADD")
	row(fmt.Sprintf("%d-way concurrent", width), conc, "DEL")
	verdict := func(r float64) string {
		if r <= 0.5 {
			return "met"
		}
		return "MISSED"
	}
	fmt.Printf("target: weft p50 ADD <= 0.5x reference: sequential %.2fx %s, concurrent %.2fx %s\n",
		seqRatio, verdict(seqRatio), cRatio, verdict(cRatio))
	b.ReportMetric(seqAdd, "seq-add-p50-ms")
	b.ReportMetric(seqRatio, "seq-add-p50-ratio")
	b.ReportMetric(cAdd, "conc-add-p50-ms")
	b.ReportMetric(cRatio, "conc-add-p50-ratio")
}
