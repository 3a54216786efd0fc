package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
	"github.com/rubatodb/rubato/pkg/block/pq"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// openParquet opens a block's data.parquet with parquet-go's own reader,
// page index included.
func openParquet(t *testing.T, be *memBackend, m *Meta) *parquet.File {
	t.Helper()
	data := be.objects[DataKey(m.TenantID, m.BlockID)]
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	return f
}

// TestFileWriterReadByParquetGo: a block written by the file writer reads
// back through parquet-go's generic row reader (not our column reader)
// as the traces that were written, and its page index is consistent: one
// column-index entry per page, pages contiguous from the chunk start, row
// indexes ascending from 0, TraceID bounds exactly each page's first and
// last ID.
func TestFileWriterReadByParquetGo(t *testing.T) {
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 16 << 10
	cfg.PageSizeBytes = 2 << 10
	tb := writeTestBlock(t, cfg, 400, true)
	require.Greater(t, tb.meta.RowGroups, 3)
	f := openParquet(t, tb.be, tb.meta)

	r := parquet.NewGenericReader[traceRow](f)
	defer r.Close()
	rows := make([]traceRow, 1)
	for i := 0; ; i++ {
		rows[0] = traceRow{}
		n, err := r.Read(rows)
		if n == 0 {
			require.ErrorIs(t, err, io.EOF)
			require.Equal(t, len(tb.ids), i)
			break
		}
		require.Equal(t, tb.ids[i], rows[0].TraceID[:])
		td, err := rows[0].toOTLP()
		require.NoError(t, err)
		requireProtoEqual(t, tb.traces[i], td)
	}

	// Data pages use the column's encoding (PLAIN too for dictionary
	// columns); byte arrays are DELTA_LENGTH_BYTE_ARRAY, as parquet-go's
	// writer made them.
	lay, err := v1Layout()
	require.NoError(t, err)
	require.Equal(t, format.DeltaLengthByteArray, lay.Leaf(colSpan).Encoding())
	for c := range numColumns {
		for e := range pageEncodings(f, c) {
			if e != lay.Leaf(c).Encoding() {
				require.True(t, lay.Leaf(c).Encoding() == format.RLEDictionary && e == format.Plain, "column %d: %v pages", c, e)
			}
		}
	}

	cis, ois := f.ColumnIndexes(), f.OffsetIndexes()
	md := f.Metadata()
	row := 0
	for g, rg := range md.RowGroups {
		for c, cc := range rg.Columns {
			ci, oi := cis[g*numColumns+c], ois[g*numColumns+c]
			require.Len(t, ci.NullPages, len(oi.PageLocations), "rg %d col %d", g, c)
			require.Len(t, ci.MinValues, len(oi.PageLocations))
			pos := cc.MetaData.DataPageOffset
			for p, loc := range oi.PageLocations {
				require.Equal(t, pos, loc.Offset, "rg %d col %d page %d", g, c, p)
				pos += int64(loc.CompressedPageSize)
				if p == 0 {
					require.Zero(t, loc.FirstRowIndex)
				} else {
					require.Greater(t, loc.FirstRowIndex, oi.PageLocations[p-1].FirstRowIndex)
				}
				if c != colTraceID {
					continue
				}
				end := rg.NumRows
				if p+1 < len(oi.PageLocations) {
					end = oi.PageLocations[p+1].FirstRowIndex
				}
				require.Equal(t, tb.ids[row+int(loc.FirstRowIndex)], ci.MinValues[p])
				require.Equal(t, tb.ids[row+int(end)-1], ci.MaxValues[p])
			}
			require.Equal(t, pq.ChunkStart(&cc.MetaData)+cc.MetaData.TotalCompressedSize, pos, "rg %d col %d", g, c)
		}
		row += int(rg.NumRows)
	}
}

// uniqueNameTraces returns n traces whose spans all have distinct names
// of nameLen bytes: a dictionary column with more distinct values than a
// dictionary holds.
func uniqueNameTraces(t *testing.T, seed uint64, n, nameLen int) ([][]byte, []*tracev1.TracesData) {
	rng := seededRand(t, seed)
	ids := genTraceIDs(rng, n)
	traces := make([]*tracev1.TracesData, n)
	for i, id := range ids {
		td := genRealisticTrace(rng, id, 1_700_000_000_000_000_000)
		for _, rs := range td.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					sp.Name = fmt.Sprintf("%0*x", nameLen, rng.Uint64())
				}
			}
		}
		traces[i] = td
	}
	return ids, traces
}

