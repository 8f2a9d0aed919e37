package whatif

import (
	"container/list"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// CacheStats counts what the what-if cache answered. A hit costs nothing on
// the database; a miss is one evaluation.
type CacheStats struct {
	Hits    uint64
	Misses  uint64
	Entries int
}

// cacheEntry is a remembered answer: a cost or size, or the error that
// makes the statement not evaluable.
type cacheEntry struct {
	key   string
	value float64
	err   error
}

// cache is a bounded LRU map shared by the sessions of one Engine.
type cache struct {
	mu      sync.Mutex
	max     int
	order   *list.List
	entries map[string]*list.Element
	hits    atomic.Uint64
	misses  atomic.Uint64
}

func newCache(max int) *cache {
	return &cache{max: max, order: list.New(), entries: map[string]*list.Element{}}
}

// get returns the entry of the first key present, counting one hit, or
// counts one miss.
func (c *cache) get(keys ...string) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, key := range keys {
		if el, ok := c.entries[key]; ok {
			c.hits.Add(1)
			c.order.MoveToFront(el)
			return el.Value.(cacheEntry), true
		}
	}
	c.misses.Add(1)
	return cacheEntry{}, false
}

func (c *cache) put(e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[e.key]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	c.entries[e.key] = c.order.PushFront(e)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(cacheEntry).key)
	}
}

func (c *cache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order.Init()
	c.entries = map[string]*list.Element{}
}

func (c *cache) stats() CacheStats {
	c.mu.Lock()
	n := c.order.Len()
	c.mu.Unlock()
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: n}
}

// Cache keys. Every part is length-prefixed so that no statement text or
// index key can run into the next part.
const (
	kindCost         = "c"
	kindNotEvaluable = "n"
	kindSize         = "s"
)

func part(b *strings.Builder, s string) {
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteByte(':')
	b.WriteString(s)
}

// costKey is (kind, statement identity, sorted index keys). keys must
// already be sorted and free of duplicates.
func costKey(kind, stmt string, keys []string) string {
	var b strings.Builder
	b.WriteString(kind)
	part(&b, stmt)
	for _, k := range keys {
		part(&b, k)
	}
	return b.String()
}

// sortedUnique sorts keys and drops duplicates in place.
func sortedUnique(keys []string) []string {
	sort.Strings(keys)
	out := keys[:0]
	for _, k := range keys {
		if len(out) == 0 || k != out[len(out)-1] {
			out = append(out, k)
		}
	}
	return out
}
