package block

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TestFindTraceByIDFuncStops: admit sees every part of a multi-row trace
// before it is joined, may drop spans from it, and a false answer stops
// the read at once: no further row group is fetched and only what was
// admitted is returned. Without the stop, the whole trace comes back.
func TestFindTraceByIDFuncStops(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	cfg.MaxSpansPerRow = 5
	cfg.RowGroupSizeBytes = 2 << 10 // the parts spread over row groups
	cfg.PageSizeBytes = 1 << 10
	rng := seededRand(t, 7)
	ids := genTraceIDs(rng, 3)
	traces := make([]*tracev1.TracesData, len(ids))
	for i, id := range ids {
		traces[i] = genTrickyTrace(rng, id, 60)
	}
	be := newMemBackend()
	m := writeBlockOf(t, be, cfg, 0, ids, traces)
	r := Open(be, m, NewCache(64<<20))
	id, want := ids[1], countTraceSpans(traces[1])

	parts, before := 0, be.getRange
	got, err := r.FindTraceByIDFunc(ctx, id, func(p *tracev1.TracesData) bool { parts++; return true })
	require.NoError(t, err)
	requireProtoEqual(t, traces[1], got)
	require.Greater(t, parts, 3, "a multi-row trace")
	require.Greater(t, be.getRange-before, 2, "spread over row groups")

	// Stop after the second part: two parts' spans, and no row group past
	// the one that holds the second part.
	before = be.getRange
	seen := 0
	got, err = r.FindTraceByIDFunc(ctx, id, func(p *tracev1.TracesData) bool { seen++; return seen < 2 })
	require.NoError(t, err)
	require.Equal(t, 2, seen)
	n := countTraceSpans(got)
	require.Greater(t, n, 0)
	require.LessOrEqual(t, n, 2*cfg.MaxSpansPerRow)
	require.Less(t, n, want)
	require.LessOrEqual(t, be.getRange-before, 2, "the read stopped")

	// admit may drop spans: drop every span, nothing is joined.
	got, err = r.FindTraceByIDFunc(ctx, id, func(p *tracev1.TracesData) bool {
		for _, rs := range p.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				ss.Spans = nil
			}
		}
		return true
	})
	require.NoError(t, err)
	require.Zero(t, countTraceSpans(got))
}
