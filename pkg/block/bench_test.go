package block

import (
	"context"
	"errors"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// benchTraces returns n realistic traces (10 spans each) and their IDs.
func benchTraces(b *testing.B, n int) ([][]byte, []*tracev1.TracesData, int) {
	b.Helper()
	rng := seededRand(b, 1)
	ids := genTraceIDs(rng, n)
	traces := make([]*tracev1.TracesData, n)
	protoBytes := 0
	for i, id := range ids {
		traces[i] = genRealisticTrace(rng, id, 1_700_000_000_000_000_000)
		protoBytes += proto.Size(traces[i])
	}
	return ids, traces, protoBytes
}

// BenchmarkWriter writes blocks of 5000 traces (50,000 spans); one op is
// one span. Reports CPU time per span, bytes per span on disk
// (data.parquet) and the OTLP protobuf size per span for comparison.
func BenchmarkWriter(b *testing.B) {
	const traces = 5000
	ids, trs, protoBytes := benchTraces(b, traces)
	cfg := testConfig(b)
	ctx := context.Background()
	dir := b.TempDir()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU(b)
	var dataBytes, spans int64
	var rowGroups int
	for done := 0; done < b.N; {
		be := newMemBackend()
		w, err := NewWriter(ctx, be, cfg, testTenant, uuid.New(), 0, traces, dir)
		require.NoError(b, err)
		for i := range ids {
			require.NoError(b, w.Add(ids[i], trs[i]))
			done += 10
			if done >= b.N {
				break
			}
		}
		m, err := w.Close(ctx)
		require.NoError(b, err)
		dataBytes += m.Size
		spans += m.TotalSpans
		rowGroups = max(rowGroups, m.RowGroups)
	}
	b.StopTimer()
	cpu.report(spans)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(spans), "ns/span")
	b.ReportMetric(float64(dataBytes)/float64(spans), "disk-B/span")
	b.ReportMetric(float64(protoBytes)/float64(traces*10), "otlp-B/span")
	b.ReportMetric(float64(rowGroups), "rowgroups")
}

// benchBlock writes a 5000-trace block with the default config.
func benchBlock(b *testing.B) (*memBackend, *Meta, [][]byte) {
	return benchBlockOf(b, 5000, 0)
}

// benchBlockOf writes a block of n traces at the given compaction level
// (level > 0: compacted_row_group_size_bytes row groups).
func benchBlockOf(b *testing.B, n int, level uint8) (*memBackend, *Meta, [][]byte) {
	b.Helper()
	ids, trs, _ := benchTraces(b, n)
	be := newMemBackend()
	w, err := NewWriter(context.Background(), be, testConfig(b), testTenant, uuid.New(), level, len(ids), b.TempDir())
	require.NoError(b, err)
	for i := range ids {
		require.NoError(b, w.Add(ids[i], trs[i]))
	}
	m, err := w.Close(context.Background())
	require.NoError(b, err)
	return be, m, ids
}

