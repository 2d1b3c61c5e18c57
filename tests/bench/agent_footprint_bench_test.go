package bench

// Agent footprint: a real `weft agent` (the binary, WireGuard backend with
// its embedded wireguard-go device, gossip with weft's tuning, reconcile
// loop, status socket) in a fresh network namespace, in a gossip cluster of
// MEMBERS-1 other members hosted by the swarm (swarm_test.go). It measures:
//   - programmed: from starting the agent to its status showing every
//     member as a tunnel peer (join, full state exchange, lease, device,
//     peers and routes), checked against the device and the kernel;
//   - at rest: the agent's CPU (utime+stime over a window) and RSS after
//     it settled, and its peak RSS.
//
// Reference, in the same run with the same peers: standalone wireguard-go
// programmed with `wg setconf` and `ip -batch` (as BenchmarkTunnelFootprint
// does): what the tunnel alone costs, without weft around it. Its device is
// up before the peers are set, so every peer is started (two goroutines
// each) as in the agent; the goroutine count printed for it is read from
// its SIGQUIT dump.
//
// Settings: WEFT_BENCH_MEMBERS (default 1000, the agent included),
// WEFT_BENCH_REST (seconds of the window at rest, default 120),
// WEFT_BENCH_BACKEND (wireguard, the default, or vxlan: the agent without
// the WireGuard device, to tell weft's own footprint from the device's;
// no reference then); WEFT_BENCH_HEAPPROFILE=FILE saves the agent's heap
// profile at rest (it turns the agent's heap profiling on, which it ships
// off: that costs it about 1.5 MB).

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/gossip"
)

