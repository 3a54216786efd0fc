package block

import (
	"container/list"
	"sync"
)

// Cache is a size-bounded LRU of decoded block metadata: bloom shards and
// opened Parquet footers (with their page index), keyed by object key.
// Objects are immutable, so entries never go stale; a deleted block's
// entries simply age out. Safe for concurrent use. A nil *Cache caches
// nothing.
type Cache struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64
	ll       *list.List // front = most recently used
	items    map[string]*list.Element
	hits     int64
	misses   int64
}

type cacheEntry struct {
	key  string
	val  any
	size int64
}

// CacheStats is a snapshot of a Cache's counters.
type CacheStats struct {
	Items  int
	Bytes  int64
	Hits   int64
	Misses int64
}

// NewCache returns a cache holding at most maxBytes of entries, as
// estimated by each entry's producer.
func NewCache(maxBytes int64) *Cache {
	return &Cache{maxBytes: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *Cache) get(key string) (any, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		c.misses++
		return nil, false
	}
	c.hits++
	c.ll.MoveToFront(el)
	return el.Value.(*cacheEntry).val, true
}

// put stores val under key; values larger than the whole cache are not kept.
func (c *Cache) put(key string, val any, size int64) {
	if c == nil || size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*cacheEntry)
		c.bytes += size - e.size
		e.val, e.size = val, size
		c.ll.MoveToFront(el)
	} else {
		c.items[key] = c.ll.PushFront(&cacheEntry{key: key, val: val, size: size})
		c.bytes += size
	}
	for c.bytes > c.maxBytes {
		el := c.ll.Back()
		e := el.Value.(*cacheEntry)
		c.ll.Remove(el)
		delete(c.items, e.key)
		c.bytes -= e.size
	}
}

// Stats returns the current counters.
func (c *Cache) Stats() CacheStats {
	if c == nil {
		return CacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Items: len(c.items), Bytes: c.bytes, Hits: c.hits, Misses: c.misses}
}
