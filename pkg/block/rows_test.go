package block

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// writeBlockOf writes the given traces (ascending ids) into a new block.
func writeBlockOf(tb testing.TB, be *memBackend, cfg Config, level uint8, ids [][]byte, traces []*tracev1.TracesData) *Meta {
	tb.Helper()
	w, err := NewWriter(context.Background(), be, cfg, testTenant, uuid.New(), level, len(ids), tb.TempDir())
	require.NoError(tb, err)
	for i := range ids {
		require.NoError(tb, w.Add(ids[i], traces[i]))
	}
	m, err := w.Close(context.Background())
	require.NoError(tb, err)
	return m
}

// collect reads a block with Iterate.
func collect(tb testing.TB, r *Reader) ([][]byte, []*tracev1.TracesData) {
	tb.Helper()
	var ids [][]byte
	var trs []*tracev1.TracesData
	require.NoError(tb, r.Iterate(context.Background(), func(id []byte, tr *tracev1.TracesData) error {
		ids = append(ids, id)
		trs = append(trs, tr)
		return nil
	}))
	return ids, trs
}

func TestMergeViaRowsEqualsMergeViaOTLP(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 32 << 10 // several row groups per input
	cfg.PageSizeBytes = 4 << 10
	rng := seededRand(t, 3)
	all := genTraceIDs(rng, 1200)
	var inIDs [2][][]byte
	var inTraces [2][]*tracev1.TracesData
	for i, id := range all {
		td := genRealisticTrace(rng, id, 1_700_000_000_000_000_000+uint64(i))
		if i%97 == 0 {
			td = genExoticTrace(id)
		}
		k := rng.IntN(2)
		inIDs[k] = append(inIDs[k], id)
		inTraces[k] = append(inTraces[k], td)
	}
	be := newMemBackend()
	var readers []*Reader
	var metas []*Meta
	for k := range inIDs {
		m := writeBlockOf(t, be, cfg, 0, inIDs[k], inTraces[k])
		require.Greater(t, m.RowGroups, 2)
		metas = append(metas, m)
		readers = append(readers, Open(be, m, NewCache(16<<20)))
	}

	// Merge through rows.
	w, err := NewWriter(ctx, be, cfg, testTenant, uuid.New(), 1, len(all), t.TempDir())
	require.NoError(t, err)
	require.NoError(t, mergeRows(ctx, w, readers))
	viaRows, err := w.Close(ctx)
	require.NoError(t, err)

	// Merge through OTLP.
	var ids [][]byte
	var trs []*tracev1.TracesData
	for k := range readers {
		kids, ktrs := collect(t, readers[k])
		ids = append(ids, kids...)
		trs = append(trs, ktrs...)
	}
	order := make([]int, len(ids))
	for i := range order {
		order[i] = i
	}
	sortByID(order, ids)
	var sids [][]byte
	var strs []*tracev1.TracesData
	for _, i := range order {
		sids = append(sids, ids[i])
		strs = append(strs, trs[i])
	}
	viaOTLP := writeBlockOf(t, be, cfg, 1, sids, strs)

	for _, field := range []struct{ a, b any }{
		{viaRows.MinID, viaOTLP.MinID}, {viaRows.MaxID, viaOTLP.MaxID},
		{viaRows.TotalObjects, viaOTLP.TotalObjects}, {viaRows.TotalSpans, viaOTLP.TotalSpans},
		{viaRows.StartTime, viaOTLP.StartTime}, {viaRows.EndTime, viaOTLP.EndTime},
	} {
		require.Equal(t, field.b, field.a)
	}
	require.Equal(t, len(all), viaRows.TotalObjects)
	require.Equal(t, metas[0].TotalSpans+metas[1].TotalSpans, viaRows.TotalSpans)

	gotIDs, gotTrs := collect(t, Open(be, viaRows, nil))
	require.Equal(t, all, gotIDs)
	want := map[string]*tracev1.TracesData{}
	for k := range inIDs {
		for i, id := range inIDs[k] {
			want[string(id)] = inTraces[k][i]
		}
	}
	for i, id := range gotIDs {
		requireProtoEqual(t, want[string(id)], gotTrs[i])
	}
	// The merged block answers lookups too.
	r := Open(be, viaRows, NewCache(16<<20))
	for i := 0; i < len(all); i += 41 {
		got, err := r.FindTraceByID(ctx, all[i])
		require.NoError(t, err)
		requireProtoEqual(t, want[string(all[i])], got)
	}
}