func BenchmarkAgentFootprint(b *testing.B) {
	requireRoot(b)
	for _, cmd := range []string{"ip", "wg"} {
		if _, err := exec.LookPath(cmd); err != nil {
			b.Skipf("needs %s: %v (make deps)", cmd, err)
		}
	}
	members := envInt(b, "WEFT_BENCH_MEMBERS", 1000)
	backend := os.Getenv("WEFT_BENCH_BACKEND")
	switch backend {
	case "":
		backend = "wireguard"
	case "wireguard", "vxlan":
	default:
		b.Fatalf("WEFT_BENCH_BACKEND must be wireguard or vxlan, not %q", backend)
	}
	rest := time.Duration(envInt(b, "WEFT_BENCH_REST", 120)) * time.Second
	if members < 2 {
		b.Fatalf("WEFT_BENCH_MEMBERS must be at least 2")
	}
	dir := b.TempDir()
	weft := filepath.Join(dir, "weft")
	goBuild(b, weft, "github.com/weftnet/weft/cmd/weft")

	peers, err := syntheticPeers(members - 1)
	if err != nil {
		b.Fatal(err)
	}
	ns := fmt.Sprintf("weft-bench-af-%d", os.Getpid())
	const iface = "wbaf0"
	runCmd(b, "ip", "netns", "add", ns)
	b.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			b.Logf("cleanup: ip netns del %s: %v: %s", ns, err, out)
		}
		os.Remove("/var/run/wireguard/" + iface + ".sock")
	})
	underlay := netip.MustParseAddr("172.31.0.1")
	runCmd(b, "ip", "-n", ns, "link", "set", "lo", "up")
	// A veth pair with both ends here: this kernel may have no dummy driver.
	runCmd(b, "ip", "-n", ns, "link", "add", "uplink", "type", "veth", "peer", "name", "uplink-end")
	runCmd(b, "ip", "-n", ns, "link", "set", "uplink-end", "up")
	runCmd(b, "ip", "-n", ns, "addr", "add", underlay.String()+"/16", "dev", "uplink")
	runCmd(b, "ip", "-n", ns, "link", "set", "uplink", "up")

	keyFile := filepath.Join(dir, "gossip.key")
	if err := gossip.GenerateKeyFile(keyFile); err != nil {
		b.Fatal(err)
	}
	sp := swarmParams{KeyFile: keyFile, Addr: underlay, BasePort: 20000,
		ClusterCIDR: netip.MustParsePrefix("10.0.0.0/8"), Peers: peers}
	swarmStart := time.Now()
	stopSwarm := startSwarm(b, ns, sp)
	defer stopSwarm()
	swarmUp := time.Since(swarmStart)

	// The agent, as the lab runs it, with this cluster's settings.
	socket := filepath.Join(dir, "weft.sock")
	cfg := fmt.Sprintf(`nodeName: bench-agent
clusterID: bench
clusterCIDR: 10.0.0.0/8
underlay: {interface: uplink}
gossip: {port: 7946, seeds: [%s], keyFile: %s, leaseFile: %s}
tunnel: {backend: %s, interface: %s, keyFile: %s}
stateFile: %s
statusSocket: %s
metricsAddress: 127.0.0.1:9464
masquerade: false
`, strings.Join(sp.swarmSeeds(), ", "), keyFile, filepath.Join(dir, "lease.json"), backend, iface,
		filepath.Join(dir, "wg.key"), filepath.Join(dir, "node.json"), socket)
	cfgFile := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(os.TempDir(), "weft-bench-agent.log")) // kept for a look after the run
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	// ip netns exec execs its way down to the agent: the pid is its own.
	ag := exec.Command("ip", "netns", "exec", ns, weft, "agent", "--config", cfgFile)
	ag.Stdout, ag.Stderr = logFile, logFile
	if os.Getenv("WEFT_BENCH_HEAPPROFILE") != "" {
		godebug := "memprofilerate=524288" // the runtime's default rate
		if g := os.Getenv("GODEBUG"); g != "" {
			godebug = g + "," + godebug
		}
		ag.Env = append(os.Environ(), "GODEBUG="+godebug)
	}
	t0 := time.Now()
	if err := ag.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = ag.Process.Signal(syscall.SIGTERM)
		_ = ag.Wait()
	}()
	agentLog := func() string {
		out, _ := os.ReadFile(logFile.Name())
		if len(out) > 3000 {
			out = out[len(out)-3000:]
		}
		return string(out)
	}

	// Programmed: every member is a peer in the agent's status.
	var programmed time.Duration
	deadline := t0.Add(3 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := agent.FetchStatus(ctx, socket)
		cancel()
		if err == nil && st.Ready && len(st.Peers) == len(peers) {
			programmed = time.Since(t0)
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the agent did not program %d peers within 3 minutes (status err %v, peers %d)\n%s",
				len(peers), err, len(st.Peers), agentLog())
		}
		time.Sleep(20 * time.Millisecond) // polling the status socket
	}
	var devPeers int
	if backend == "wireguard" {
		out, err := exec.Command("ip", "netns", "exec", ns, "wg", "show", iface, "peers").Output()
		if err != nil {
			b.Fatalf("wg show: %v", err)
		}
		devPeers = len(strings.Fields(string(out)))
	} else {
		// One forwarding entry per peer VTEP (besides the all-zero
		// flooding entries).
		out, err := exec.Command("bridge", "-n", ns, "fdb", "show", "dev", iface).Output()
		if err != nil {
			b.Fatalf("bridge fdb: %v", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if l != "" && !strings.HasPrefix(l, "00:00:00:00:00:00") {
				devPeers++
			}
		}
	}
	routes, err := exec.Command("ip", "-n", ns, "-4", "route", "show", "dev", iface, "proto", "87").Output()
	if err != nil {
		b.Fatalf("ip route: %v", err)
	}
	kernelRoutes := len(strings.Split(strings.TrimSpace(string(routes)), "\n"))
	if devPeers != len(peers) || kernelRoutes != len(peers) {
		b.Fatalf("device holds %d peers and the kernel %d routes, want %d of each", devPeers, kernelRoutes, len(peers))
	}

	// At rest: let start-up garbage be collected and gossip settle, then
	// measure CPU over the window and RSS at its end.
	time.Sleep(10 * time.Second) // a settling period before the window, not a wait for a condition
	pid := ag.Process.Pid
	cpu0, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	gc0 := agentMetric(ns, "go_gc_duration_seconds_count")
	w0 := time.Now()
	// RSS saws as garbage accumulates and is collected: it is sampled once
	// a second over the window, and the mean is the figure.
	status := fmt.Sprintf("/proc/%d/status", pid)
	var samples, rssSum, anonSum, fileSum, rssMin, rssMax int
	for tick := time.NewTicker(time.Second); time.Since(w0) < rest; <-tick.C { // the measurement window
		rss, err := statusKiB(status, "VmRSS")
		if err != nil {
			b.Fatal(err)
		}
		anon, _ := statusKiB(status, "RssAnon")
		file, _ := statusKiB(status, "RssFile")
		samples++
		rssSum, anonSum, fileSum = rssSum+rss, anonSum+anon, fileSum+file
		if samples == 1 || rss < rssMin {
			rssMin = rss
		}
		rssMax = max(rssMax, rss)
	}
	cpu1, err := procCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	window := time.Since(w0)
	collections := agentMetric(ns, "go_gc_duration_seconds_count") - gc0
	rss, anon, file := rssSum/samples, anonSum/samples, fileSum/samples
	hwm, _ := statusKiB(status, "VmHWM")
	heap := agentMetric(ns, "go_memstats_heap_inuse_bytes")
	if f := os.Getenv("WEFT_BENCH_HEAPPROFILE"); f != "" {
		// The agent's heap at rest, for go tool pprof.
		if out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-s", "--max-time", "10", "-o", f,
			"http://127.0.0.1:9464/debug/pprof/heap").CombinedOutput(); err != nil {
			b.Logf("heap profile: %v: %s", err, out)
		}
	}
	goroutines := agentMetric(ns, "go_goroutines")
	cores := (cpu1 - cpu0).Seconds() / window.Seconds()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	st, err := agent.FetchStatus(ctx, socket)
	cancel()
	if err != nil {
		b.Fatal(err)
	}

	var rr refResult
	var ref *wgGoRef
	if backend == "wireguard" {
		ref = newWGGoRef(b, peers)
	}
	if ref != nil {
		rr = ref.run(b, 1)
	}
	mib := func(kib int) float64 { return float64(kib) / 1024 }
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	ratio := func(a, b float64) string {
		if ref == nil || b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	what := "WireGuard, embedded wireguard-go"
	if backend == "vxlan" {
		what = "VXLAN: no WireGuard device"
	}
	fmt.Printf("\nagent footprint: weft agent (%s) in a gossip cluster of %d members (%d gossip members seen); %s\n",
		what, members, st.Members, machine())
	fmt.Printf("swarm of %d members up in %.1fs; load average %s; %s\n", len(peers), swarmUp.Seconds(), loadavg(), time.Now().UTC().Format("2006-01-02T15:04Z"))
	if ref != nil {
		fmt.Printf("reference: standalone wireguard-go %s with the same %d peers, programmed by wg(8) and ip(8), device up, %d goroutines\n",
			refLabel(ref), len(peers), rr.Goroutines)
	} else {
		fmt.Printf("reference: none (%s backend)\n", backend)
	}
	refMiB := func(kib int) string {
		if ref == nil {
			return "-"
		}
		return fmt.Sprintf("%.1fMiB", mib(kib))
	}
	fmt.Printf("%-46s %10s %10s %7s  %s\n", "metric", "weft", "reference", "ratio", "target")
	fmt.Printf("%-46s %9.2fs %10s %7s  (join, lease, device, peers, routes)\n", "agent start to every peer programmed", programmed.Seconds(), "-", "-")
	fmt.Printf("%-46s %7.1fMiB %10s %7s  < 50MiB %s\n", fmt.Sprintf("RSS at rest (mean of %d samples)", samples), mib(rss), refMiB(rr.RSSKiB), ratio(mib(rss), mib(rr.RSSKiB)), verdict(rss < 50*1024))
	fmt.Printf("%-46s %10s %10s %7s\n", "RSS at rest, least and most", fmt.Sprintf("%.1f-%.1f", mib(rssMin), mib(rssMax)), "-", "-")
	fmt.Printf("%-46s %7.1fMiB %10s %7s\n", "RSS peak (VmHWM)", mib(hwm), refMiB(rr.HWMKiB), ratio(mib(hwm), mib(rr.HWMKiB)))
	fmt.Printf("%-46s %7.1fMiB %10s %7s\n", "RSS anonymous (mean)", mib(anon), refMiB(rr.AnonKiB), ratio(mib(anon), mib(rr.AnonKiB)))
	fmt.Printf("%-46s %7.1fMiB %10s %7s  (the executable's pages)\n", "RSS file-backed (mean)", mib(file), refMiB(rr.FileKiB), ratio(mib(file), mib(rr.FileKiB)))
	fmt.Printf("%-46s %7.1fMiB %10s %7s  (%.0f goroutines)\n", "Go heap in use", heap/(1<<20), "-", "-", goroutines)
	fmt.Printf("%-46s %8.2f%% %10s %7s  (over %.0fs)\n", "CPU at rest (one core = 100%)", 100*cores, "-", "-", window.Seconds())
	fmt.Printf("%-46s %9.0f %10s %7s  (over %.0fs)\n", "garbage collections at rest", collections, "-", "-", window.Seconds())
	fmt.Printf("checked: the device holds %d peers, the kernel %d routes\n", devPeers, kernelRoutes)
	b.ReportMetric(programmed.Seconds(), "programmed-s")
	b.ReportMetric(mib(rss), "rss-MiB")
	b.ReportMetric(100*cores, "cpu-%")
	if ref != nil {
		b.ReportMetric(mib(rr.RSSKiB), "ref-rss-MiB")
	}
}

