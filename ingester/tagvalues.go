package ingester

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/rubatodb/rubato/pkg/search"
)

// Tag names and values of WAL-held parts. Grafana's autocompletion asks
// the names and the values of the same few tags again and again; reading
// (or decoding) every WAL part for each call made one call cost as much as
// the WAL holds (450 MB read and scanned for a million spans).
// tagValueCache keeps, per tag asked (or for the names) and WAL segment,
// what was found in the parts of that segment already read and those
// parts' time bounds, so each part is read about once per tag.
//
// Invariants:
//   - An entry's values are exactly those of the parts in merged (a part
//     never changes once appended); its bounds are the union of theirs.
//   - A call takes an entry's values whole only when every part merged
//     lies inside the call's time range; otherwise it reads the segment's
//     parts of traces overlapping the range itself (the same answer as
//     without the cache).
//   - A merged part whose trace has since moved into a block may stay in
//     an entry: the block holds the same values, so the answer does not
//     change. Entries of segments the WAL no longer uses are dropped
//     (prune), as summaries are.
//   - Memory is bounded: at most maxCachedTags tags (the least recently
//     asked is dropped) and maxTagValueBytes over all entries (values and
//     8 bytes per part merged); an entry that would pass either bound is
//     given up (overflow) and its segment read by each call, as before.

const (
	maxCachedTags    = 16
	maxTagValueBytes = 8 << 20
	maxSegValueBytes = 512 << 10
)

type tagValueCache struct {
	mu    sync.Mutex
	clock uint64
	tags  map[cacheKey]*tagSegs
	bytes int // memory held over all entries (segValues.bytes)
}

type tagSegs struct {
	used uint64 // clock of the last call
	segs map[uint64]*segValues
}

// segValues is one tag's values in one WAL segment. mu is held while the
// entry is read or extended; bytes and dropped belong to the cache's mu.
type segValues struct {
	mu       sync.Mutex
	merged   []int64 // offsets of the parts whose values are in vals, sorted
	vals     *search.TagValues
	bd       bounds
	overflow bool

	bytes   int  // memory of vals and merged as counted in the cache's total
	dropped bool // evicted or pruned: no longer counted
}

func newTagValueCache() *tagValueCache {
	return &tagValueCache{tags: map[cacheKey]*tagSegs{}}
}

// cacheKey names what an entry holds: the values of tag, or (names) every
// attribute name, as (type: scope, value: name).
type cacheKey struct {
	names bool
	tag   search.Tag
}

// entry returns tag's entry of segment seg, created if need be.
func (c *tagValueCache) entry(tag cacheKey, seg uint64) *segValues {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	ts := c.tags[tag]
	if ts == nil {
		if len(c.tags) >= maxCachedTags {
			c.evictLocked()
		}
		ts = &tagSegs{segs: map[uint64]*segValues{}}
		c.tags[tag] = ts
	}
	ts.used = c.clock
	e := ts.segs[seg]
	if e == nil {
		e = &segValues{vals: search.NewTagValues(0, maxSegValueBytes)}
		ts.segs[seg] = e
	}
	return e
}

// evictLocked drops the least recently asked tag.
func (c *tagValueCache) evictLocked() {
	var oldest cacheKey
	var used uint64
	first := true
	for t, ts := range c.tags {
		if first || ts.used < used {
			oldest, used, first = t, ts.used, false
		}
	}
	for _, e := range c.tags[oldest].segs {
		c.dropLocked(e)
	}
	delete(c.tags, oldest)
}

func (c *tagValueCache) dropLocked(e *segValues) {
	c.bytes -= e.bytes
	e.bytes, e.dropped = 0, true
}

