package compactor

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/block"
)

func testBlockConfig() block.Config {
	return block.Config{BloomFP: 0.01, BloomShardSizeBytes: 1024, RowGroupSizeBytes: 8192, PageSizeBytes: 2048}
}

// overlappingBlocks writes n blocks over a shared pool of trace IDs; span
// s of a trace has the same ID in every block.
func overlappingBlocks(t *testing.T, be backend.Backend, n int) []*block.Meta {
	rng := rand.New(rand.NewPCG(9, 9))
	pool := make([][]byte, 150)
	for i := range pool {
		pool[i] = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, rng.Uint64()), rng.Uint64())
	}
	var metas []*block.Meta
	for range n {
		var ids [][]byte
		for _, id := range pool {
			if rng.IntN(3) == 0 {
				ids = append(ids, id)
			}
		}
		slices.SortFunc(ids, bytes.Compare)
		w, err := block.NewWriter(context.Background(), be, testBlockConfig(), "t", uuid.New(), 0, len(ids), t.TempDir())
		require.NoError(t, err)
		for _, id := range ids {
			ss := &tracev1.ScopeSpans{}
			for s := range 4 {
				if rng.IntN(2) == 0 || s == 0 {
					sid := binary.BigEndian.Uint64(id[8:]) ^ uint64(s+1)
					ss.Spans = append(ss.Spans, &tracev1.Span{TraceId: id, SpanId: binary.BigEndian.AppendUint64(nil, sid),
						Name: "op", StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + uint64(s)})
				}
			}
			require.NoError(t, w.Add(id, &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{ss}}}}))
		}
		m, err := w.Close(context.Background())
		require.NoError(t, err)
		metas = append(metas, m)
	}
	return metas
}

func readAll(t *testing.T, be backend.Backend, m *block.Meta) map[string]*tracev1.TracesData {
	out := map[string]*tracev1.TracesData{}
	require.NoError(t, block.Open(be, m, nil).Iterate(context.Background(), func(id []byte, td *tracev1.TracesData) error {
		out[string(id)] = td
		return nil
	}))
	return out
}

// mergeBlocks merges inputs into a new level-1 block with cfg: rows copied
// as rows (the compactor's path) when rows is set, else through the
// reference merge that decodes every trace.
func mergeBlocks(t *testing.T, be backend.Backend, cfg block.Config, inputs []*block.Meta, rows bool) (*block.Meta, mergeStats) {
	t.Helper()
	ctx := context.Background()
	w, err := block.NewWriter(ctx, be, cfg, "t", uuid.New(), 1, 0, t.TempDir())
	require.NoError(t, err)
	srcs := make([]source, len(inputs))
	var out sink = writerSink{w}
	for i, m := range inputs {
		if rows {
			srcs[i] = newRowSource(ctx, block.Open(be, m, nil))
			out = rowSink{w}
		} else {
			srcs[i] = newIterSource(ctx, block.Open(be, m, nil))
		}
	}
	st, err := merge(ctx, srcs, out, limits{})
	for _, s := range srcs {
		s.close()
	}
	require.NoError(t, err)
	meta, err := w.Close(ctx)
	require.NoError(t, err)
	return meta, st
}

// TestRowMergeMatchesIterateMerge: the row-level merge (copies rows
// without decoding) writes the same traces as the reference merge that
// decodes every trace.
func TestRowMergeMatchesIterateMerge(t *testing.T) {
	be := inmem.New()
	inputs := overlappingBlocks(t, be, 4)
	run := func(rows bool) (*block.Meta, mergeStats) { return mergeBlocks(t, be, testBlockConfig(), inputs, rows) }
	a, sa := run(false)
	b, sb := run(true)
	require.Equal(t, sa, sb)
	require.Positive(t, sa.combined)
	require.Positive(t, sa.spansDeduped)
	require.Less(t, sa.combined, sa.tracesOut, "some traces are single copies")
	ta, tb := readAll(t, be, a), readAll(t, be, b)
	require.Equal(t, len(ta), len(tb))
	for id, td := range ta {
		require.True(t, proto.Equal(td, tb[id]), "trace %x", id)
	}
	require.Equal(t, a.TotalSpans, b.TotalSpans)
}

