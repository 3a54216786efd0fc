package block

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/google/uuid"
	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// filterOTLP is the reference: td without the spans keep rejects (in row
// order), empty ScopeSpans and ResourceSpans removed, as the compactor's
// filterSpans does.
func filterOTLP(td *tracev1.TracesData, keep []bool) *tracev1.TracesData {
	return filterOTLPInPlace(proto.Clone(td).(*tracev1.TracesData), keep)
}

func filterOTLPInPlace(td *tracev1.TracesData, keep []bool) *tracev1.TracesData {
	k := 0
	var rsOut []*tracev1.ResourceSpans
	for _, rs := range td.ResourceSpans {
		var ssOut []*tracev1.ScopeSpans
		for _, ss := range rs.ScopeSpans {
			var spOut []*tracev1.Span
			for _, sp := range ss.Spans {
				if keep[k] {
					spOut = append(spOut, sp)
				}
				k++
			}
			if len(spOut) > 0 {
				ss.Spans = spOut
				ssOut = append(ssOut, ss)
			}
		}
		if len(ssOut) > 0 {
			rs.ScopeSpans = ssOut
			rsOut = append(rsOut, rs)
		}
	}
	td.ResourceSpans = rsOut
	return td
}

// readRawRows reads a block's rows with parquet-go's generic reader.
func readRawRows(t *testing.T, be *memBackend, m *Meta) []traceRow {
	t.Helper()
	r := parquet.NewGenericReader[traceRow](openParquet(t, be, m))
	defer r.Close()
	var out []traceRow
	buf := make([]traceRow, 1)
	for {
		buf[0] = traceRow{}
		n, err := r.Read(buf)
		if n == 1 {
			out = append(out, buf[0])
		}
		if errors.Is(err, io.EOF) || n == 0 {
			return out
		}
		require.NoError(t, err)
	}
}

// TestAddPartRowSpansMatchesOTLPFilter: dropping spans from a row as cells
// writes exactly the row (every column, derived ones included) that
// filtering the decoded trace and adding it as a part writes: over traces
// with empty lists at every level, several resources and scopes, parents
// inside and outside the row, exotic values, and random sets of spans kept
// (the root dropped, all but one, about half).
func TestAddPartRowSpansMatchesOTLPFilter(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.MaxSpansPerRow = 0
	cfg.PageSizeBytes = 1 << 10
	rng := seededRand(t, 77)
	var traces []*tracev1.TracesData
	for _, td := range shredCases(t) {
		if countSpans(td) > 0 {
			traces = append(traces, td)
		}
	}
	ids := genTraceIDs(rng, 60)
	for i := range 50 {
		traces = append(traces, genRealisticTrace(rng, ids[i], 1_700_000_000_000_000_000+uint64(i)))
	}
	traces = append(traces, genExoticTrace(ids[50]))
	ids = genTraceIDs(rng, len(traces))
	be := newMemBackend()
	src := writeBlockOf(t, be, cfg, 0, ids, traces)
	first := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{
		Spans: []*tracev1.Span{{SpanId: []byte("firstpt!"), Name: "first part", StartTimeUnixNano: 5, EndTimeUnixNano: 9}},
	}}}}}

	for round := range 6 {
		wa, err := NewWriter(ctx, be, cfg, testTenant, uuid.New(), 1, len(ids), t.TempDir())
		require.NoError(t, err)
		wb, err := NewWriter(ctx, be, cfg, testTenant, uuid.New(), 1, len(ids), t.TempDir())
		require.NoError(t, err)
		rr, err := Open(be, src, nil).Rows(ctx)
		require.NoError(t, err)
		var want []*tracev1.TracesData
		for i := 0; ; i++ {
			id, row, err := rr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			n := row.SpanCount()
			keep := make([]bool, n)
			switch round {
			case 0: // all but the first span (often the root)
				for k := 1; k < n; k++ {
					keep[k] = true
				}
			case 1: // the last one only
				keep[n-1] = true
			default:
				for k := range keep {
					keep[k] = rng.IntN(2) == 0
				}
			}
			if n == 1 || !bytes.Contains(boolBytes(keep), []byte{1}) {
				keep[rng.IntN(n)] = true
			}
			part := filterOTLP(traces[i], keep)
			require.NoError(t, wa.Add(id, first))
			require.NoError(t, wa.AddPartRowSpans(row, keep))
			require.NoError(t, wb.Add(id, first))
			require.NoError(t, wb.AddPart(id, part))
			want = append(want, part)
		}
		require.NoError(t, rr.Close())
		ma, err := wa.Close(ctx)
		require.NoError(t, err)
		mb, err := wb.Close(ctx)
		require.NoError(t, err)
		require.Equal(t, mb.TotalSpans, ma.TotalSpans)
		require.Equal(t, mb.StartTime, ma.StartTime)
		require.Equal(t, mb.EndTime, ma.EndTime)

		rowsA, rowsB := readRawRows(t, be, ma), readRawRows(t, be, mb)
		require.Len(t, rowsA, 2*len(ids))
		require.Equal(t, rowsB, rowsA, "round %d", round)
		gotIDs, got := collect(t, Open(be, ma, nil))
		require.Equal(t, ids, gotIDs)
		for i := range got {
			td := proto.Clone(first).(*tracev1.TracesData)
			requireProtoEqual(t, joinParts(td, want[i]), got[i])
		}
	}
}

