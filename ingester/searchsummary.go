package ingester

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/traceql"
)

// Search summaries let a search over WAL-held traces reject most of them
// without reading or decoding them. A summary describes one WAL part (a
// fragment of a trace as one push appended it; parts never change), and
// is built the first time a search needs it and cached (summaryCache), so
// each part is decoded for searching about once, not once per search.
//
// A summary is a superset: a condition it rejects holds on no span of the
// part. It holds the part's time bounds (search.TraceBounds), its span
// durations' range, a mask of span status codes and of span kinds, and a
// bloom filter over the hashes of what equality conditions name: per
// scope, every attribute key present, every (key, value) of a string, int
// or float (as one numeric value, as TraceQL compares them) or bool value,
// a "may be anything" mark for keys holding other values (arrays, maps,
// bytes, NaN), and the span names and status messages. Conditions it
// cannot decide (regexes, ranges on attributes, !=, trace-level
// intrinsics) only require the key to be present, or nothing; the mirror
// of what pkg/block's search index decides, for a decoded part.
// TestSummaryNeverDropsAMatch checks it against traceql's Eval.

// summaryBitsPerItem sizes a part's bloom filter (about 0.25 % false
// positives with 4 probes); maxSummaryBits bounds it whatever the part
// (false positives grow past that, results stay exact).
const (
	summaryBitsPerItem = 16
	maxSummaryBits     = 8192
	summaryProbes      = 4
)

// bounds are a part's times as search.TraceBounds computes them over a
// trace: the earliest non-zero span start, the latest span end or start.
type bounds struct{ start, end uint64 }

func (b *bounds) add(start, end uint64) {
	if start != 0 && (b.start == 0 || start < b.start) {
		b.start = start
	}
	b.end = max(b.end, end, start)
}

type partSummary struct {
	bounds               // search.TraceBounds of the part
	durMin, durMax int64 // span durations as TraceQL computes them
	spans          bool  // the part has at least one span
	status         uint8 // bit per status code 0–6; bit 7: other codes
	kinds          uint8 // bit per kind 0–6; bit 7: other kinds
	bloom          []uint64
}

// summaryBytes is the memory a summary takes, for the cache's bound.
func (s *partSummary) summaryBytes() int { return 96 + 8*len(s.bloom) }

var summarySeed = maphash.MakeSeed()

// Item tags, after scope and key.
const (
	tagKey   = 'k'
	tagStr   = 's'
	tagNum   = 'n'
	tagBool  = 'b'
	tagOther = 'o'
)

func itemHash(sc traceql.Scope, key string, tag byte, s string, n uint64) uint64 {
	return itemHashBytes(sc, unsafe.Slice(unsafe.StringData(key), len(key)), tag, unsafe.Slice(unsafe.StringData(s), len(s)), n)
}

func itemHashBytes(sc traceql.Scope, key []byte, tag byte, s []byte, n uint64) uint64 {
	if len(key)+len(s) <= 128 {
		// the same bytes in one call: maphash hashes a sequence of
		// writes as their concatenation
		var arr [2 + 128 + 1 + 8]byte
		buf := append(arr[:0], byte(sc), tag)
		buf = append(buf, key...)
		buf = append(buf, 0)
		buf = append(buf, s...)
		buf = binary.LittleEndian.AppendUint64(buf, n)
		return maphash.Bytes(summarySeed, buf)
	}
	var h maphash.Hash
	h.SetSeed(summarySeed)
	var pre [2]byte
	pre[0], pre[1] = byte(sc), tag
	_, _ = h.Write(pre[:])
	_, _ = h.Write(key)
	_ = h.WriteByte(0)
	_, _ = h.Write(s)
	var nb [8]byte
	binary.LittleEndian.PutUint64(nb[:], n)
	_, _ = h.Write(nb[:])
	return h.Sum64()
}

// numBits is the hash payload of a number: ints and floats that TraceQL
// finds equal hash the same.
func numBits(f float64) uint64 {
	if f == 0 {
		f = 0 // -0 == 0
	}
	return math.Float64bits(f)
}

type summaryBuilder struct {
	items []uint64
	vals  []wireVal // scratch of scanKeyValue
	seen  []uint64  // scratch of dedupe: an open-addressing set
	// resources caches the items of resources scanned (resourceAttrs).
	resources map[uint64]*cachedResource
}

