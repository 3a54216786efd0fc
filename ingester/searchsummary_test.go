package ingester

import (
	"bytes"
	"context"
	"hash/maphash"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
	"github.com/rubatodb/rubato/pkg/traceql/traceqltest"
)

// splitTrace cuts td into 1–3 parts as separate pushes would carry it:
// each span goes to a random part, under a copy of its resource and scope.
func splitTrace(r *rand.Rand, td *tracev1.TracesData) []*tracev1.TracesData {
	parts := make([]*tracev1.TracesData, 1+r.Intn(3))
	for i := range parts {
		parts[i] = &tracev1.TracesData{}
	}
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				p := parts[r.Intn(len(parts))]
				p.ResourceSpans = append(p.ResourceSpans, &tracev1.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl,
					ScopeSpans: []*tracev1.ScopeSpans{{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl, Spans: []*tracev1.Span{sp}}}})
			}
		}
	}
	return parts
}

type genTrace struct {
	id    [16]byte
	td    *tracev1.TracesData
	parts []*tracev1.TracesData
	// walTD is the trace as the ingester decodes it from its WAL parts
	// (the parts' messages concatenated).
	walTD *tracev1.TracesData
}

func genTraces(r *rand.Rand, n int) []genTrace {
	out := make([]genTrace, n)
	for i := range out {
		id := traceqltest.TraceID(r)
		td := traceqltest.Trace(r, id, traceqltest.TraceOptions{MaxSpans: 12})
		out[i] = genTrace{id: id, td: td, parts: splitTrace(r, td)}
		var raw []byte
		for _, p := range out[i].parts {
			b, err := proto.Marshal(p)
			if err != nil {
				panic(err)
			}
			raw = append(raw, b...)
		}
		wtd, err := decodeInto(raw)
		if err != nil {
			panic(err)
		}
		out[i].walTD = wtd
	}
	return out
}

// TestSummaryNeverDropsAMatch: for random traces split into parts and
// random queries of every generator shape, a trace that traceql's Eval
// matches is never rejected by its parts' summaries, and the summaries'
// time bounds are the trace's. It also checks that the summaries do
// reject traces (else the test would prove nothing about pruning).
func TestSummaryNeverDropsAMatch(t *testing.T) {
	seed := rand.Int63()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	traces := genTraces(r, 150)
	var b summaryBuilder
	sums := make([][]*partSummary, len(traces))
	for i, tr := range traces {
		for _, p := range tr.parts {
			// as the WAL holds it: marshalled and decoded again
			raw, err := proto.Marshal(p)
			require.NoError(t, err)
			dec, err := decodeInto(raw)
			require.NoError(t, err)
			sums[i] = append(sums[i], b.summarize(dec))
		}
		s, e := search.TraceBounds(tr.td)
		gs, ge := traceBounds(sums[i])
		require.Equal(t, [2]uint64{s, e}, [2]uint64{gs, ge}, "time bounds")
	}
	var queries, matches, rejected, total int
	for range 600 {
		qs, _ := traceqltest.Query(r)
		q, err := search.ParseQuery(qs)
		if err != nil {
			continue
		}
		queries++
		f := newSummaryFilter(q)
		for i, tr := range traces {
			md, err := search.Match(q, tr.id[:], tr.td, 0)
			if err != nil {
				break // unsupported at evaluation: not a pre-filter question
			}
			if md == nil {
				// as the ingester evaluates it
				md, _ = search.Match(q, tr.id[:], tr.walTD, 0)
			}
			total++
			ok := f.mayMatch(sums[i])
			if md != nil {
				matches++
				require.True(t, ok, "query %s: trace %x matches but its summaries reject it", qs, tr.id)
			} else if !ok {
				rejected++
			}
		}
	}
	t.Logf("%d queries, %d trace evaluations, %d matches, %d rejected by summaries", queries, total, matches, rejected)
	require.Greater(t, queries, 500)
	require.Greater(t, matches, 0)
	require.Greater(t, rejected, total/20, "summaries must prune")
}