// pageEncodings counts the data pages of column c by encoding, over all row
// groups.
func pageEncodings(f *parquet.File, c int) map[format.Encoding]int32 {
	out := map[format.Encoding]int32{}
	for _, rg := range f.Metadata().RowGroups {
		for _, s := range rg.Columns[c].MetaData.EncodingStats {
			if s.PageType == format.DataPage {
				out[s.Encoding] += s.Count
			}
		}
	}
	return out
}

// TestDictionaryStopsGrowing: past pq's dictionary cap a column chunk's later pages
// are PLAIN, and copying rows between such blocks (RowReader, AddRow)
// carries every kind of page across: dictionary pages into a dictionary
// still growing (indexes remapped) or full (values written out), PLAIN
// pages into a growing dictionary.
func TestDictionaryStopsGrowing(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 1 << 20
	cfg.PageSizeBytes = 4 << 10
	lay, err := v1Layout()
	require.NoError(t, err)
	leaf, ok := schemaV1().Lookup("rs", "ss", "Spans", "Name")
	require.True(t, ok)
	colName := leaf.ColumnIndex
	require.Equal(t, format.RLEDictionary, lay.Leaf(colName).Encoding())

	be := newMemBackend()
	var metas []*Meta
	want := map[string]*tracev1.TracesData{}
	for k := range 2 {
		ids, traces := uniqueNameTraces(t, uint64(10+k), 300, 32)
		metas = append(metas, writeBlockOf(t, be, cfg, 0, ids, traces))
		for i, id := range ids {
			want[string(id)] = traces[i]
		}
		enc := pageEncodings(openParquet(t, be, metas[k]), colName)
		require.Positive(t, enc[format.RLEDictionary])
		require.Positive(t, enc[format.Plain], "the dictionary stopped growing")
	}

	// Big output chunks fill their dictionary while inputs are still on
	// dictionary pages; small ones start a new dictionary while inputs are
	// on PLAIN pages.
	for _, rgSize := range []int{2 << 20, 16 << 10} {
		out := cfg
		out.CompactedRowGroupSizeBytes = rgSize
		w, err := NewWriter(ctx, be, out, testTenant, uuid.New(), 1, len(want), t.TempDir())
		require.NoError(t, err)
		readers := []*Reader{Open(be, metas[0], nil), Open(be, metas[1], nil)}
		require.NoError(t, mergeRows(ctx, w, readers))
		m, err := w.Close(ctx)
		require.NoError(t, err)
		enc := pageEncodings(openParquet(t, be, m), colName)
		require.Positive(t, enc[format.RLEDictionary])
		if rgSize > cfg.RowGroupSizeBytes {
			require.Positive(t, enc[format.Plain])
		}

		ids, trs := collect(t, Open(be, m, nil))
		require.Len(t, ids, len(want))
		for i, id := range ids {
			requireProtoEqual(t, want[string(id)], trs[i])
		}
	}
}

// TestRowsOutliveTheirBatch: rows handed to AddRow stay valid in the writer
// (it collects them before writing) after the RowReader has moved far past
// them and been closed.
func TestRowsOutliveTheirBatch(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 8 << 10
	cfg.PageSizeBytes = 1 << 10
	src := writeTestBlock(t, cfg, 300, true)
	w, err := NewWriter(ctx, src.be, cfg, testTenant, uuid.New(), 1, 300, t.TempDir())
	require.NoError(t, err)
	rr, err := Open(src.be, src.meta, nil).Rows(ctx)
	require.NoError(t, err)
	for {
		_, row, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		require.NoError(t, w.AddRow(row))
	}
	require.NoError(t, rr.Close())
	m, err := w.Close(ctx)
	require.NoError(t, err)
	ids, trs := collect(t, Open(src.be, m, nil))
	require.Equal(t, src.ids, ids)
	for i := range ids {
		requireProtoEqual(t, src.traces[i], trs[i])
	}
}
