package agent

// The Go runtime's soft memory limit (runtime/debug.SetMemoryLimit).
//
// Why the agent sets one: the embedded wireguard-go device holds heap that
// is allocated but mostly never written — its receive buffers and every
// peer's queues, about 48 MiB at 1,000 peers, of which the process touches
// little. The garbage collector's default goal (GOGC=100) is twice the
// live heap, so the agent's own garbage (a resync reads back every peer
// and route) could grow the heap by as much again before a collection, and
// that garbage is written, so resident: at 1,000 peers the agent sat near
// 100 MiB of anonymous memory where the same device alone needs 29 MiB.
//
// "auto" keeps the headroom small and tied to what the agent does instead:
// after every collection the limit becomes what the runtime holds for live
// data (the heap marked live, stacks, runtime metadata) plus room for
// garbage that the pacer (gcpacer.go) sizes to the allocation rate, so that
// collecting costs about 2% of a CPU: 2 MiB at rest, up to a quarter of the
// live data (at least 16 MiB) when the rate is high; plus the reserve the
// runtime keeps below any limit (limitFor). While the agent is busy
// (busy.go) the limit is lifted and GOGC alone paces the collector, as in a
// standalone wireguard-go, and when the spell ends it comes back and the
// garbage is returned to the OS. Re-deriving it at every cycle,
// not on a timer, means it follows the live data at once, up (peers added,
// packets in flight under load) or down: a limit left below a grown live
// heap would make the collector run back to back (the runtime caps it at
// half the CPU then, which the data plane would feel). GOGC stays as it is,
// so the limit only ever makes collections earlier.

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// MemoryLimit is the memoryLimit setting: "auto" (the zero value), "off",
// or a size.
type MemoryLimit struct {
	Off   bool  // no limit: the collector follows GOGC alone
	Bytes int64 // a fixed limit; 0 (and not Off) is auto
}

// Auto reports whether the limit follows the live data.
func (m MemoryLimit) Auto() bool { return !m.Off && m.Bytes == 0 }

// ParseMemoryLimit reads "auto", "off", or a size as a Kubernetes quantity
// (134217728, 128Mi, 1Gi), at least 16Mi.
func ParseMemoryLimit(s string) (MemoryLimit, error) {
	switch s {
	case "", "auto":
		return MemoryLimit{}, nil
	case "off":
		return MemoryLimit{Off: true}, nil
	}
	q, err := resource.ParseQuantity(s)
	n, ok := q.AsInt64()
	if err != nil || !ok || n <= 0 {
		return MemoryLimit{}, fmt.Errorf("%q is not auto, off or a size such as 128Mi", s)
	}
	if n < 16<<20 {
		return MemoryLimit{}, fmt.Errorf("%q is below 16Mi, too little for the agent", s)
	}
	return MemoryLimit{Bytes: n}, nil
}

// UnmarshalYAML parses the setting.
func (m *MemoryLimit) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := ParseMemoryLimit(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*m = v
	return nil
}

// MarshalYAML writes the setting back.
func (m MemoryLimit) MarshalYAML() (any, error) { return m.String(), nil }

func (m MemoryLimit) String() string {
	switch {
	case m.Off:
		return "off"
	case m.Bytes == 0:
		return "auto"
	case m.Bytes%(1<<20) == 0:
		return strconv.FormatInt(m.Bytes>>20, 10) + "Mi"
	}
	return strconv.FormatInt(m.Bytes, 10)
}

// apply sets the runtime's limit (for auto, from the current live data
// and what p has seen of the collector) and returns it, math.MaxInt64
// meaning none. With auto, a GOMEMLIMIT in the environment (which the
// runtime applied at start) is left alone.
func (m MemoryLimit) apply(p *gcPacer) int64 {
	switch {
	case m.Off:
		debug.SetMemoryLimit(math.MaxInt64)
		return math.MaxInt64
	case m.Bytes > 0:
		debug.SetMemoryLimit(m.Bytes)
		return m.Bytes
	case os.Getenv("GOMEMLIMIT") != "":
		return debug.SetMemoryLimit(-1) // reads it
	}
	live := liveRuntimeBytes()
	l := limitFor(live, p.headroom(time.Now(), readGCCounters(), live))
	debug.SetMemoryLimit(l)
	return l
}

// limitFor is the memory limit at which the runtime's heap goal is room
// above live bytes of live data. The runtime keeps its own reserve below
// any limit (3% of what the limit leaves the heap, at least 1 MiB, for
// pacing error): a limit of live plus room alone left the heap room minus
// that reserve, about nothing at 1,000 peers with room at the 2 MiB floor,
// and the collector then ran back to back at rest, up to 8 times a second.
func limitFor(live, room int64) int64 {
	heap := live + room
	// The runtime takes max(1 MiB, 3%) of what the limit leaves after
	// non-heap memory; reckoned here on live+room, which includes the
	// non-heap part, it comes out a little larger (about 0.2 MiB with a
	// 64 MiB heap), so the heap gets at least the room asked for.
	reserve := max(1<<20, (heap*3+96)/97+1)
	return heap + reserve
}

