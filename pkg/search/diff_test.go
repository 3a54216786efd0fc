package search

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rubatodb/rubato/integration/minio"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/local"
	"github.com/rubatodb/rubato/pkg/backend/s3"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/traceql"
	"github.com/rubatodb/rubato/pkg/traceql/traceqltest"
)

var diffQueries = flag.Int("search.diff-queries", 200, "random queries in TestDifferential")

type corpusTrace struct {
	id [16]byte
	td *tracev1.TracesData
}

// writeBlocks writes the traces (sorted by ID) into nBlocks blocks on be,
// round robin; every dupEvery-th trace is also written to the next block, so
// the same trace is found in two blocks.
func writeBlocks(t testing.TB, be backend.Backend, traces []corpusTrace, nBlocks, dupEvery int) []*block.Meta {
	t.Helper()
	ctx := context.Background()
	var cfg block.Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	per := make([][]corpusTrace, nBlocks)
	for i, tr := range traces {
		per[i%nBlocks] = append(per[i%nBlocks], tr)
		if dupEvery > 0 && i%dupEvery == 0 {
			per[(i+1)%nBlocks] = append(per[(i+1)%nBlocks], tr)
		}
	}
	var metas []*block.Meta
	for _, ts := range per {
		slices.SortFunc(ts, func(a, b corpusTrace) int { return bytes.Compare(a.id[:], b.id[:]) })
		w, err := block.NewWriter(ctx, be, cfg, "t", uuid.New(), 0, len(ts), t.TempDir())
		require.NoError(t, err)
		for _, tr := range ts {
			require.NoError(t, w.Add(tr.id[:], tr.td))
		}
		m, err := w.Close(ctx)
		require.NoError(t, err)
		metas = append(metas, m)
	}
	return metas
}

// toV1 turns a v2 block into the v1 block an older writer left: same data
// and bloom shards, no search index.
func toV1(t testing.TB, be backend.Backend, m *block.Meta) *block.Meta {
	t.Helper()
	ctx := context.Background()
	v1 := *m
	v1.Version, v1.SearchIndexSize = block.VersionV1, 0
	data, err := v1.Marshal()
	require.NoError(t, err)
	require.NoError(t, be.Delete(ctx, block.SearchIndexKey(v1.TenantID, v1.BlockID)))
	require.NoError(t, be.Put(ctx, block.MetaKey(v1.TenantID, v1.BlockID), bytes.NewReader(data), int64(len(data))))
	return &v1
}

