package ingester

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
)

func pushGenTraces(t testing.TB, ing *Ingester, traces []genTrace) {
	t.Helper()
	for _, tr := range traces {
		for _, p := range tr.parts {
			raw, err := proto.Marshal(p)
			require.NoError(t, err)
			_, err = ing.PushBytes(tenantCtx(), &rubatopb.PushBytesRequest{Ids: [][]byte{tr.id[:]}, Traces: [][]byte{raw},
				Spans: []uint32{uint32(search.CountSpans(p))}})
			require.NoError(t, err)
		}
	}
}

// TestWALTagValuesMatchBruteForce: tag values and names over WAL-held
// traces, with and without a time range, are exactly those of the traces
// overlapping the range (decoded, TagValues/TagNames.AddTrace), whether
// they come from the tag cache (first call, repeated call, after more
// pushes) or, for a range the cached parts do not all lie in, from
// reading the parts; a repeated call reads no part into the cache again.
func TestWALTagValuesMatchBruteForce(t *testing.T) {
	seed := rand.Int63()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	traces := genTraces(r, 160)
	matchAll, err := search.ParseQuery("{}")
	require.NoError(t, err)
	tags := []string{"resource.service.name", "resource.host.id", "span.http.method", "span.http.status_code", "span.db.system", "span.nope"}

	checkNames := func(held []genTrace, start, end uint32) {
		t.Helper()
		want := search.NewTagNames(0, 0)
		for _, tr := range held {
			if s, e := search.TraceBounds(tr.walTD); search.InRange(s, e, start, end) {
				require.NoError(t, want.AddTrace(matchAll, tr.walTD))
			}
		}
		got, err := ing.SearchTags(tenantCtx(), &rubatopb.SearchTagsRequest{Start: start, End: end})
		require.NoError(t, err)
		require.Equal(t, want.Response(""), got, "names over [%d, %d]", start, end)
	}
	check := func(held []genTrace) {
		t.Helper()
		lo, hi := ^uint64(0), uint64(0)
		for _, tr := range held {
			s, e := search.TraceBounds(tr.walTD)
			lo, hi = min(lo, s), max(hi, e)
		}
		type rng struct{ start, end uint32 }
		ranges := []rng{{0, 0}, {uint32(lo / 1e9), uint32(hi/1e9) + 1}}
		for range 6 {
			a := uint32(lo/1e9) + uint32(r.Int63n(int64(hi/1e9-lo/1e9)+1))
			b := uint32(lo/1e9) + uint32(r.Int63n(int64(hi/1e9-lo/1e9)+1))
			ranges = append(ranges, rng{min(a, b), max(a, b)}, rng{a, 0}, rng{0, b})
		}
		for _, name := range tags {
			tag, err := search.ParseTag(name)
			require.NoError(t, err)
			for _, rg := range ranges {
				if name == tags[0] {
					checkNames(held, rg.start, rg.end)
				}
				want := search.NewTagValues(0, 0)
				for _, tr := range held {
					if s, e := search.TraceBounds(tr.walTD); search.InRange(s, e, rg.start, rg.end) {
						require.NoError(t, want.AddTrace(tag, matchAll, tr.walTD))
					}
				}
				got, err := ing.SearchTagValues(tenantCtx(), &rubatopb.SearchTagValuesRequest{TagName: name, Start: rg.start, End: rg.end})
				require.NoError(t, err)
				require.Equal(t, want.Response().TagValues, got.TagValues, "%s over [%d, %d]", name, rg.start, rg.end)
			}
		}
	}
	cached := func() float64 { return counterValue(t, ing.metrics.tagValueParts.WithLabelValues("cache")) }
	direct := func() float64 { return counterValue(t, ing.metrics.tagValueParts.WithLabelValues("call")) }

	pushGenTraces(t, ing, traces[:100])
	check(traces[:100])
	parts := 0
	for _, tr := range traces[:100] {
		parts += len(tr.parts)
	}
	require.Equal(t, float64(parts*(len(tags)+1)), cached(), "each part read into the cache once per tag and once for the names")
	require.Positive(t, direct(), "ranges the cached parts do not all lie in read the parts")

	check(traces[:100])
	require.Equal(t, float64(parts*(len(tags)+1)), cached(), "a repeated call reads nothing into the cache")

	pushGenTraces(t, ing, traces[100:])
	check(traces)
	for _, tr := range traces[100:] {
		parts += len(tr.parts)
	}
	require.Equal(t, float64(parts*(len(tags)+1)), cached(), "new parts read into the cache once")
}