// afterEachGC calls f after every garbage collection until ctx is done,
// from the runtime's cleanup goroutine (so f must be quick): each cycle
// collects a fresh unreachable object whose cleanup calls f and arms the
// next one.
func afterEachGC(ctx context.Context, f func()) {
	var arm func()
	arm = func() {
		runtime.AddCleanup(new([32]byte), func(struct{}) {
			if ctx.Err() == nil {
				f()
				arm()
			}
		}, struct{}{})
	}
	arm()
}

// settleMemory runs once start-up is done: it hands back the executable's
// pages that start-up touched (releaseStartupPages), and once more
// releaseAgainAfter later, and applies cfg.MemoryLimit, saying what it did;
// with auto, the limit is re-derived after every collection until ctx is
// done.
func (a *Agent) settleMemory(ctx context.Context) {
	a.releasePages("start-up")
	m := a.cfg.MemoryLimit
	g := &memoryGovernor{limit: m}
	go func() {
		t := time.NewTimer(releaseAgainAfter)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
			if !g.isBusy() {
				a.releasePages("settling")
			}
		}
	}()
	l := m.apply(&g.pacer)
	if l == math.MaxInt64 {
		a.log.Info("no Go memory limit", "memoryLimit", m.String())
		return
	}
	a.log.Info("Go memory limit", "memoryLimit", m.String(), "limitMiB", l>>20)
	if m.Auto() && os.Getenv("GOMEMLIMIT") == "" {
		afterEachGC(ctx, g.afterGC)
		go g.watch(ctx, a.log, newNetDevCounter("/proc/self/net/dev", a.cfg.Tunnel.Interface).read)
	}
}

// releaseAgainAfter is when the executable's pages are released a second
// time. Start-up is not over when the agent is ready: the first rounds of
// gossip, the first resyncs and WireGuard's retries to peers that do not
// answer yet run code the agent at rest does not. At 1,000 peers the
// executable's resident pages grew back to 12-16 MiB after the first
// release; released again after the agent had settled, they grew back to
// 8.5 MiB and stayed there (docs/benchmarks.md).
const releaseAgainAfter = 15 * time.Second

// releasePages releases the executable's pages (releaseStartupPages) and
// logs what it did; when says after what.
func (a *Agent) releasePages(when string) {
	before, _ := procStatusKiB("RssFile")
	released, err := releaseStartupPages()
	after, _ := procStatusKiB("RssFile")
	if err != nil {
		a.log.Warn("could not release the executable's pages", "after", when, "err", err)
		return
	}
	a.log.Info("released the executable's pages", "after", when, "advisedMiB", released>>20,
		"fileBackedMiB", fmt.Sprintf("%.1f -> %.1f", float64(before)/1024, float64(after)/1024))
}

// releaseStartupPages asks the kernel to reclaim the pages of the agent's
// own executable that are mapped read-only (code, read-only data, the
// function tables) and returns how many bytes it advised.
//
// Why: weft is one binary with Kubernetes' client libraries in it, and
// starting it runs the package initialisers of hundreds of packages spread
// over 36 MiB of code and tables; with the kernel's fault-around each touch
// maps 64 KiB. That left about 28 MiB of the executable resident, where the
// agent at rest runs in a few MiB of it (a standalone wireguard-go process:
// 3 MiB). MADV_PAGEOUT reclaims those pages now, as memory pressure would
// later; the pages the agent does use fault back in from the file (or the
// page cache) on their next touch, so what stays resident is the working
// set. Pages another process also maps are left alone by the kernel.
//
// The same ranges are then marked MADV_RANDOM, which turns the kernel's
// read-around for mapped files (128 KiB around a faulting page) off for
// them, so a page faulting back in does not bring its neighbours into the
// page cache for fault-around (64 KiB) to map. Fault-around still maps
// neighbours that are cached anyway, so the effect varies: 8.4-15.0 MiB of
// the executable resident at rest at 1,000 peers against 14.7-15.7 without
// (docs/benchmarks.md). A path the agent takes rarely pays one small read
// per page the first time.
func releaseStartupPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	var advised int64
	for _, l := range strings.Split(string(maps), "\n") {
		// start-end perms offset dev inode path
		f := strings.Fields(l)
		if len(f) < 6 || f[5] != exe || len(f[1]) < 2 || f[1][1] == 'w' {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT); e != 0 {
			return advised, fmt.Errorf("madvise(MADV_PAGEOUT) %s: %w", f[0], e)
		}
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_RANDOM); e != 0 {
			return advised, fmt.Errorf("madvise(MADV_RANDOM) %s: %w", f[0], e)
		}
		advised += int64(end - start)
	}
	return advised, nil
}

// procStatusKiB reads a "kB" field of /proc/self/status.
func procStatusKiB(field string) (int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// liveRuntimeBytes is what the runtime holds for live data, as the memory
// limit counts it: the heap marked live by the last collection, and all
// that the runtime does not count as room for heap objects (stacks,
// runtime metadata, and the unused ends of the heap's spans).
func liveRuntimeBytes() int64 {
	s := []rtmetrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	rtmetrics.Read(s)
	v := func(i int) int64 {
		if s[i].Value.Kind() != rtmetrics.KindUint64 {
			return 0
		}
		return int64(s[i].Value.Uint64())
	}
	return v(0) + v(1) - v(2) - v(3) - v(4)
}