// TestSearchRecentMatchesBruteForce pushes random traces in parts into an
// ingester and checks that SearchRecent returns exactly the traces Eval
// matches over the same traces (their WAL parts concatenated), with summaries built by the search and
// then taken from the cache, and that a limited search returns the most
// recent matches.
func TestSearchRecentMatchesBruteForce(t *testing.T) {
	seed := rand.Int63()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	traces := genTraces(r, 120)
	pushGenTraces(t, ing, traces)
	checked := 0
	for k := 0; checked < 150; k++ {
		qs, _ := traceqltest.Query(r)
		q, err := search.ParseQuery(qs)
		if err != nil {
			continue
		}
		want := map[string]uint64{}
		evalErr := false
		for _, tr := range traces {
			md, err := search.Match(q, tr.id[:], tr.walTD, 0)
			if err != nil {
				evalErr = true
				break
			}
			if md != nil {
				want[md.TraceID] = md.StartTimeUnixNano
			}
		}
		if evalErr {
			continue
		}
		checked++
		for pass := range 2 { // summaries built, then cached
			resp, err := ing.SearchRecent(tenantCtx(), &rubatopb.IngesterSearchRequest{Request: &rubatopb.SearchRequest{Query: qs}})
			require.NoError(t, err)
			got := map[string]uint64{}
			for _, tr := range resp.Traces {
				got[tr.TraceID] = tr.StartTimeUnixNano
			}
			require.Equal(t, want, got, "query %s, pass %d", qs, pass)
		}
		if len(want) > 3 {
			resp, err := ing.SearchRecent(tenantCtx(), &rubatopb.IngesterSearchRequest{Request: &rubatopb.SearchRequest{Query: qs, Limit: 3}})
			require.NoError(t, err)
			require.Len(t, resp.Traces, 3)
			var newer int
			for _, s := range want {
				if s > resp.Traces[2].StartTimeUnixNano {
					newer++
				}
			}
			require.LessOrEqual(t, newer, 2, "query %s: a limited search keeps the most recent matches", qs)
		}
	}
	n, bytes := ing.instanceList()[0].summaries.size()
	require.Greater(t, n, len(traces), "summaries cached")
	t.Logf("%d summaries cached, %d bytes", n, bytes)
}

// TestSearchConcurrencyBound: with max_concurrent_searches running and 4×
// as many waiting, a further search is refused with ResourceExhausted;
// once slots free up, searches run again.
func TestSearchConcurrencyBound(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{}, func(c *Config) { c.MaxConcurrentSearches = 1 })
	pushTrace(t, ing, 1, 1)
	hold, err := ing.acquireSearch(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			release, err := ing.acquireSearch(ctx)
			if err == nil {
				release()
			}
			errs <- err
		}()
	}
	require.Eventually(t, func() bool { return ing.searchAdmitted.Load() == 5 }, 5e9, 1e6)
	_, err = ing.SearchRecent(tenantCtx(), &rubatopb.IngesterSearchRequest{Request: &rubatopb.SearchRequest{Query: `{}`}})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	_, err = ing.SearchTagValues(tenantCtx(), &rubatopb.SearchTagValuesRequest{TagName: "span.k"})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	cancel()
	for range 4 {
		require.Equal(t, codes.Canceled, status.Code(<-errs))
	}
	hold()
	require.Len(t, searchIDs(t, ing, `{ span.k = "v" }`), 1)
	require.Equal(t, int64(0), ing.searchAdmitted.Load())
}