// TestCutTraceKeepsOneSpan: a cut never empties a trace.
func TestCutTraceKeepsOneSpan(t *testing.T) {
	td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{
		{SpanId: []byte{1}, Name: string(make([]byte, 100))}, {SpanId: []byte{2}}, {SpanId: []byte{3}},
	}}}}}}
	require.Equal(t, 2, cutTrace(td, 10))
	require.Equal(t, 1, countSpans(td))
	require.Equal(t, []byte{1}, td.ResourceSpans[0].ScopeSpans[0].Spans[0].SpanId)
}

// TestMergeMultiRowTraces: big traces stored as several rows (block
// MaxSpansPerRow) are copied row by row, or combined part by part when
// several inputs hold them, and come out with every span of every copy
// exactly once, as the reference merge (decode and combine whole traces)
// writes them.
func TestMergeMultiRowTraces(t *testing.T) {
	ctx := context.Background()
	be := inmem.New()
	cfg := testBlockConfig()
	cfg.MaxSpansPerRow = 5
	rng := rand.New(rand.NewPCG(5, 5))
	pool := make([][]byte, 60)
	for i := range pool {
		pool[i] = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, rng.Uint64()), rng.Uint64())
	}
	span := func(id []byte, s int) *tracev1.Span {
		sid := binary.BigEndian.Uint64(id[8:]) ^ uint64(s+1)
		return &tracev1.Span{TraceId: id, SpanId: binary.BigEndian.AppendUint64(nil, sid), Name: "op", StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + uint64(s)}
	}
	want := map[string]map[uint64]bool{}
	var inputs []*block.Meta
	for range 3 {
		var ids [][]byte
		for _, id := range pool {
			if rng.IntN(2) == 0 {
				ids = append(ids, id)
			}
		}
		slices.SortFunc(ids, bytes.Compare)
		w, err := block.NewWriter(ctx, be, cfg, "t", uuid.New(), 0, len(ids), t.TempDir())
		require.NoError(t, err)
		for _, id := range ids {
			if want[string(id)] == nil {
				want[string(id)] = map[uint64]bool{}
			}
			td := &tracev1.TracesData{}
			n := 1 + rng.IntN(30)
			for g := 0; g < n; g += 7 { // several ResourceSpans of up to 7 spans
				ss := &tracev1.ScopeSpans{}
				for s := g; s < min(g+7, n); s++ {
					if s == 0 || rng.IntN(3) > 0 {
						sp := span(id, s)
						ss.Spans = append(ss.Spans, sp)
						want[string(id)][binary.BigEndian.Uint64(sp.SpanId)] = true
					}
				}
				td.ResourceSpans = append(td.ResourceSpans, &tracev1.ResourceSpans{ScopeSpans: []*tracev1.ScopeSpans{ss}})
			}
			require.NoError(t, w.Add(id, td))
		}
		m, err := w.Close(ctx)
		require.NoError(t, err)
		require.Greater(t, m.TotalObjects, len(ids), "big traces take several rows")
		inputs = append(inputs, m)
	}
	run := func(rows bool) (*block.Meta, mergeStats) { return mergeBlocks(t, be, cfg, inputs, rows) }
	ref, sr := run(false)
	got, st := run(true)
	require.Positive(t, st.combined)
	require.Positive(t, st.spansDeduped)
	require.Equal(t, sr, st)
	for _, m := range []*block.Meta{ref, got} {
		traces := readAll(t, be, m)
		require.Len(t, traces, len(want))
		for id, td := range traces {
			seen := map[uint64]bool{}
			for _, rs := range td.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, sp := range ss.Spans {
						sid := binary.BigEndian.Uint64(sp.SpanId)
						require.False(t, seen[sid], "trace %x: span %x twice", id, sid)
						seen[sid] = true
					}
				}
			}
			require.Equal(t, want[id], seen, "trace %x", []byte(id))
		}
	}
	require.Equal(t, ref.TotalSpans, got.TotalSpans)
}