// account records the memory e (locked by the caller) now holds, its
// values and the offsets of its parts, and reports whether the total stays
// within maxTagValueBytes.
func (c *tagValueCache) account(e *segValues) bool {
	n := 8 * len(e.merged)
	if e.vals != nil {
		n += e.vals.Bytes()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.dropped {
		return true // a call still holds it; it is no longer counted
	}
	c.bytes += n - e.bytes
	e.bytes = n
	return c.bytes <= maxTagValueBytes
}

// prune drops the entries of segments below minSeg.
func (c *tagValueCache) prune(minSeg uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ts := range c.tags {
		for seg, e := range ts.segs {
			if seg < minSeg {
				c.dropLocked(e)
				delete(ts.segs, seg)
			}
		}
	}
}

// walTagCached adds to the answer, through add, what extract finds in the
// snapshot's WAL parts of traces overlapping [start, end] (Unix seconds,
// 0 = open): from inst's cache entries under key where they serve,
// otherwise by reading the parts. extract adds a part's values to into and
// its span times to bd (when not nil).
func (ing *Ingester) walTagCached(ctx context.Context, inst *instance, snap searchSnapshot, key cacheKey, start, end uint32,
	extract func(raw []byte, into *search.TagValues, bd *bounds) error, add func(*search.TagValues), st *search.Stats,
) error {
	cache := inst.tagValues
	cache.prune(snap.minSeg)
	type ref struct {
		p part
		k int // index of the part's trace in snap.traces
	}
	bySeg := map[uint64][]ref{}
	for k, t := range snap.traces {
		for _, p := range t.parts {
			bySeg[p.seg] = append(bySeg[p.seg], ref{p, k})
		}
	}
	var buf []byte
	read := func(seg uint64, off int64, n uint32) ([]byte, error) {
		buf = slices.Grow(buf[:0], int(n))[:n]
		if err := ing.wal.readAt(seg, off, buf); err != nil {
			return nil, fmt.Errorf("read wal segment %d at %d: %w", seg, off, err)
		}
		st.InspectedBytes += uint64(len(buf))
		return buf, nil
	}
	// inRange tells, once per trace, whether it overlaps the range
	// (from its parts' search summaries).
	ranged := start != 0 || end != 0
	known := make([]int8, len(snap.traces)) // 0 not known, 1 in, -1 out
	var sb summaryBuilder
	var sbuf []byte
	var sums []*partSummary
	inRange := func(k int) (bool, error) {
		if !ranged {
			return true, nil
		}
		if known[k] == 0 {
			var err error
			if sums, err = ing.summaries(inst, snap.traces[k].parts, sums, &sb, &sbuf, st); err != nil {
				return false, err
			}
			known[k] = -1
			if s, e := traceBounds(sums); search.InRange(s, e, start, end) {
				known[k] = 1
			}
		}
		return known[k] == 1, nil
	}
	for seg, refs := range bySeg {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		parts := make([]part, len(refs))
		for i, r := range refs {
			parts[i] = r.p
		}
		e := cache.entry(key, seg)
		e.mu.Lock()
		ok, err := ing.fillEntry(cache, e, parts, read, extract)
		usable := err == nil && ok && (!ranged || e.bd.within(start, end))
		if usable {
			add(e.vals)
		}
		e.mu.Unlock()
		if err != nil {
			return err
		}
		if usable {
			continue
		}
		in := parts[:0]
		for _, r := range refs {
			ok, err := inRange(r.k)
			if err != nil {
				return err
			}
			if ok {
				in = append(in, r.p)
			}
		}
		sortByOffset(in)
		found := search.NewTagValues(0, 0)
		var extractErr error
		partsRead := ing.metrics.tagValueParts.WithLabelValues("call")
		err = readRuns(in, read, func(_ part, raw []byte) bool {
			partsRead.Inc()
			extractErr = extract(raw, found, nil)
			return extractErr == nil
		})
		if err = cmp.Or(err, extractErr); err != nil {
			return err
		}
		add(found)
	}
	st.InspectedTraces += uint64(len(snap.traces))
	return nil
}

func sortByOffset(parts []part) {
	slices.SortFunc(parts, func(a, b part) int { return cmp.Compare(a.off, b.off) })
}

// fillEntry reads into e (locked by the caller) the parts it lacks of
// parts (one segment's, in any order: most are merged already, and only
// those left to read are sorted), neighbours in one read (readRuns). It
// reports false if e has overflowed: its values are then given up, and
// the segment is read by every call.
func (ing *Ingester) fillEntry(cache *tagValueCache, e *segValues, parts []part,
	read func(seg uint64, off int64, n uint32) ([]byte, error), extract func(raw []byte, into *search.TagValues, bd *bounds) error,
) (bool, error) {
	if e.overflow {
		return false, nil
	}
	todo := make([]part, 0, len(parts))
	for _, p := range parts {
		if _, found := slices.BinarySearch(e.merged, p.off); !found {
			todo = append(todo, p)
		}
	}
	sortByOffset(todo)
	giveUp := func() {
		e.overflow, e.vals, e.merged = true, nil, nil
		cache.account(e)
	}
	sorted := len(e.merged) == 0 || len(todo) == 0 || todo[0].off > e.merged[len(e.merged)-1]
	var extractErr error
	partsRead := ing.metrics.tagValueParts.WithLabelValues("cache")
	err := readRuns(todo, read, func(p part, raw []byte) bool {
		partsRead.Inc()
		if extractErr = extract(raw, e.vals, &e.bd); extractErr != nil {
			return false
		}
		e.merged = append(e.merged, p.off)
		return !e.vals.Full()
	})
	if err = cmp.Or(err, extractErr); err != nil {
		giveUp() // e may hold some of a part's values
		return false, err
	}
	if !sorted {
		slices.Sort(e.merged)
	}
	if e.vals.Full() || !cache.account(e) {
		giveUp()
		return false, nil
	}
	return true, nil
}

// Parts of one segment at most readGap bytes apart are read together, up
// to readRun bytes at once: the parts of a push sit side by side.
const (
	readGap = 4 << 10
	readRun = 1 << 20
)

// readRuns calls fn with the bytes of each of parts (one segment's, sorted
// by offset), reading neighbours in one call of read; fn returns false to
// stop. An error of read is returned.
func readRuns(parts []part, read func(seg uint64, off int64, n uint32) ([]byte, error), fn func(p part, raw []byte) bool) error {
	for i := 0; i < len(parts); {
		first := parts[i]
		end := first.off + int64(first.n)
		j := i + 1
		for ; j < len(parts); j++ {
			p := parts[j]
			if p.off-end > readGap || p.off+int64(p.n)-first.off > readRun {
				break
			}
			end = max(end, p.off+int64(p.n))
		}
		raw, err := read(first.seg, first.off, uint32(end-first.off))
		if err != nil {
			return err
		}
		for _, p := range parts[i:j] {
			rel := p.off - first.off
			if !fn(p, raw[rel:rel+int64(p.n)]) {
				return nil
			}
		}
		i = j
	}
	return nil
}

// within reports whether every time of b lies in [from, to] (Unix
// seconds, 0 = open), so that every part it bounds overlaps that range.
func (b bounds) within(from, to uint32) bool {
	if from != 0 && (b.start == 0 || b.start < uint64(from)*1e9) {
		return false
	}
	return to == 0 || b.end <= (uint64(to)+1)*1e9
}

// size is the number of entries and the bytes of values they hold.
func (c *tagValueCache) size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ts := range c.tags {
		entries += len(ts.segs)
	}
	return entries, c.bytes
}
