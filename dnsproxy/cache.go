package dnsproxy

import (
	"container/list"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// CacheConfig configures the cache in front of the forwarder.
type CacheConfig struct {
	// Size is the most answers held; the least recently used goes first.
	// Default 10000.
	Size int
	// MaxTTL caps how long a positive answer is kept. Default 1h.
	MaxTTL time.Duration
	// MaxNegativeTTL caps how long NXDOMAIN and NODATA are kept (their
	// SOA's minimum otherwise, RFC 2308). Default 5m.
	MaxNegativeTTL time.Duration
	// ServeStale, when positive, is how long past its expiry an answer
	// may still be served if every upstream fails (RFC 8767), with a TTL
	// of 30s. Default 0: off.
	ServeStale time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	// Generation, when set, versions the data behind the answers (the
	// cluster zone's records): an answer stored under another generation
	// is a miss, so a change shows at once, whatever the TTL.
	Generation func() uint64
	// AuthoritativeOnly makes the cache in front of the cluster zone: it
	// stores only authoritative answers (the zone's own), passes every
	// other query through, never leaves the UDP fast path on a miss (the
	// zone answers without waiting), and counts nothing in the metrics
	// (the forwarder's cache does). It also shuffles the address records
	// of every answer it serves, as the zones do (shuffle.go), so a
	// cached answer does not freeze one order.
	AuthoritativeOnly bool
}

// staleTTL is the TTL of a stale answer (RFC 8767 suggests 30s).
const staleTTL = 30

type cacheKey struct {
	name   string // lower case
	qtype  uint16
	qclass uint16
	do, cd bool
}

type cacheEntry struct {
	key     cacheKey
	gen     uint64   // CacheConfig.Generation when stored
	msg     *dns.Msg // without OPT; owner names as first asked
	stored  time.Time
	expires time.Time
	shuffle bool // each hit shuffles the answer's address run (AuthoritativeOnly)

	wire     *wireAnswer  // msg for the wire path (cachewire.go); nil: slow path only
	promoted atomic.Int64 // when last moved to the LRU's front (UnixNano)
}

// Cache answers from the answers next gave before, for as long as their
// TTLs allow, and stores what next answers. It wraps next's writer
// (recorder) to see the answer.
type Cache struct {
	cfg       CacheConfig
	realClock bool // cfg.Now is time.Now (the wire path may pass the time in)
	next      Handler
	metrics   *Metrics

	mu    sync.RWMutex // guards lru and items
	lru   *list.List   // of *cacheEntry, most recently used first (within promoteEvery)
	items map[cacheKey]*list.Element
}

// promoteEvery is how often a hit moves its entry to the front of the
// LRU. Hits look up under the read lock, so readers on several CPUs do
// not queue for one mutex; an entry used all the time takes the write
// lock about once per promoteEvery, not on every hit.
const promoteEvery = time.Second

// NewCache makes a cache in front of next.
func NewCache(cfg CacheConfig, next Handler, m *Metrics) *Cache {
	if cfg.Size <= 0 {
		cfg.Size = 10000
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = time.Hour
	}
	if cfg.MaxNegativeTTL <= 0 {
		cfg.MaxNegativeTTL = 5 * time.Minute
	}
	realClock := cfg.Now == nil
	if realClock {
		cfg.Now = time.Now
	}
	return &Cache{cfg: cfg, realClock: realClock, next: next, metrics: m, lru: list.New(), items: map[cacheKey]*list.Element{}}
}

func keyOf(r *dns.Msg) cacheKey {
	q := r.Question[0]
	k := cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, qclass: q.Qclass, cd: r.CheckingDisabled}
	if o := r.IsEdns0(); o != nil {
		k.do = o.Do()
	}
	return k
}

// ServeDNS answers from the cache or asks next.
func (c *Cache) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) {
	key := keyOf(r)
	now := c.cfg.Now()
	var gen uint64
	if c.cfg.Generation != nil {
		gen = c.cfg.Generation() // before next reads the data
	}
	e := c.get(key, now)
	if e != nil && now.Before(e.expires) && e.gen == gen {
		if !c.cfg.AuthoritativeOnly {
			c.metrics.cacheHit()
		}
		_ = w.WriteMsg(e.answer(r, now, 0))
		return
	}
	if c.cfg.AuthoritativeOnly {
		c.passAuthoritative(ctx, w, r, key, gen, now)
		return
	}
	if d := deferIO(ctx); d != nil {
		d.deferred = true // a miss needs the upstreams: not on the fast path
		return
	}
	c.metrics.cacheMiss()
	resp := record(ctx, c.next, w, r)
	if resp == nil {
		reply(w, r, dns.RcodeServerFailure)
		return
	}
	if resp.Rcode == dns.RcodeServerFailure && e != nil && c.cfg.ServeStale > 0 && now.Before(e.expires.Add(c.cfg.ServeStale)) {
		c.metrics.staleServed()
		_ = w.WriteMsg(e.answer(r, now, staleTTL))
		return
	}
	if ttl, ok := c.ttlOf(resp); ok {
		c.put(&cacheEntry{key: key, msg: withoutOPT(resp), stored: now, expires: now.Add(ttl)})
	}
	_ = w.WriteMsg(resp)
}