// TestSummaryWireEqualsDecoded: the summary built from a part's bytes
// (scan) is the one built from the decoded part (summarize), for random
// traces, also with empty or absent values, names, statuses and kinds.
func TestSummaryWireEqualsDecoded(t *testing.T) {
	r := rand.New(rand.NewSource(rand.Int63()))
	var b summaryBuilder
	traces := genTraces(r, 200)
	odd := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{}, {Name: "x", Kind: 7, Status: &tracev1.Status{}},
		{Attributes: []*commonv1.KeyValue{{Key: "none"}, {Key: "empty", Value: &commonv1.AnyValue{}}, {Key: "bytes", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_BytesValue{}}}}}}}}}}}
	traces = append(traces, genTrace{parts: []*tracev1.TracesData{odd}})
	for _, tr := range traces {
		for _, p := range tr.parts {
			raw, err := proto.Marshal(p)
			require.NoError(t, err)
			ws, err := b.scan(raw)
			require.NoError(t, err)
			dec, err := decodeInto(raw)
			require.NoError(t, err)
			ds := b.summarize(dec)
			require.Equal(t, ds, ws)
		}
	}
	_, err := b.scan([]byte{0x0a, 0x05, 0x01})
	require.Error(t, err, "truncated")
}

// TestTagValuesWireEqualsDecoded: the values of a resource or span tag read
// from a part's bytes are the ones TagValues.AddTrace finds in the decoded
// part with a match-all query, and its bounds search.TraceBounds'.
func TestTagValuesWireEqualsDecoded(t *testing.T) {
	r := rand.New(rand.NewSource(rand.Int63()))
	traces := genTraces(r, 200)
	q, err := search.ParseQuery("{}")
	require.NoError(t, err)
	for _, name := range []string{"resource.service.name", "resource.host.id", "resource.region", "span.http.status_code", "span.http.method", "span.db.system", "span.nope"} {
		tag, err := search.ParseTag(name)
		require.NoError(t, err)
		want, got := search.NewTagValues(0, 0), search.NewTagValues(0, 0)
		for _, tr := range traces {
			for _, p := range tr.parts {
				raw, err := proto.Marshal(p)
				require.NoError(t, err)
				var bd bounds
				ok, err := tagValuesWire(tag, raw, got, &bd)
				require.True(t, ok)
				require.NoError(t, err)
				dec, err := decodeInto(raw)
				require.NoError(t, err)
				require.NoError(t, want.AddTrace(tag, q, dec))
				start, end := search.TraceBounds(dec)
				require.Equal(t, bounds{start, end}, bd, "the part's bounds")
			}
		}
		require.Equal(t, want.Response().TagValues, got.Response().TagValues, name)
		if name != "span.nope" {
			require.NotEmpty(t, got.Response().TagValues, name)
		}
	}
}

// TestPushSummarisesWhileSearched: pushes summarise their parts only once
// a search has run recently, a search finds those summaries and still
// answers exactly, and the WAL's truncation drops them.
func TestPushSummarisesWhileSearched(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	pushTrace(t, ing, 1, 2)
	inst := ing.instanceList()[0]
	n, _ := inst.summaries.size()
	require.Equal(t, 0, n, "no search yet: pushes do not summarise")
	require.Len(t, searchIDs(t, ing, `{ span.k = "v" }`), 1)
	n, _ = inst.summaries.size()
	require.Equal(t, 1, n)
	pushTrace(t, ing, 2, 2)
	pushTrace(t, ing, 1, 1)
	n, _ = inst.summaries.size()
	require.Equal(t, 3, n, "summarised at push")
	require.Len(t, searchIDs(t, ing, `{ span.k = "v" }`), 2)
	require.Empty(t, searchIDs(t, ing, `{ span.k = "w" }`))
	n, _ = inst.summaries.size()
	require.Equal(t, 3, n)

	// Once the traces are flushed and the WAL truncated, their summaries
	// (and tag values) go, with no search to prune them.
	_, err := ing.SearchTagValues(tenantCtx(), &rubatopb.SearchTagValuesRequest{TagName: "span.k"})
	require.NoError(t, err)
	n, _ = inst.tagValues.size()
	require.Positive(t, n)
	ing.tick(context.Background(), true)
	ing.flushWG.Wait()
	ing.tick(context.Background(), false)
	n, _ = inst.summaries.size()
	require.Zero(t, n, "summaries dropped with their segments")
	n, _ = inst.tagValues.size()
	require.Zero(t, n, "tag values dropped with their segments")
}