// TestWALTagValuesOverflow: a tag with more values than a cache entry
// keeps gives the entry up; calls then read the parts themselves and
// still answer every value.
func TestWALTagValuesOverflow(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	const n = 1200 // × ~500 bytes: past maxSegValueBytes
	for i := range n {
		id := [16]byte{byte(i >> 8), byte(i), 1}
		val := strings.Repeat("x", 490) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
		td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{
			TraceId: id[:], SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + 1,
			Attributes: []*commonv1.KeyValue{{Key: "url", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: val}}}},
		}}}}}}}
		pushGenTraces(t, ing, []genTrace{{id: id, parts: []*tracev1.TracesData{td}}})
	}
	for range 2 {
		got, err := ing.SearchTagValues(tenantCtx(), &rubatopb.SearchTagValuesRequest{TagName: "span.url"})
		require.NoError(t, err)
		require.Len(t, got.TagValues, n)
	}
	require.Positive(t, counterValue(t, ing.metrics.tagValueParts.WithLabelValues("call")), "entry given up, parts read by the call")
	_, bytes := ing.instanceList()[0].tagValues.size()
	require.Zero(t, bytes, "nothing kept of the given-up entry")
}

// FuzzAddWireValue: reading a KeyValue's value from its bytes agrees with
// decoding it (proto.Unmarshal, TagValues.AddAnyValue): what decodes adds
// the same value (the oneof's last scalar, merged messages, a wrong wire
// type as an unknown field).
func FuzzAddWireValue(f *testing.F) {
	kv := func(vs ...*commonv1.AnyValue) []byte {
		var out []byte
		for _, v := range vs {
			b, err := proto.Marshal(&commonv1.KeyValue{Key: "k", Value: v})
			require.NoError(f, err)
			out = append(out, b...)
		}
		return out
	}
	str := func(s string) *commonv1.AnyValue {
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: s}}
	}
	f.Add(kv(str("a")))
	f.Add(kv(str("a"), &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: -7}}))
	f.Add(kv(&commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: 1.5}}, &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: true}}))
	f.Add(kv(str("a"), &commonv1.AnyValue{Value: &commonv1.AnyValue_BytesValue{BytesValue: []byte{1}}}))
	f.Add(kv(&commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{ArrayValue: &commonv1.ArrayValue{Values: []*commonv1.AnyValue{str("x")}}}}))
	f.Add([]byte{0x12, 0x03, 0x0a, 0x01, 0xff})       // string not UTF-8
	f.Add([]byte{0x12, 0x02, 0x08, 0x01, 0x12, 0x00}) // a bool, then an empty value message
	f.Add([]byte{0x12, 0x02, 0x0d, 0x01})             // field 1 with a wrong wire type
	f.Fuzz(func(t *testing.T, data []byte) {
		want := search.NewTagValues(0, 0)
		var m commonv1.KeyValue
		wantErr := proto.Unmarshal(data, &m)
		if wantErr == nil {
			want.AddAnyValue(m.Value)
		}
		got := search.NewTagValues(0, 0)
		err := addWireValue(data, got)
		if wantErr != nil {
			// Decoding also refuses what the wire read does not look at
			// (the key's UTF-8, strings nested in a value the oneof does
			// not keep): the wire read only must not panic.
			return
		}
		require.NoError(t, err)
		require.Equal(t, want.Response().TagValues, got.Response().TagValues)
	})
}

// TestTagNamesWireEqualsDecoded: the names read from a part's bytes are
// the ones TagNames.AddTrace finds in the decoded part with a match-all
// query, and its bounds search.TraceBounds'.
func TestTagNamesWireEqualsDecoded(t *testing.T) {
	r := rand.New(rand.NewSource(rand.Int63()))
	kv := func(k string) []*commonv1.KeyValue {
		return []*commonv1.KeyValue{{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "v"}}}}
	}
	// Names of a resource or scope without spans are not a span's: left out.
	spanless := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{
		{Resource: &resourcev1.Resource{Attributes: kv("r.empty")}},
		{Resource: &resourcev1.Resource{Attributes: kv("r.emptyscope")}, ScopeSpans: []*tracev1.ScopeSpans{{Scope: &commonv1.InstrumentationScope{Attributes: kv("s.empty")}}}},
		{Resource: &resourcev1.Resource{Attributes: kv("r.full")}, ScopeSpans: []*tracev1.ScopeSpans{
			{Scope: &commonv1.InstrumentationScope{Attributes: kv("s.empty2")}},
			{Scope: &commonv1.InstrumentationScope{Attributes: kv("s.full")}, Spans: []*tracev1.Span{{Name: "x", Attributes: kv("span.k")}}},
		}},
	}}
	for _, tr := range append(genTraces(r, 200), genTrace{parts: []*tracev1.TracesData{spanless}}) {
		for _, p := range tr.parts {
			raw, err := proto.Marshal(p)
			require.NoError(t, err)
			got := search.NewTagValues(0, 0)
			var bd bounds
			require.NoError(t, tagNamesWire(raw, got, &bd))
			names := search.NewTagNames(0, 0)
			got.Each(func(scope, name string) { names.Add(scope, name) })
			want := search.NewTagNames(0, 0)
			require.NoError(t, want.AddTrace(nil, p))
			require.Equal(t, want.Response(""), names.Response(""))
			start, end := search.TraceBounds(p)
			require.Equal(t, bounds{start, end}, bd)
		}
	}
	require.Error(t, tagNamesWire([]byte{0x0a, 0x05, 0x01}, search.NewTagValues(0, 0), nil), "truncated")
}