// startSwarm runs the swarm in ns and waits for it to be ready; the
// returned func stops it.
func startSwarm(b *testing.B, ns string, prm swarmParams) func() {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	pj, err := json.Marshal(prm)
	if err != nil {
		b.Fatal(err)
	}
	// A file, not the environment: a thousand peers exceed the kernel's
	// limit on one environment string.
	pf := filepath.Join(b.TempDir(), "swarm.json")
	if err := os.WriteFile(pf, pj, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envSwarm+"="+pf)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var errb strings.Builder
	cmd.Stderr = io.MultiWriter(&errb, os.Stderr) // progress lines, and errors
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready ") {
				ready <- sc.Text()
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		if !ok {
			stop()
			b.Fatalf("swarm exited before it was ready:\n%s", errb.String())
		}
		b.Logf("swarm: %s", line)
	case <-time.After(10 * time.Minute):
		stop()
		b.Fatalf("swarm not ready after 10 minutes:\n%s", errb.String())
	}
	return stop
}

// agentMetric reads one unlabelled sample from the agent's /metrics in ns
// (0 if it cannot).
func agentMetric(ns, name string) float64 {
	out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-s", "--max-time", "5", "http://127.0.0.1:9464/metrics").Output()
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	return 0
}

// procCPU is a process's user plus system CPU time.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	const hz = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / hz, nil
}