func (b *summaryBuilder) attrs(sc traceql.Scope, kvs []*commonv1.KeyValue) {
	for _, kv := range kvs {
		k := kv.GetKey()
		b.items = append(b.items, itemHash(sc, k, tagKey, "", 0))
		switch v := kv.GetValue().GetValue().(type) {
		case *commonv1.AnyValue_StringValue:
			b.items = append(b.items, itemHash(sc, k, tagStr, v.StringValue, 0))
		case *commonv1.AnyValue_IntValue:
			b.items = append(b.items, itemHash(sc, k, tagNum, "", numBits(float64(v.IntValue))))
		case *commonv1.AnyValue_DoubleValue:
			if math.IsNaN(v.DoubleValue) {
				b.items = append(b.items, itemHash(sc, k, tagOther, "", 0))
			} else {
				b.items = append(b.items, itemHash(sc, k, tagNum, "", numBits(v.DoubleValue)))
			}
		case *commonv1.AnyValue_BoolValue:
			n := uint64(0)
			if v.BoolValue {
				n = 1
			}
			b.items = append(b.items, itemHash(sc, k, tagBool, "", n))
		default:
			b.items = append(b.items, itemHash(sc, k, tagOther, "", 0))
		}
	}
}

func codeBit(c int64) uint8 {
	if c < 0 || c > 6 {
		return 1 << 7
	}
	return 1 << c
}

// summarize builds the summary of one decoded part.
func (b *summaryBuilder) summarize(td *tracev1.TracesData) *partSummary {
	s := &partSummary{}
	b.items = b.items[:0]
	for _, rs := range td.GetResourceSpans() {
		b.attrs(traceql.ScopeResource, rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			b.attrs(traceql.ScopeInstrumentation, ss.GetScope().GetAttributes())
			for _, sp := range ss.GetSpans() {
				b.attrs(traceql.ScopeSpan, sp.GetAttributes())
				for _, e := range sp.GetEvents() {
					b.attrs(traceql.ScopeEvent, e.GetAttributes())
				}
				for _, l := range sp.GetLinks() {
					b.attrs(traceql.ScopeLink, l.GetAttributes())
				}
				b.items = append(b.items,
					itemHash(traceql.ScopeIntrinsic, "name", tagStr, sp.GetName(), 0),
					itemHash(traceql.ScopeIntrinsic, "statusMessage", tagStr, sp.GetStatus().GetMessage(), 0))
				s.status |= codeBit(int64(sp.GetStatus().GetCode()))
				s.kinds |= codeBit(int64(sp.GetKind()))
				s.addSpanTimes(sp.StartTimeUnixNano, sp.EndTimeUnixNano)
			}
		}
	}
	b.finish(s)
	return s
}

// addSpanTimes accounts for a span's times: the part's bounds as
// search.TraceBounds computes them, and its duration as traceql does.
func (s *partSummary) addSpanTimes(start, end uint64) {
	s.bounds.add(start, end)
	var d int64
	if end >= start {
		d = int64(end - start)
	}
	if !s.spans {
		s.spans, s.durMin, s.durMax = true, d, d
	}
	s.durMin, s.durMax = min(s.durMin, d), max(s.durMax, d)
}

// finish builds the bloom filter of the items collected.
func (b *summaryBuilder) finish(s *partSummary) {
	b.dedupe()
	bits := min(max(64, len(b.items)*summaryBitsPerItem), maxSummaryBits)
	s.bloom = make([]uint64, (bits+63)/64)
	for _, h := range b.items {
		s.set(h)
	}
}

// dedupe removes repeated items, in linear time: a part repeats most keys
// once per span, and sorting them to compact cost more than the scan.
// The bloom is sized by what is left; the order of items does not matter.
func (b *summaryBuilder) dedupe() {
	size := 16
	for size < 2*len(b.items) {
		size <<= 1
	}
	if cap(b.seen) < size {
		b.seen = make([]uint64, size)
	} else {
		b.seen = b.seen[:size]
		clear(b.seen)
	}
	mask := uint64(size - 1)
	out := b.items[:0]
	zero := false // 0 marks an empty slot, so item 0 is tracked apart
	for _, h := range b.items {
		if h == 0 {
			if !zero {
				zero = true
				out = append(out, h)
			}
			continue
		}
		for i := h & mask; ; i = (i + 1) & mask {
			if b.seen[i] == h {
				break
			}
			if b.seen[i] == 0 {
				b.seen[i] = h
				out = append(out, h)
				break
			}
		}
	}
	b.items = out
}

// probe returns the k-th bit position of item h: double hashing
// (h + k·h2), reduced to the filter's size by the high half of a 64-bit
// product (no division), for set and has alike.
func (s *partSummary) probe(h, h2, k uint64) uint64 {
	hi, _ := bits.Mul64(h+k*h2, uint64(len(s.bloom))*64)
	return hi
}

func probeStep(h uint64) uint64 { return h>>32 | h<<32 | 1 }

