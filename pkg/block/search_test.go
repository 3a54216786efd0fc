package block

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/backend/local"
)

// searchTestConfig makes small row groups and pages and splits traces of
// more than 4 spans into parts, so that searches cross row groups, pages
// and multi-row traces.
func searchTestConfig(tb testing.TB) Config {
	cfg := testConfig(tb)
	cfg.RowGroupSizeBytes = 8 << 10
	cfg.CompactedRowGroupSizeBytes = 8 << 10
	cfg.PageSizeBytes = 2 << 10
	cfg.MaxSpansPerRow = 4
	return cfg
}

type searchBlock struct {
	r      *Reader
	meta   *Meta
	ids    [][]byte
	traces []*tracev1.TracesData
}

// writeSearchBlock writes n random traces to be.
func writeSearchBlock(tb testing.TB, be backend.Backend, cfg Config, seed uint64, n int) *searchBlock {
	tb.Helper()
	rng := seededRand(tb, seed)
	ids := genTraceIDs(rng, n)
	traces := make([]*tracev1.TracesData, n)
	ctx := context.Background()
	w, err := NewWriter(ctx, be, cfg, testTenant, uuid.New(), 0, n, tb.TempDir())
	require.NoError(tb, err)
	for i, id := range ids {
		traces[i] = genSearchTrace(rng, id, 12)
		require.NoError(tb, w.Add(id, traces[i]))
	}
	meta, err := w.Close(ctx)
	require.NoError(tb, err)
	return &searchBlock{r: Open(be, meta, NewCache(64<<20)), meta: meta, ids: ids, traces: traces}
}

// searchIDs runs req and returns the candidates' IDs.
func searchIDs(tb testing.TB, r *Reader, req SearchRequest) (map[[16]byte]*tracev1.TracesData, SearchStats) {
	tb.Helper()
	got := map[[16]byte]*tracev1.TracesData{}
	var prev []byte
	st, err := r.Search(context.Background(), req, func(id [16]byte, td *tracev1.TracesData) bool {
		if _, dup := got[id]; dup {
			tb.Fatalf("trace %x returned twice", id)
		}
		if prev != nil {
			require.Negative(tb, compareIDs(prev, id[:]), "not in trace-ID order")
		}
		prev = append(prev[:0], id[:]...)
		got[id] = td
		return true
	})
	require.NoError(tb, err)
	return got, st
}

func compareIDs(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

func testBackends(t *testing.T) map[string]backend.Backend {
	lb, err := local.New(local.Config{Path: t.TempDir()}, log.NewNopLogger())
	require.NoError(t, err)
	return map[string]backend.Backend{"inmem": inmem.New(), "local": lb}
}

// toV1 turns a v2 block into the v1 block an older writer left: the same
// data.parquet and bloom shards, no search index.
func toV1(tb testing.TB, be backend.Backend, b *searchBlock) *searchBlock {
	tb.Helper()
	ctx := context.Background()
	m := *b.meta
	m.Version, m.SearchIndexSize = VersionV1, 0
	data, err := m.Marshal()
	require.NoError(tb, err)
	require.NoError(tb, be.Delete(ctx, SearchIndexKey(m.TenantID, m.BlockID)))
	require.NoError(tb, be.Put(ctx, MetaKey(m.TenantID, m.BlockID), bytes.NewReader(data), int64(len(data))))
	return &searchBlock{r: Open(be, &m, NewCache(64<<20)), meta: &m, ids: b.ids, traces: b.traces}
}

// copyBlock copies b row by row (AddRow, AddPartRow, AddPartRowSpans: the
// compactor's paths) into a new block of level 1 written by the Writer.
func copyBlock(tb testing.TB, be backend.Backend, cfg Config, b *searchBlock) *searchBlock {
	tb.Helper()
	ctx := context.Background()
	w, err := NewWriter(ctx, be, cfg, testTenant, uuid.New(), 1, b.meta.TotalObjects, tb.TempDir())
	require.NoError(tb, err)
	rr, err := b.r.Rows(ctx)
	require.NoError(tb, err)
	defer rr.Close()
	var last []byte
	parts := 0
	for {
		id, row, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(tb, err)
		switch {
		case bytes.Equal(id, last) && parts%2 == 0:
			parts++
			require.NoError(tb, w.AddPartRow(row))
		case bytes.Equal(id, last):
			// The compactor's filtered copy, keeping every span.
			parts++
			keep := make([]bool, row.SpanCount())
			for i := range keep {
				keep[i] = true
			}
			require.NoError(tb, w.AddPartRowSpans(row, keep))
		default:
			require.NoError(tb, w.AddRow(row))
		}
		last = append(last[:0], id...)
	}
	m, err := w.Close(ctx)
	require.NoError(tb, err)
	// The brute force runs over the copy's own decoded traces: a filtered
	// copy need not give back empty ScopeSpans and the like.
	out := &searchBlock{r: Open(be, m, NewCache(64<<20)), meta: m}
	require.NoError(tb, out.r.Iterate(ctx, func(id []byte, td *tracev1.TracesData) error {
		out.ids, out.traces = append(out.ids, id), append(out.traces, td)
		return nil
	}))
	require.Len(tb, out.ids, len(b.ids))
	return out
}

// TestSearchNeverMisses compares Search with a brute-force evaluation of
// random predicates over the decoded traces: every match must be a
// candidate, returned decoded exactly as written; and selective searches
// must prune. Blocks: v2 as written by Add, v1 (no search index, scanned),
// and v2 written from the v1 block's rows as the compactor does (index
// built from cells), on the inmem and local backends.
func TestSearchNeverMisses(t *testing.T) {
	for name, be := range testBackends(t) {
		cfg := searchTestConfig(t)
		v2 := writeSearchBlock(t, be, cfg, 7, 250)
		v2b := writeSearchBlock(t, be, cfg, 7, 250)
		v1 := toV1(t, be, v2b)
		copied := copyBlock(t, be, cfg, v1)
		require.Equal(t, VersionV2, copied.meta.Version)
		for variant, b := range map[string]*searchBlock{"v2": v2, "v1": v1, "compacted": copied} {
			t.Run(name+"/"+variant, func(t *testing.T) { checkSearchNeverMisses(t, b) })
		}
	}
}

func checkSearchNeverMisses(t *testing.T, b *searchBlock) {
	require.Greater(t, b.meta.RowGroups, 3)
	require.Greater(t, b.meta.TotalObjects, len(b.ids), "some traces must be split into parts")
	rng := seededRand(t, 99)
	var matched, candidates, total, pruning int
	for q := 0; q < searchQueries; q++ {
		req := SearchRequest{All: rng.IntN(2) == 0}
		for range 1 + rng.IntN(3) {
			req.Predicates = append(req.Predicates, genPredicate(rng))
		}
		req.SameSpan = req.All && rng.IntN(2) == 0
		if rng.IntN(4) == 0 {
			req.Start = time.Unix(0, int64(1_700_000_000_000_000_000+uint64(rng.IntN(1000))*1e9))
			req.End = req.Start.Add(time.Duration(rng.IntN(100)) * time.Second)
		}
		got, _ := searchIDs(t, b.r, req)
		want := 0
		for i, id := range b.ids {
			td := b.traces[i]
			if !bfMatch(req, td) || !traceOverlaps(td, req) {
				continue
			}
			want++
			g, ok := got[[16]byte(id)]
			if !ok {
				t.Fatalf("query %d %s: trace %x matches but is not a candidate", q, predString(req.Predicates), id)
			}
			if q%10 == 0 {
				requireProtoEqual(t, td, g)
			}
		}
		matched += want
		candidates += len(got)
		total += len(b.ids)
		if len(got) < len(b.ids) {
			pruning++
		}
	}
	t.Logf("%d matches, %d candidates of %d traces searched; %d of %d searches pruned", matched, candidates, total, pruning, searchQueries)
	require.Greater(t, pruning, searchQueries/3, "searches must prune")
	require.Less(t, candidates, 2*matched+total/10, "too many candidates")
}

// traceOverlaps applies SearchRequest's time rule to a decoded trace.
func traceOverlaps(td *tracev1.TracesData, req SearchRequest) bool {
	var start, end uint64
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				if s := sp.StartTimeUnixNano; s != 0 && (start == 0 || s < start) {
					start = s
				}
				end = max(end, sp.EndTimeUnixNano)
			}
		}
	}
	if !req.Start.IsZero() && end < uint64(req.Start.UnixNano()) {
		return false
	}
	if !req.End.IsZero() && start > uint64(req.End.UnixNano()) {
		return false
	}
	return true
}