// BenchmarkFindTraceByID measures a warm-cache lookup of a present trace:
// one ranged read of one row group plus decoding one row, in an ingester
// block (row_group_size_bytes) and in a compacted one
// (compacted_row_group_size_bytes). get-B/op is the row group read.
func BenchmarkFindTraceByID(b *testing.B) {
	for _, bc := range []struct {
		name   string
		traces int
		level  uint8
	}{{"level0", 5000, 0}, {"compacted", 20000, 1}} {
		b.Run(bc.name, func(b *testing.B) {
			be, m, ids := benchBlockOf(b, bc.traces, bc.level)
			r := Open(be, m, NewCache(64<<20))
			ctx := context.Background()
			for _, id := range ids[:1] {
				_, err := r.FindTraceByID(ctx, id)
				require.NoError(b, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				tr, err := r.FindTraceByID(ctx, ids[(i*7919)%len(ids)])
				if err != nil || tr == nil {
					b.Fatal(err, tr == nil)
				}
			}
			b.ReportMetric(float64(m.Size-m.FooterSize)/float64(m.RowGroups), "get-B/op")
		})
	}
}

// BenchmarkFindTraceByIDAbsent measures a lookup the bloom filter rejects.
func BenchmarkFindTraceByIDAbsent(b *testing.B) {
	be, m, _ := benchBlock(b)
	r := Open(be, m, NewCache(64<<20))
	ctx := context.Background()
	rng := seededRand(b, 99)
	probe := make([][]byte, 1024)
	for i := range probe {
		probe[i] = randBytes(rng, TraceIDSize)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_, err := r.FindTraceByID(ctx, probe[i%len(probe)])
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIterate reads the whole block; one op is one span.
func BenchmarkIterate(b *testing.B) {
	be, m, _ := benchBlock(b)
	r := Open(be, m, NewCache(64<<20))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU(b)
	var spans int64
	for spans < int64(b.N) {
		err := r.Iterate(ctx, func(_ []byte, tr *tracev1.TracesData) error {
			spans += 10
			return nil
		})
		require.NoError(b, err)
	}
	cpu.report(spans)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(spans), "ns/span")
}

// BenchmarkCopyRows merges two 5000-trace blocks into one through
// Rows/AddRow, the compactor's path; one op is one span copied (read,
// merged by trace ID, written, uploaded).
func BenchmarkCopyRows(b *testing.B) {
	ctx := context.Background()
	var readers []*Reader
	for seed := range uint64(2) {
		rng := seededRand(b, 10+seed)
		ids := genTraceIDs(rng, 5000)
		be := newMemBackend()
		w, err := NewWriter(ctx, be, testConfig(b), testTenant, uuid.New(), 0, len(ids), b.TempDir())
		require.NoError(b, err)
		for _, id := range ids {
			require.NoError(b, w.Add(id, genRealisticTrace(rng, id, 1_700_000_000_000_000_000)))
		}
		m, err := w.Close(ctx)
		require.NoError(b, err)
		readers = append(readers, Open(be, m, NewCache(64<<20)))
	}
	cfg := testConfig(b)
	dir := b.TempDir()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU(b)
	var spans, inBytes int64
	for spans < int64(b.N) {
		w, err := NewWriter(ctx, newMemBackend(), cfg, testTenant, uuid.New(), 1, 10000, dir)
		require.NoError(b, err)
		require.NoError(b, mergeRows(ctx, w, readers))
		m, err := w.Close(ctx)
		require.NoError(b, err)
		spans += m.TotalSpans
		for _, r := range readers {
			inBytes += r.Meta().Size
		}
	}
	cpu.report(spans)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(spans), "ns/span")
	b.ReportMetric(float64(inBytes)/1e6/b.Elapsed().Seconds(), "in-MB/s")
}

// mergeRows is a minimal two-way compaction: it copies the rows of both
// readers into w in trace-ID order. Test inputs have disjoint IDs.
func mergeRows(ctx context.Context, w *Writer, readers []*Reader) error {
	type head struct {
		rr  *RowReader
		id  []byte
		row Row
	}
	var heads []*head
	for _, r := range readers {
		rr, err := r.Rows(ctx)
		if err != nil {
			return err
		}
		defer rr.Close()
		h := &head{rr: rr}
		if h.id, h.row, err = rr.Next(); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if h.id != nil {
			heads = append(heads, h)
		}
	}
	for len(heads) > 0 {
		min := 0
		for i := range heads {
			if string(heads[i].id) < string(heads[min].id) {
				min = i
			}
		}
		h := heads[min]
		if err := w.AddRow(h.row); err != nil {
			return err
		}
		var err error
		if h.id, h.row, err = h.rr.Next(); errors.Is(err, io.EOF) {
			heads = append(heads[:min], heads[min+1:]...)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// cpuClock measures the process CPU time (user + system, all threads,
// GC included) of a benchmark, which a loaded machine distorts far less
// than wall time.
type cpuClock struct {
	b     *testing.B
	start time.Duration
}

func startCPU(b *testing.B) cpuClock { return cpuClock{b: b, start: processCPU(b)} }

func (c cpuClock) report(spans int64) {
	c.b.ReportMetric(float64((processCPU(c.b)-c.start).Nanoseconds())/float64(spans), "cpu-ns/span")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