func (s *partSummary) set(h uint64) {
	h2 := probeStep(h)
	for k := uint64(0); k < summaryProbes; k++ {
		bit := s.probe(h, h2, k)
		s.bloom[bit/64] |= 1 << (bit % 64)
	}
}

func (s *partSummary) has(h uint64) bool {
	h2 := probeStep(h)
	for k := uint64(0); k < summaryProbes; k++ {
		bit := s.probe(h, h2, k)
		if s.bloom[bit/64]&(1<<(bit%64)) == 0 {
			return false
		}
	}
	return true
}

// summaryCond is a traceql.Condition prepared for summaries: the hashes
// it looks up, computed once per search.
type summaryCond struct {
	c traceql.Condition
	// scopes are the attribute scopes the condition reads (two for an
	// unscoped one); key, val and other their hashes per scope; val is
	// 0 when the value cannot be hashed (any value of the key may do).
	scopes []traceql.Scope
	key    []uint64
	val    []uint64
	other  []uint64
	// intrinsic: a hash to find (name, statusMessage) or 0.
	intr uint64
}

func prepareCond(c traceql.Condition) summaryCond {
	sc := summaryCond{c: c}
	if c.Scope == traceql.ScopeIntrinsic {
		if c.Op == traceql.OpEq && c.Value.Type == traceql.TypeString && (c.Name == "name" || c.Name == "statusMessage") {
			sc.intr = itemHash(traceql.ScopeIntrinsic, c.Name, tagStr, c.Value.S, 0)
		}
		return sc
	}
	sc.scopes = []traceql.Scope{c.Scope}
	if c.Scope == traceql.ScopeUnscoped {
		sc.scopes = []traceql.Scope{traceql.ScopeSpan, traceql.ScopeResource}
	}
	for _, s := range sc.scopes {
		var val uint64
		if c.Op == traceql.OpEq {
			switch v := c.Value; v.Type {
			case traceql.TypeString:
				val = itemHash(s, c.Name, tagStr, v.S, 0)
			case traceql.TypeInt:
				val = itemHash(s, c.Name, tagNum, "", numBits(float64(v.I)))
			case traceql.TypeFloat:
				if !math.IsNaN(v.F) {
					val = itemHash(s, c.Name, tagNum, "", numBits(v.F))
				}
			case traceql.TypeBool:
				n := uint64(0)
				if v.B {
					n = 1
				}
				val = itemHash(s, c.Name, tagBool, "", n)
			}
		}
		sc.key = append(sc.key, itemHash(s, c.Name, tagKey, "", 0))
		sc.val = append(sc.val, val)
		sc.other = append(sc.other, itemHash(s, c.Name, tagOther, "", 0))
	}
	return sc
}

// mayHold tells whether some span of the part may satisfy the condition.
func (sc *summaryCond) mayHold(s *partSummary) bool {
	c := &sc.c
	if c.Scope == traceql.ScopeIntrinsic {
		if !s.spans {
			return false
		}
		switch c.Name {
		case "name", "statusMessage":
			return sc.intr == 0 || s.has(sc.intr)
		case "status":
			if c.Op == traceql.OpEq && c.Value.Type == traceql.TypeStatus {
				return s.status&(codeBit(int64(c.Value.Status))|1<<7) != 0
			}
		case "kind":
			if c.Op == traceql.OpEq && c.Value.Type == traceql.TypeKind {
				return s.kinds&(codeBit(int64(c.Value.Kind))|1<<7) != 0
			}
		case "duration":
			if c.Value.Type == traceql.TypeDuration {
				d := int64(c.Value.D)
				switch c.Op {
				case traceql.OpEq:
					return s.durMin <= d && d <= s.durMax
				case traceql.OpLt:
					return s.durMin < d
				case traceql.OpLe:
					return s.durMin <= d
				case traceql.OpGt:
					return s.durMax > d
				case traceql.OpGe:
					return s.durMax >= d
				}
			}
		}
		return true // not decided here (trace-level intrinsics among them)
	}
	for k := range sc.scopes {
		if !s.has(sc.key[k]) {
			continue
		}
		if sc.val[k] == 0 || s.has(sc.val[k]) || s.has(sc.other[k]) {
			return true
		}
	}
	return false
}

// summaryFilter is a query's conditions (traceql.Query.Conditions) over
// summaries.
type summaryFilter struct {
	all   bool
	conds []summaryCond
}

func newSummaryFilter(q *traceql.Query) *summaryFilter {
	f := &summaryFilter{}
	if q == nil {
		return f
	}
	cs := q.Conditions()
	f.all = cs.All
	for _, c := range cs.Conds {
		f.conds = append(f.conds, prepareCond(c))
	}
	return f
}