// TestSearchSelective pins that a predicate matching one trace returns
// just it, and one matching nothing returns nothing.
func TestSearchSelective(t *testing.T) {
	be := inmem.New()
	b := writeSearchBlock(t, be, searchTestConfig(t), 3, 200)
	target := b.traces[77].ResourceSpans[0].ScopeSpans[0].Spans[0]
	target.Attributes = append(target.Attributes, strKV("needle", "found"))
	// Rewrite the block with the needle.
	w, err := NewWriter(context.Background(), be, searchTestConfig(t), testTenant, uuid.New(), 0, len(b.ids), t.TempDir())
	require.NoError(t, err)
	for i, id := range b.ids {
		require.NoError(t, w.Add(id, b.traces[i]))
	}
	meta, err := w.Close(context.Background())
	require.NoError(t, err)
	r := Open(be, meta, NewCache(1<<20))

	got, _ := searchIDs(t, r, SearchRequest{All: true, Predicates: []Predicate{{Scope: PredSpan, Key: "needle", Op: PredEq, Value: PredValue{Type: ValString, Str: "found"}}}})
	require.Len(t, got, 1)
	require.Contains(t, got, [16]byte(b.ids[77]))

	got, _ = searchIDs(t, r, SearchRequest{All: true, Predicates: []Predicate{{Scope: PredSpan, Key: "needle", Op: PredEq, Value: PredValue{Type: ValString, Str: "lost"}}}})
	require.Empty(t, got)

	// No predicates: everything.
	got, _ = searchIDs(t, r, SearchRequest{})
	require.Len(t, got, len(b.ids))

	// Stop early.
	n := 0
	_, err = r.Search(context.Background(), SearchRequest{}, func([16]byte, *tracev1.TracesData) bool { n++; return n < 5 })
	require.NoError(t, err)
	require.Equal(t, 5, n)
}

func TestSearchRejectsBadPredicates(t *testing.T) {
	b := writeSearchBlock(t, inmem.New(), searchTestConfig(t), 3, 5)
	for _, p := range []Predicate{
		{},
		{Scope: PredSpan, Key: "a", Op: PredRegex, Value: PredValue{Type: ValString, Str: "("}},
		{Scope: PredSpan, Key: "a", Op: PredRegex, Value: PredValue{Type: ValInt}},
		{Scope: PredSpan, Key: "a", Op: PredEq},
	} {
		_, err := b.r.Search(context.Background(), SearchRequest{Predicates: []Predicate{p}}, func([16]byte, *tracev1.TracesData) bool { return true })
		require.Error(t, err, "%+v", p)
	}
}

// searchQueries is how many random searches TestSearchNeverMisses runs
// per backend.
const searchQueries = 60