// TestItemHashLongAndShort: the one-call hash of short items equals the
// streamed hash used for long ones.
func TestItemHashLongAndShort(t *testing.T) {
	key, val := []byte("k"), []byte("some value")
	var h maphash.Hash
	h.SetSeed(summarySeed)
	_, _ = h.Write([]byte{byte(3), tagStr})
	_, _ = h.Write(key)
	_ = h.WriteByte(0)
	_, _ = h.Write(val)
	_, _ = h.Write([]byte{7, 0, 0, 0, 0, 0, 0, 0})
	require.Equal(t, h.Sum64(), itemHashBytes(3, key, tagStr, val, 7))
}

// FuzzNextField checks nextField's inline path against protowire's own
// reading of the same bytes (nextFieldSlow): the same field, value, rest
// and error for any input.
func FuzzNextField(f *testing.F) {
	f.Add([]byte{0x0a, 0x03, 'a', 'b', 'c', 0x10, 0x01})
	f.Add([]byte{0x0a, 0x05, 'a'})
	f.Add([]byte{0x02, 0x00})
	f.Add([]byte{0x0a})
	f.Add([]byte{0x8a, 0x01, 0x01, 'x'})
	f.Add([]byte{0x0a, 0x80, 0x01})
	f.Add([]byte{0x10, 0x7f, 0x08, 0x80, 0x01})
	f.Add([]byte{0x39, 1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x00})
	f.Add([]byte{0x39, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		num, typ, val, v, rest, err := nextField(b)
		num2, typ2, val2, v2, rest2, err2 := nextFieldSlow(b)
		if (err == nil) != (err2 == nil) || num != num2 || typ != typ2 || !bytes.Equal(val, val2) || v != v2 || !bytes.Equal(rest, rest2) {
			t.Fatalf("inline (%d %d %q %d %q %v) != protowire (%d %d %q %d %q %v)", num, typ, val, v, rest, err, num2, typ2, val2, v2, rest2, err2)
		}
		if err == nil && len(rest) >= len(b) {
			t.Fatalf("no progress on %x", b)
		}
	})
}

// FuzzSummaryScan: for any bytes, scan does not panic, and when they
// decode as a TracesData its summary (built from the bytes, where a
// repeated scalar or oneof adds every occurrence) covers the decoded
// part's: every item summarize hashes, its bounds, durations, status and
// kind codes. scan may refuse what decodes (the search then summarises
// the decoded part).
func FuzzSummaryScan(f *testing.F) {
	for _, tr := range genTraces(rand.New(rand.NewSource(3)), 20) {
		for _, p := range tr.parts {
			raw, _ := proto.Marshal(p)
			f.Add(raw)
		}
	}
	f.Add([]byte{0x0a, 0x05, 0x01})
	// An attribute whose value is an int, then a string_value_strindex
	// (AnyValue field 8): the oneof keeps the last, a value of no listed
	// type.
	wrap := func(num protowire.Number, b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
	}
	kv := append(wrap(1, []byte("k")), wrap(2, []byte{0x18, 0x05, 0x40, 0x01})...)
	f.Add(wrap(1, wrap(2, wrap(2, wrap(9, kv)))))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b summaryBuilder
		ws, werr := b.scan(raw)
		dec, derr := decodeInto(raw)
		if derr != nil || werr != nil {
			return
		}
		ds := b.summarize(dec)
		for _, h := range b.items {
			if !ws.has(h) {
				t.Fatalf("item %x of the decoded part not in the scanned summary", h)
			}
		}
		if ds.spans && (!ws.spans || ws.durMin > ds.durMin || ws.durMax < ds.durMax) {
			t.Fatalf("durations: scanned %+v, decoded %+v", ws, ds)
		}
		if ws.status&ds.status != ds.status || ws.kinds&ds.kinds != ds.kinds {
			t.Fatalf("codes: scanned %b/%b, decoded %b/%b", ws.status, ws.kinds, ds.status, ds.kinds)
		}
		if ds.start != 0 && (ws.start == 0 || ws.start > ds.start) || ws.end < ds.end {
			t.Fatalf("bounds: scanned %+v, decoded %+v", ws.bounds, ds.bounds)
		}
	})
}