// canon renders a response in a canonical form: traces by ID, spansets by
// their attributes, spans by ID.
func canon(traces []*rubatopb.TraceSearchMetadata) string {
	var lines []string
	for _, t := range traces {
		var sets []string
		for _, ss := range t.SpanSets {
			var spans []string
			for _, s := range ss.Spans {
				var attrs []string
				for _, a := range s.Attributes {
					attrs = append(attrs, a.Key+"="+protojson.Format(a.Value))
				}
				sort.Strings(attrs)
				spans = append(spans, fmt.Sprintf("%s %s %d %d %v", s.SpanID, s.Name, s.StartTimeUnixNano, s.DurationNanos, attrs))
			}
			sort.Strings(spans)
			var attrs []string
			for _, a := range ss.Attributes {
				attrs = append(attrs, a.Key+"="+protojson.Format(a.Value))
			}
			sets = append(sets, fmt.Sprintf("matched=%d attrs=%v spans=%v", ss.Matched, attrs, spans))
		}
		sort.Strings(sets)
		first := ""
		if t.SpanSet != nil {
			first = fmt.Sprint(t.SpanSet == t.SpanSets[0])
		}
		lines = append(lines, fmt.Sprintf("%s root=%q/%q start=%d dur=%d first=%s sets=%v",
			t.TraceID, t.RootServiceName, t.RootTraceName, t.StartTimeUnixNano, t.DurationMs, first, sets))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestDifferential runs random TraceQL queries over random traces written
// into real blocks on disk, through the full path (jobs over blocks,
// candidates from the block, Eval, combine), and compares with a brute
// force: Eval over every trace as generated, no block and no pruning.
// Results must have the same trace IDs, trace fields and spansets.
func TestDifferential(t *testing.T) {
	be, err := local.New(local.Config{Path: t.TempDir()}, log.NewNopLogger())
	require.NoError(t, err)
	differential(t, be, *diffQueries)
}

// TestDifferentialMinIO is TestDifferential with the blocks in a real MinIO
// (skipped without Docker and the test image, failed under CI=true).
func TestDifferentialMinIO(t *testing.T) {
	srv := minio.Start(t)
	var cfg s3.Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	cfg.Bucket = srv.NewBucket(t, "diff")
	cfg.Endpoint, cfg.AccessKey, cfg.Insecure, cfg.Region = srv.Endpoint, srv.AccessKey, true, "us-east-1"
	require.NoError(t, cfg.SecretKey.Set(srv.SecretKey))
	be, err := s3.New(cfg, log.NewNopLogger(), nil)
	require.NoError(t, err)
	differential(t, be, *diffQueries/4)
}

func differential(t *testing.T, be backend.Backend, queries int) {
	r := rand.New(rand.NewSource(20261202))
	var traces []corpusTrace
	for range 150 {
		id := traceqltest.TraceID(r)
		traces = append(traces, corpusTrace{id: id, td: traceqltest.Trace(r, id, traceqltest.TraceOptions{})})
	}
	metas := writeBlocks(t, be, traces, 4, 7)
	// Blocks 0 and 1 as an older writer left them: format v1, no search
	// index; 2 and 3 are v2.
	for i := range 2 {
		metas[i] = toV1(t, be, metas[i])
	}
	byID := map[uuid.UUID]*block.Meta{}
	for _, m := range metas {
		byID[m.BlockID] = m
	}
	cache := block.NewCache(64 << 20)
	exec := func(ctx context.Context, j Job) (*rubatopb.SearchResponse, error) {
		q, err := ParseQuery(j.Query)
		if err != nil {
			return nil, err
		}
		var rs []*block.Reader
		for _, id := range j.Blocks {
			rs = append(rs, block.Open(be, byID[id], cache))
		}
		return SearchBlocks(ctx, rs, Request{Query: q, Start: j.Start, End: j.End, SpansPerSpanSet: int(j.SpansPerSpanSet)}, int(j.Limit))
	}

	shapes := map[string]int{}
	matchedQueries, evalErrors := 0, 0
	for i := 0; i < queries; i++ {
		qs, shape := traceqltest.Query(r)
		shapes[shape]++
		q, err := traceql.Parse(qs)
		require.NoError(t, err, qs)

		// Brute force.
		var want []*rubatopb.TraceSearchMetadata
		var wantErr error
		for _, tr := range traces {
			md, err := Match(q, tr.id[:], tr.td, 0)
			if err != nil {
				wantErr = err
				break
			}
			if md != nil {
				want = append(want, md)
			}
		}

		req := &rubatopb.SearchRequest{Query: qs}
		jobs := Plan("t", req, nil, metas, ShardConfig{TargetBytesPerJob: 1, MaxBlocksPerJob: 2})
		got, err := Run(context.Background(), jobs, exec, 2, 0, 0, nil)
		if wantErr != nil {
			evalErrors++
			require.Error(t, err, "query %q: brute force failed with %v", qs, wantErr)
			require.True(t, errors.Is(err, traceql.ErrSpansetOperationMultiple) == errors.Is(wantErr, traceql.ErrSpansetOperationMultiple), "%v vs %v", err, wantErr)
			continue
		}
		require.NoError(t, err, qs)
		if w, g := canon(want), canon(got.Traces); w != g {
			t.Fatalf("query %q (shape %s): results differ\n%s", qs, shape, lineDiff(w, g))
		}
		if len(want) > 0 {
			matchedQueries++
		}

		// With a limit: a subset of the right size, each result exact.
		if len(want) > 3 {
			got, err := Run(context.Background(), Plan("t", &rubatopb.SearchRequest{Query: qs, Limit: 3}, nil, metas, ShardConfig{}), exec, 2, 3, 0, nil)
			require.NoError(t, err)
			require.Len(t, got.Traces, 3, qs)
			wantByID := map[string]*rubatopb.TraceSearchMetadata{}
			for _, w := range want {
				wantByID[w.TraceID] = w
			}
			for _, g := range got.Traces {
				require.NotNil(t, wantByID[g.TraceID], "query %q: %s is not a match", qs, g.TraceID)
				require.Equal(t, canon([]*rubatopb.TraceSearchMetadata{wantByID[g.TraceID]}), canon([]*rubatopb.TraceSearchMetadata{g}))
			}
		}
	}
	t.Logf("%d queries over %d traces in %d blocks (2 v1, 2 v2): %d shapes, %d queries with matches, %d evaluation errors (both sides)",
		queries, len(traces), len(metas), len(shapes), matchedQueries, evalErrors)
	if queries >= 200 {
		require.GreaterOrEqual(t, len(shapes), len(traceqltest.Shapes())*3/4, "shape coverage")
	}
	require.Greater(t, matchedQueries, queries/4, "too few queries match anything: the test would be weak")
}

// lineDiff lists the first lines only in want or only in got.
func lineDiff(want, got string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	w, g := in(want), in(got)
	var out []string
	for l := range w {
		if !g[l] && len(out) < 4 {
			out = append(out, "- "+l)
		}
	}
	for l := range g {
		if !w[l] && len(out) < 8 {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
