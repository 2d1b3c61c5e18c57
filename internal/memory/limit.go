package memory

// The Go runtime's soft memory limit (runtime/debug.SetMemoryLimit).
//
// "auto" keeps the room for garbage small and tied to what the agent does:
// after every collection the limit becomes what the runtime holds for live
// data (the heap marked live, stacks, runtime metadata) plus room for
// garbage that the pacer (pacer.go) sizes to the allocation rate, plus the
// reserve the runtime keeps below any limit (limitFor). Re-deriving it at
// every collection, not on a timer, makes it follow the live data at once,
// up (peers added, packets in flight) or down: a limit left below a grown
// live heap would make the collector run back to back. GOGC stays in force,
// so the limit only ever makes collections earlier. While the agent is busy
// (busy.go) the limit is lifted.
//
// A GOMEMLIMIT in the environment (the DaemonSet sets it from the
// container's memory limit) is the ceiling of every limit set here: auto,
// a fixed size and a busy spell never raise the limit above it, and off
// leaves it in force.

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Limit is the memoryLimit setting: "auto" (the zero value), "off", or a
// size.
type Limit struct {
	Off   bool  // no limit: the collector follows GOGC alone
	Bytes int64 // a fixed limit; 0 (and not Off) is auto
}

// Auto reports whether the limit follows the live data.
func (m Limit) Auto() bool { return !m.Off && m.Bytes == 0 }

// ParseLimit reads "auto", "off", or a size as a Kubernetes quantity
// (134217728, 128Mi, 1Gi), at least 16Mi.
func ParseLimit(s string) (Limit, error) {
	switch s {
	case "", "auto":
		return Limit{}, nil
	case "off":
		return Limit{Off: true}, nil
	}
	q, err := resource.ParseQuantity(s)
	n, ok := q.AsInt64()
	if err != nil || !ok || n <= 0 {
		return Limit{}, fmt.Errorf("%q is not auto, off or a size such as 128Mi", s)
	}
	if n < 16<<20 {
		return Limit{}, fmt.Errorf("%q is below 16Mi, too little for the agent", s)
	}
	return Limit{Bytes: n}, nil
}

// UnmarshalYAML parses the setting.
func (m *Limit) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := ParseLimit(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*m = v
	return nil
}

// MarshalYAML writes the setting back.
func (m Limit) MarshalYAML() (any, error) { return m.String(), nil }

func (m Limit) String() string {
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

// envLimit is the limit the runtime holds before this package sets one:
// GOMEMLIMIT's, or math.MaxInt64 for none.
func envLimit() int64 { return debug.SetMemoryLimit(-1) }

// apply sets the runtime's limit (for auto, from the current live data and
// what p has seen of the collector), never above ceiling, and returns it,
// math.MaxInt64 meaning none.
func (m Limit) apply(p *pacer, ceiling int64) int64 {
	var l int64
	switch {
	case m.Off:
		l = math.MaxInt64
	case m.Bytes > 0:
		l = m.Bytes
	default:
		live := liveRuntimeBytes()
		l = limitFor(live, p.headroom(time.Now(), readGCCounters(), live))
	}
	l = min(l, ceiling)
	debug.SetMemoryLimit(l)
	return l
}

// limitFor is the memory limit at which the runtime's heap goal is room
// above live bytes of live data. The runtime keeps its own reserve below
// any limit (3% of what the limit leaves the heap, at least 1 MiB, for
// pacing error); without it added back, room at the floor left the heap
// nothing and the collector ran back to back.
func limitFor(live, room int64) int64 {
	heap := live + room
	// Reckoned on live+room, which includes the non-heap part, the reserve
	// comes out a little larger than the runtime's, so the heap gets at
	// least the room asked for.
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