// passAuthoritative asks next and stores its answer if it is the zone's own.
func (c *Cache) passAuthoritative(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, key cacheKey, gen uint64, now time.Time) {
	resp := record(ctx, c.next, w, r)
	if d := deferIO(ctx); d != nil && d.deferred {
		return // a handler behind us needs the upstreams: answered later
	}
	if resp == nil {
		reply(w, r, dns.RcodeServerFailure)
		return
	}
	if resp.Authoritative {
		if ttl, ok := c.ttlOf(resp); ok {
			c.put(&cacheEntry{key: key, gen: gen, msg: withoutOPT(resp), stored: now, expires: now.Add(ttl)})
		}
	}
	_ = w.WriteMsg(resp)
}

// ttlOf says how long resp may be cached: the smallest TTL of its answer
// for a positive answer, the SOA's negative TTL for NXDOMAIN and NODATA.
// Truncated answers, failures and answers without a TTL are not cached.
func (c *Cache) ttlOf(m *dns.Msg) (time.Duration, bool) {
	if m.Truncated {
		return 0, false
	}
	switch {
	case m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0:
		min := uint32(1<<32 - 1)
		for _, rr := range m.Answer {
			min = minU32(min, rr.Header().Ttl)
		}
		return capTTL(min, c.cfg.MaxTTL)
	case m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				return capTTL(minU32(soa.Hdr.Ttl, soa.Minttl), c.cfg.MaxNegativeTTL)
			}
		}
	}
	return 0, false
}

func capTTL(ttl uint32, max time.Duration) (time.Duration, bool) {
	d := time.Duration(ttl) * time.Second
	if d > max {
		d = max
	}
	return d, d > 0
}

func minU32(a, b uint32) uint32 {
	if a < b {
		return a
	}
	return b
}

func (c *Cache) get(k cacheKey, now time.Time) *cacheEntry {
	c.mu.RLock()
	el, ok := c.items[k]
	var e *cacheEntry
	if ok {
		e = el.Value.(*cacheEntry)
	}
	c.mu.RUnlock()
	if ok {
		c.promote(el, e, now)
	}
	return e
}

// promote moves e (in el) to the LRU's front if it has not been there for
// promoteEvery. The element may have left the list meanwhile (evicted or
// replaced): MoveToFront ignores it then.
func (c *Cache) promote(el *list.Element, e *cacheEntry, now time.Time) {
	t := now.UnixNano()
	if t-e.promoted.Load() < int64(promoteEvery) {
		return
	}
	e.promoted.Store(t)
	c.mu.Lock()
	c.lru.MoveToFront(el)
	c.mu.Unlock()
}

func (c *Cache) put(e *cacheEntry) {
	e.shuffle = c.cfg.AuthoritativeOnly
	e.wire = e.packWire()
	e.promoted.Store(e.stored.UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	c.items[e.key] = c.lru.PushFront(e)
	for c.lru.Len() > c.cfg.Size {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
	if !c.cfg.AuthoritativeOnly {
		c.metrics.cacheSize(c.lru.Len())
	}
}

// Len is how many answers the cache holds.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.lru.Len()
}

// answer is the entry as a reply to r at now: r's id and question (so the
// client's case), TTLs less the time held, or fixed (stale answers).
func (e *cacheEntry) answer(r *dns.Msg, now time.Time, fixedTTL uint32) *dns.Msg {
	m := e.msg.Copy()
	if e.shuffle {
		shuffleAddrs(m.Answer)
	}
	m.Id = r.Id
	m.Question = []dns.Question{r.Question[0]}
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if strings.EqualFold(h.Name, r.Question[0].Name) {
				h.Name = r.Question[0].Name
			}
			switch {
			case fixedTTL > 0:
				h.Ttl = fixedTTL
			case h.Ttl > age:
				h.Ttl -= age
			default:
				h.Ttl = 0
			}
		}
	}
	return m
}

// withoutOPT copies m without its OPT record: the server adds the
// client's own on the way out.
func withoutOPT(m *dns.Msg) *dns.Msg {
	c := m.Copy()
	extra := c.Extra[:0]
	for _, rr := range c.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	c.Extra = extra
	return c
}
