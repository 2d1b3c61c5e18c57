package memory

// How much garbage the auto limit lets accumulate above the live data
// before the next collection.
//
// A fixed share of the live data is too much at rest: at 1,000 peers most
// of the live heap is the device's buffers and queues, never written, while
// the garbage is written and so resident. The pacer instead gives the
// collector a budget: room for what the agent allocates in the time one
// collection's cost takes out of gcBudget of a CPU. Collections then cost
// at most that budget, and the room is as small as the allocation rate
// allows, never below gcFloor nor above gcCeiling (which it is under load,
// when packets in flight make the rate high).

import (
	rtmetrics "runtime/metrics"
	"sync"
	"time"
)

const (
	gcBudget = 0.02    // of one CPU, spent collecting at rest
	gcFloor  = 2 << 20 // the least room for garbage
)

// gcCeiling is the most room for garbage above live bytes of live data:
// a quarter of it, at least 16 MiB.
func gcCeiling(live int64) int64 { return max(16<<20, live/4) }

// pacer tracks the allocation rate and the cost of a collection from the
// runtime's cumulative counters, read after each collection.
type pacer struct {
	mu   sync.Mutex
	seen bool
	at   time.Time
	last gcCounters
	rate float64 // bytes allocated per second, smoothed
	cost float64 // CPU seconds per collection, smoothed
}

// gcCounters are the runtime's cumulative counters the pacer reads.
type gcCounters struct {
	allocs uint64  // bytes allocated on the heap
	cycles uint64  // completed collections
	cpu    float64 // CPU seconds spent collecting and scavenging (the runtime's estimates)
}

func readGCCounters() gcCounters {
	s := []rtmetrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/scavenge/total:cpu-seconds"},
	}
	rtmetrics.Read(s)
	var c gcCounters
	if s[0].Value.Kind() == rtmetrics.KindUint64 {
		c.allocs = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == rtmetrics.KindUint64 {
		c.cycles = s[1].Value.Uint64()
	}
	// Returning freed pages to the OS is part of the price of a tight
	// limit: the scavenger does more of it the closer the limit is.
	for _, v := range s[2:] {
		if v.Value.Kind() == rtmetrics.KindFloat64 {
			c.cpu += v.Value.Float64()
		}
	}
	return c
}

// headroom takes the counters as read now and returns the room for garbage
// above live bytes of live data. Until it has seen two readings a
// collection apart it returns the ceiling.
func (p *pacer) headroom(now time.Time, c gcCounters, live int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	ceiling := gcCeiling(live)
	if !p.seen {
		p.seen, p.at, p.last = true, now, c
		return ceiling
	}
	dt := now.Sub(p.at).Seconds()
	cycles := c.cycles - p.last.cycles
	if dt <= 0 || cycles == 0 || c.allocs < p.last.allocs || c.cpu < p.last.cpu {
		return p.room(ceiling)
	}
	rate := float64(c.allocs-p.last.allocs) / dt
	cost := (c.cpu - p.last.cpu) / float64(cycles)
	if p.rate == 0 && p.cost == 0 {
		p.rate, p.cost = rate, cost
	} else {
		// Halfway to each new reading: one odd interval moves the room,
		// it does not set it.
		p.rate, p.cost = (p.rate+rate)/2, (p.cost+cost)/2
	}
	p.at, p.last = now, c
	return p.room(ceiling)
}

// rebase makes c, read at now, the reading the next one is measured from,
// keeping the smoothed rate and cost: what was allocated since the last
// reading is not counted.
func (p *pacer) rebase(now time.Time, c gcCounters) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen, p.at, p.last = true, now, c
}

// room is the allocation of cost/gcBudget seconds at the smoothed rate,
// within [gcFloor, ceiling]; with nothing measured yet, the ceiling.
func (p *pacer) room(ceiling int64) int64 {
	if p.rate == 0 && p.cost == 0 {
		return ceiling
	}
	r := p.rate * p.cost / gcBudget
	if r >= float64(ceiling) {
		return ceiling
	}
	return min(max(int64(r), gcFloor), ceiling)
}