// TestTagCacheConcurrentEviction: calls for more tags than the cache
// keeps, from several goroutines while pushes, cuts and truncations go
// on, each get their tag's values, and the cache's memory count stays the
// sum of what its entries hold.
func TestTagCacheConcurrentEviction(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	const tags = maxCachedTags + 4
	push := func(id byte) {
		var attrs []*commonv1.KeyValue
		for k := range tags {
			attrs = append(attrs, &commonv1.KeyValue{Key: fmt.Sprintf("k%d", k), Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: fmt.Sprintf("v%d", k)}}})
		}
		tid := [16]byte{id}
		td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{
			TraceId: tid[:], SpanId: []byte{id, 2, 3, 4, 5, 6, 7, 8}, StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + 1, Attributes: attrs,
		}}}}}}}
		pushGenTraces(t, ing, []genTrace{{id: tid, parts: []*tracev1.TracesData{td}}})
	}
	push(1)
	var stop atomic.Bool
	var pusher, wg sync.WaitGroup
	pusher.Add(1)
	go func() {
		defer pusher.Done()
		for k := 0; !stop.Load() && k < 40; k++ {
			push(byte(2 + k%100))
			if k%5 == 0 {
				ing.tick(context.Background(), true)
				ing.flushWG.Wait()
			}
		}
	}()
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				k := (g*7 + i) % tags
				got, err := ing.SearchTagValues(tenantCtx(), &rubatopb.SearchTagValuesRequest{TagName: fmt.Sprintf("span.k%d", k)})
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, []*rubatopb.TagValue{{Type: "string", Value: fmt.Sprintf("v%d", k)}}, got.TagValues)
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	pusher.Wait()
	c := ing.instanceList()[0].tagValues
	c.mu.Lock()
	defer c.mu.Unlock()
	require.LessOrEqual(t, len(c.tags), maxCachedTags)
	sum := 0
	for _, ts := range c.tags {
		for _, e := range ts.segs {
			sum += e.bytes
		}
	}
	require.Equal(t, sum, c.bytes)
}

// TestReadRuns: parts close together are read in one call, a gap wider
// than readGap or a run past readRun starts a new read, every part gets
// its own bytes, and fn can stop the walk.
func TestReadRuns(t *testing.T) {
	seg := make([]byte, 4*readRun)
	for i := range seg {
		seg[i] = byte(i * 7)
	}
	var reads [][2]int64
	read := func(_ uint64, off int64, n uint32) ([]byte, error) {
		reads = append(reads, [2]int64{off, int64(n)})
		return seg[off : off+int64(n)], nil
	}
	parts := []part{
		{off: 0, n: 100}, {off: 100, n: 50}, {off: 150 + readGap, n: 10}, // one run (gap of exactly readGap)
		{off: 160 + 2*readGap + 1, n: 10},                                            // past the gap: a new run
		{off: readRun, n: readRun / 2}, {off: readRun + readRun/2, n: readRun/2 + 1}, // past readRun: split
	}
	var got []part
	require.NoError(t, readRuns(parts, read, func(p part, raw []byte) bool {
		require.Equal(t, seg[p.off:p.off+int64(p.n)], raw, "part at %d", p.off)
		got = append(got, p)
		return true
	}))
	require.Equal(t, parts, got)
	require.Equal(t, [][2]int64{{0, 160 + readGap}, {160 + 2*readGap + 1, 10}, {readRun, readRun / 2}, {readRun + readRun/2, readRun/2 + 1}}, reads)

	reads, got = nil, nil
	require.NoError(t, readRuns(parts, read, func(p part, _ []byte) bool { got = append(got, p); return len(got) < 2 }))
	require.Len(t, got, 2, "stopped")
	require.Len(t, reads, 1)
}
