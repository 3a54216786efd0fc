package search

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/backend/local"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/traceql/traceqltest"
)

// BenchmarkSearchBlock measures the whole per-block path (pushdown, decode,
// Eval, metadata) over one block of 1000 random traces.
func BenchmarkSearchBlock(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	var traces []corpusTrace
	spans := 0
	for range 1000 {
		id := traceqltest.TraceID(r)
		td := traceqltest.Trace(r, id, traceqltest.TraceOptions{})
		spans += CountSpans(td)
		traces = append(traces, corpusTrace{id: id, td: td})
	}
	be, err := local.New(local.Config{Path: b.TempDir()}, log.NewNopLogger())
	require.NoError(b, err)
	m := writeBlocks(b, be, traces, 1, 0)[0]
	cache := block.NewCache(64 << 20)
	for _, c := range []struct{ name, q string }{
		{"match-nothing-dedicated", `{ resource.service.name = "nope" }`},
		{"match-nothing-generic", `{ span.nope = "x" }`},
		{"selective", `{ span.http.status_code = 503 }`},
		{"structural", `{ kind = server } > { status = error }`},
	} {
		q, err := ParseQuery(c.q)
		require.NoError(b, err)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			found := 0
			for b.Loop() {
				found = 0
				_, err := SearchBlock(context.Background(), block.Open(be, m, cache), Request{Query: q, SpansPerSpanSet: 3}, func(*rubatopb.TraceSearchMetadata) bool {
					found++
					return true
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(spans), "ns/span")
			b.ReportMetric(float64(found), "traces")
		})
	}
}

// BenchmarkCombiner merges 100 sources of 20 traces each, half shared.
func BenchmarkCombiner(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		c := NewCombiner(0, 3)
		for s := range 100 {
			for i := range 20 {
				id := fmt.Sprintf("t%d", i)
				if i%2 == 1 {
					id = fmt.Sprintf("s%d-%d", s, i)
				}
				c.Add(md(id, uint64(i), fmt.Sprintf("%016x", s)))
			}
		}
		_ = c.Result()
	}
}