func sortByID(order []int, ids [][]byte) {
	for i := 1; i < len(order); i++ {
		for j := i; j > 0 && bytes.Compare(ids[order[j]], ids[order[j-1]]) < 0; j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
}

func TestRowReaderCloneAndDecode(t *testing.T) {
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 16 << 10
	b := writeTestBlock(t, cfg, 300, true)
	rr, err := Open(b.be, b.meta, nil).Rows(context.Background())
	require.NoError(t, err)
	var kept []Row
	var n int
	for {
		id, row, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.Equal(t, b.ids[n], id)
		require.Equal(t, id, row.TraceID())
		td, err := DecodeRow(row)
		require.NoError(t, err)
		requireProtoEqual(t, b.traces[n], td)
		require.Equal(t, countSpans(b.traces[n]), row.SpanCount())
		kept = append(kept, row.Clone())
		n++
	}
	require.Equal(t, len(b.ids), n)
	_, _, err = rr.Next()
	require.ErrorIs(t, err, io.EOF, "EOF is sticky")
	require.NoError(t, rr.Close())
	require.NoError(t, rr.Close())
	// Clones outlive the reader and its buffers.
	for i, row := range kept {
		td, err := DecodeRow(row)
		require.NoError(t, err)
		requireProtoEqual(t, b.traces[i], td)
	}
	_, err = DecodeRow(Row{})
	require.Error(t, err)
}

func countSpans(td *tracev1.TracesData) int {
	n := 0
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}

func TestAddRowRejects(t *testing.T) {
	ctx := context.Background()
	b := writeTestBlock(t, testConfig(t), 20, false)
	rr, err := Open(b.be, b.meta, nil).Rows(ctx)
	require.NoError(t, err)
	defer rr.Close()
	_, r0, err := rr.Next()
	require.NoError(t, err)
	r0 = r0.Clone()
	_, r1, err := rr.Next()
	require.NoError(t, err)

	w, err := NewWriter(ctx, newMemBackend(), testConfig(t), testTenant, uuid.New(), 1, 2, t.TempDir())
	require.NoError(t, err)
	defer w.Abort()
	require.Error(t, w.AddRow(Row{}))
	flat := r1.flat()
	last := len(flat) - 1
	for flat[last].Column() == numColumns-1 {
		last--
	}
	require.Error(t, w.AddRow(Row{vals: flat[:last+1]}), "row without its last column")
	two := append(r1.Clone().vals, flat[colSpanCount+1:]...)
	require.Error(t, w.AddRow(Row{vals: two}), "row with columns repeated")
	require.NoError(t, w.AddRow(r1))
	require.ErrorIs(t, w.AddRow(r1), ErrOutOfOrder)
	require.ErrorIs(t, w.AddRow(r0), ErrOutOfOrder)
	// Rows and OTLP traces mix in one block.
	id := bytes.Repeat([]byte{0xff}, TraceIDSize)
	require.NoError(t, w.Add(id, b.traces[0]))
	m, err := w.Close(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, m.TotalObjects)
}

func TestRowReaderCorrupt(t *testing.T) {
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 16 << 10
	b := writeTestBlock(t, cfg, 300, false)
	key := DataKey(testTenant, b.meta.BlockID)
	orig := b.be.object(key)
	data := bytes.Clone(orig)
	tail := b.meta.Size - b.meta.FooterSize
	for i := tail / 3; i < tail/2; i++ {
		data[i] ^= 0x5a
	}
	b.be.set(key, data)
	rr, err := Open(b.be, b.meta, nil).Rows(context.Background())
	require.NoError(t, err)
	defer rr.Close()
	var rowErr error
	for rowErr == nil {
		var row Row
		_, row, rowErr = rr.Next()
		if rowErr == nil {
			// A row that decodes must be intact.
			td, err := DecodeRow(row)
			if err == nil {
				require.True(t, proto.Equal(b.traces[indexOf(b.ids, row.TraceID())], td))
			}
		}
	}
	require.NotErrorIs(t, rowErr, io.EOF)
	_, _, again := rr.Next()
	require.Equal(t, rowErr, again)
}

func TestRowsCanceled(t *testing.T) {
	b := writeTestBlock(t, testConfig(t), 50, false)
	ctx, cancel := context.WithCancel(context.Background())
	rr, err := Open(b.be, b.meta, nil).Rows(ctx)
	require.NoError(t, err)
	defer rr.Close()
	cancel()
	_, _, err = rr.Next()
	require.ErrorIs(t, err, context.Canceled)
}

// TestPeekKeepsRow: PeekID reads the next batch and the next row group
// ahead without spoiling the row Next returned last.
func TestPeekKeepsRow(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 8 << 10 // row groups of a few rows: batch and row-group ends
	cfg.PageSizeBytes = 2 << 10
	b := writeTestBlock(t, cfg, 150, true)
	require.Greater(t, b.meta.RowGroups, 5)
	rr, err := Open(b.be, b.meta, nil).Rows(ctx)
	require.NoError(t, err)
	defer rr.Close()
	for i := range b.ids {
		id, row, err := rr.Next()
		require.NoError(t, err)
		require.Equal(t, b.ids[i], id)
		next, err := rr.PeekID()
		if i+1 < len(b.ids) {
			require.NoError(t, err)
			require.Equal(t, b.ids[i+1], next)
		} else {
			require.ErrorIs(t, err, io.EOF)
		}
		require.Equal(t, b.ids[i], row.TraceID(), "row %d after PeekID", i)
		td, err := DecodeRow(row)
		require.NoError(t, err)
		requireProtoEqual(t, b.traces[i], td)
	}
	_, _, err = rr.Next()
	require.ErrorIs(t, err, io.EOF)
}

// TestCompactedRowGroupSize: blocks of level > 0 use the compacted row
// group size.
func TestCompactedRowGroupSize(t *testing.T) {
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 8 << 10
	cfg.CompactedRowGroupSizeBytes = 64 << 10
	rng := seededRand(t, 4)
	ids := genTraceIDs(rng, 300)
	traces := make([]*tracev1.TracesData, len(ids))
	for i, id := range ids {
		traces[i] = genRealisticTrace(rng, id, 1_700_000_000_000_000_000)
	}
	be := newMemBackend()
	l0 := writeBlockOf(t, be, cfg, 0, ids, traces)
	l1 := writeBlockOf(t, be, cfg, 1, ids, traces)
	require.Greater(t, l0.RowGroups, 4*l1.RowGroups)
	cfg.CompactedRowGroupSizeBytes = 0 // same as level 0
	require.Equal(t, l0.RowGroups, writeBlockOf(t, be, cfg, 2, ids, traces).RowGroups)
}