// joinParts joins two parts as readers do (parts.go).
func joinParts(a, b *tracev1.TracesData) *tracev1.TracesData {
	joinPart(a, proto.Clone(b).(*tracev1.TracesData))
	return a
}

func boolBytes(bs []bool) []byte {
	out := make([]byte, len(bs))
	for i, b := range bs {
		if b {
			out[i] = 1
		}
	}
	return out
}

// FuzzCorruptPagesCopy: whatever bytes the data pages of a block hold, the
// row reader, copying rows (AddRow), dropping spans from them
// (AddPartRowSpans) and decoding them return errors, never panic. Each
// input is a list of (offset, xor) edits of the page bytes; the footer is
// kept, so that the edits reach page decoding and row splitting.
func FuzzCorruptPagesCopy(f *testing.F) {
	cfg := testConfig(f)
	cfg.RowGroupSizeBytes = 4 << 10
	cfg.PageSizeBytes = 1 << 10
	b := writeTestBlock(f, cfg, 12, true)
	key := DataKey(testTenant, b.meta.BlockID)
	orig := b.be.object(key)
	pages := int(b.meta.Size - b.meta.FooterSize)
	f.Add([]byte{0, 40, 0xff})
	f.Add([]byte{1, 0, 0x01, 2, 0, 0x80, 3, 7, 0x10})
	f.Add([]byte{0, 4, 0x5a, 0, 5, 0x5a, 0, 6, 0x5a})
	f.Fuzz(func(t *testing.T, edits []byte) {
		data := bytes.Clone(orig)
		for i := 0; i+2 < len(edits); i += 3 {
			off := 4 + (int(edits[i])<<8|int(edits[i+1]))%(pages-4)
			data[off] ^= edits[i+2]
		}
		be := newMemBackend()
		for k, v := range b.be.objects {
			be.objects[k] = v
		}
		be.objects[key] = data
		ctx := context.Background()
		rr, err := Open(be, b.meta, nil).Rows(ctx)
		if err != nil {
			return
		}
		defer rr.Close()
		w, err := NewWriter(ctx, be, cfg, testTenant, uuid.New(), 1, 16, t.TempDir())
		require.NoError(t, err)
		defer w.Abort()
		for {
			_, row, err := rr.Next()
			if err != nil {
				return
			}
			_, _ = DecodeRow(row)
			if w.AddRow(row) != nil {
				return
			}
			var keep []bool
			row.SpanKeys(func([]byte, int32) { keep = append(keep, len(keep)%2 == 0) })
			if len(keep) > 1 && w.AddPartRowSpans(row, keep) != nil {
				return
			}
		}
	})
}

// BenchmarkAddPartRowSpans: a further part written from a row with every
// other span dropped, as cells (the compactor's path) and, for the ratio
// in one run, by decoding, filtering and adding the trace. Each row is
// first copied whole (AddRow) so the part has a trace to continue; one op
// is one span of the source block.
func BenchmarkAddPartRowSpans(b *testing.B) {
	ctx := context.Background()
	cfg := testConfig(b)
	rng := seededRand(b, 21)
	ids := genTraceIDs(rng, 2000)
	traces := make([]*tracev1.TracesData, len(ids))
	for i, id := range ids {
		traces[i] = genRealisticTrace(rng, id, 1_700_000_000_000_000_000)
	}
	be := newMemBackend()
	src := writeBlockOf(b, be, cfg, 0, ids, traces)
	for _, mode := range []string{"cells", "decode"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			b.ReportAllocs()
			cpu := startCPU(b)
			var spans int64
			for spans < int64(b.N) {
				w, err := NewWriter(ctx, newMemBackend(), cfg, testTenant, uuid.New(), 1, len(ids), dir)
				require.NoError(b, err)
				rr, err := Open(be, src, nil).Rows(ctx)
				require.NoError(b, err)
				for {
					id, row, err := rr.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					require.NoError(b, err)
					keep := make([]bool, row.SpanCount())
					for k := range keep {
						keep[k] = k%2 == 0
					}
					require.NoError(b, w.AddRow(row))
					if mode == "cells" {
						require.NoError(b, w.AddPartRowSpans(row, keep))
					} else {
						td, err := DecodeRow(row)
						require.NoError(b, err)
						require.NoError(b, w.AddPart(id, filterOTLPInPlace(td, keep)))
					}
					spans += int64(len(keep))
				}
				require.NoError(b, rr.Close())
				_, err = w.Close(ctx)
				require.NoError(b, err)
			}
			cpu.report(spans)
		})
	}
}