// mayMatch tells whether a trace made of parts summarised by sums may
// match: each condition (All) or one of them (!All) may hold on some part.
// SameSpan is not used: it only narrows further.
func (f *summaryFilter) mayMatch(sums []*partSummary) bool {
	if len(f.conds) == 0 {
		return true
	}
	for k := range f.conds {
		held := false
		for _, s := range sums {
			if f.conds[k].mayHold(s) {
				held = true
				break
			}
		}
		if f.all && !held {
			return false
		}
		if !f.all && held {
			return true
		}
	}
	return f.all
}

// traceBounds combines the parts' bounds as search.TraceBounds does over
// the whole trace.
func traceBounds(sums []*partSummary) (start, end uint64) {
	for _, s := range sums {
		if s.start != 0 && (start == 0 || s.start < start) {
			start = s.start
		}
		end = max(end, s.end)
	}
	return start, end
}

// summaryCache holds the summaries of one instance's WAL parts, keyed by
// segment and offset. Entries of segments older than any part a search
// still sees are dropped (prune), and the cache stops growing at
// maxBytes (summaries past it are built, used and not kept).
type summaryCache struct {
	mu       sync.Mutex
	segs     map[uint64]map[int64]*partSummary
	bytes    int
	maxBytes int
	metrics  *metrics
	// lastSearch is when a search last used the cache (Unix nanos): while
	// searches are recent, pushes summarise their parts as they append
	// them (summarizePush), so a search finds them ready.
	lastSearch atomic.Int64
}

// pushSummaryWindow is how long after a search pushes keep summarising
// their parts.
const pushSummaryWindow = 10 * time.Minute

var builders = sync.Pool{New: func() any { return &summaryBuilder{} }}

// summarizePush stores the summaries of the parts a push just appended
// (frags of the record at recPos, holding traces[accepted[k]]), if a
// search ran in the last pushSummaryWindow and the cache has room. The
// bytes are the push's, so nothing is read; a part that does not scan is
// left to the search.
func (c *summaryCache) summarizePush(now time.Time, recPos walPos, frags []fragment, traces [][]byte, accepted []int) {
	if now.UnixNano()-c.lastSearch.Load() > int64(pushSummaryWindow) || c.full() {
		return
	}
	b := builders.Get().(*summaryBuilder)
	defer builders.Put(b)
	parts := make([]part, 0, len(frags))
	sums := make([]*partSummary, 0, len(frags))
	for k, f := range frags {
		if f.hold {
			continue // not searched unless asked (held.go)
		}
		s, err := b.scan(traces[accepted[k]])
		if err != nil {
			continue
		}
		parts, sums = append(parts, recPos.part(f)), append(sums, s)
	}
	c.metrics.summariesBuilt.WithLabelValues("push").Add(float64(len(sums)))
	c.store(parts, sums)
}

// full reports whether the cache has reached maxBytes: a summary built
// now would not be kept, so a push does not build one.
func (c *summaryCache) full() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes >= c.maxBytes
}

func newSummaryCache(maxBytes int, m *metrics) *summaryCache {
	return &summaryCache{segs: map[uint64]map[int64]*partSummary{}, maxBytes: maxBytes, metrics: m}
}

// lookup fills sums[i] for every part already summarised; missing ones
// stay nil.
func (c *summaryCache) lookup(parts []part, sums []*partSummary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range parts {
		sums[i] = c.segs[p.seg][p.off]
	}
}

// store caches sums[k] as the summary of parts[k], each while the cache
// has room.
func (c *summaryCache) store(parts []part, sums []*partSummary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, p := range parts {
		s := sums[k]
		if c.bytes+s.summaryBytes() > c.maxBytes {
			c.metrics.summariesNotCached.Inc()
			continue
		}
		m := c.segs[p.seg]
		if m == nil {
			m = map[int64]*partSummary{}
			c.segs[p.seg] = m
		}
		if _, ok := m[p.off]; ok {
			continue
		}
		m[p.off] = s
		c.bytes += s.summaryBytes()
		c.metrics.summaryBytes.Add(float64(s.summaryBytes()))
	}
}

// prune drops the summaries of segments below minSeg: no live, head or
// cutting trace refers to them any more.
func (c *summaryCache) prune(minSeg uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for seg, m := range c.segs {
		if seg >= minSeg {
			continue
		}
		for _, s := range m {
			c.bytes -= s.summaryBytes()
			c.metrics.summaryBytes.Sub(float64(s.summaryBytes()))
		}
		delete(c.segs, seg)
	}
}

func (c *summaryCache) size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.segs {
		entries += len(m)
	}
	return entries, c.bytes
}