// countingSink counts how the merge writes rows.
type countingSink struct {
	rowSink
	copies, adds, filtered int
}

func (k *countingSink) addCopy(src source, part bool) error {
	k.copies++
	return k.rowSink.addCopy(src, part)
}

func (k *countingSink) addFiltered(src source, keep []bool) error {
	k.filtered++
	return k.rowSink.addFiltered(src, keep)
}

func (k *countingSink) add(id []byte, td *tracev1.TracesData, part bool) error {
	k.adds++
	return k.rowSink.add(id, td, part)
}

// TestCombineStreamingRowKinds: rows of a further copy of a multi-row trace
// are dropped when every span is already written (a replica), copied as
// they are when none is (late spans), and filtered span by span when they
// mix both or repeat a span of their own, all without decoding; the trace
// comes out with every span once.
func TestCombineStreamingRowKinds(t *testing.T) {
	ctx := context.Background()
	be := inmem.New()
	cfg := testBlockConfig()
	cfg.MaxSpansPerRow = 5
	id := bytes.Repeat([]byte{7}, 16)
	write := func(spans ...int) *block.Meta {
		ss := &tracev1.ScopeSpans{}
		for _, s := range spans {
			ss.Spans = append(ss.Spans, &tracev1.Span{TraceId: id, SpanId: binary.BigEndian.AppendUint64(nil, uint64(s+1)),
				Name: "op", StartTimeUnixNano: 1e18 + uint64(s), EndTimeUnixNano: 2e18})
		}
		w, err := block.NewWriter(ctx, be, cfg, "t", uuid.New(), 0, 1, t.TempDir())
		require.NoError(t, err)
		require.NoError(t, w.Add(id, &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{ss}}}}))
		m, err := w.Close(ctx)
		require.NoError(t, err)
		return m
	}
	seq := func(lo, hi int) []int {
		var s []int
		for i := lo; i < hi; i++ {
			s = append(s, i)
		}
		return s
	}
	a := write(seq(0, 20)...) // 4 rows
	// Rows of 5: two replicas, one mixed, one new, one new with a span twice.
	b := write(slices.Concat(seq(0, 10), seq(17, 22), seq(22, 27), []int{28, 29, 30, 30, 31})...)
	w, err := block.NewWriter(ctx, be, cfg, "t", uuid.New(), 1, 0, t.TempDir())
	require.NoError(t, err)
	out := &countingSink{rowSink: rowSink{w}}
	srcs := []source{newRowSource(ctx, block.Open(be, a, nil)), newRowSource(ctx, block.Open(be, b, nil))}
	st, err := merge(ctx, srcs, out, limits{})
	for _, s := range srcs {
		s.close()
	}
	require.NoError(t, err)
	m, err := w.Close(ctx)
	require.NoError(t, err)
	require.Equal(t, 4+1, out.copies, "a's rows, and b's row of new spans")
	require.Equal(t, 2, out.filtered, "b's mixed row and its row with a span twice")
	require.Zero(t, out.adds, "nothing decoded")
	require.EqualValues(t, 10+3+1, st.spansDeduped)

	td := readAll(t, be, m)[string(id)]
	var got []int
	for _, sp := range td.ResourceSpans[0].ScopeSpans[0].Spans {
		got = append(got, int(binary.BigEndian.Uint64(sp.SpanId))-1)
	}
	slices.Sort(got)
	require.Equal(t, slices.Concat(seq(0, 27), seq(28, 32)), got)
}
