package block

import (
	"context"
	"testing"

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
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(spans), "ns/span")
	b.ReportMetric(float64(dataBytes)/float64(spans), "disk-B/span")
	b.ReportMetric(float64(protoBytes)/float64(traces*10), "otlp-B/span")
	b.ReportMetric(float64(rowGroups), "rowgroups")
}

// benchBlock writes a 5000-trace block with the default config.
func benchBlock(b *testing.B) (*memBackend, *Meta, [][]byte) {
	b.Helper()
	ids, trs, _ := benchTraces(b, 5000)
	be := newMemBackend()
	w, err := NewWriter(context.Background(), be, testConfig(b), testTenant, uuid.New(), 0, len(ids), b.TempDir())
	require.NoError(b, err)
	for i := range ids {
		require.NoError(b, w.Add(ids[i], trs[i]))
	}
	m, err := w.Close(context.Background())
	require.NoError(b, err)
	return be, m, ids
}

// BenchmarkFindTraceByID measures a warm-cache lookup of a present trace:
// one ranged read of a ~1 MB row group plus decoding one row.
func BenchmarkFindTraceByID(b *testing.B) {
	be, m, ids := benchBlock(b)
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
	var spans int64
	for spans < int64(b.N) {
		err := r.Iterate(ctx, func(_ []byte, tr *tracev1.TracesData) error {
			spans += 10
			return nil
		})
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(spans), "ns/span")
}
