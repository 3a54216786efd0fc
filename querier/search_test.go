package querier

import (
	"context"
	"flag"
	"testing"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

func testQuerier(t *testing.T, blocks int, tracesPer int) *Querier {
	t.Helper()
	var cfg Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	cfg.Search.MaxBlocksPerJob = 1
	cfg.Search.ConcurrentJobs = 2
	store := inmem.New()
	var bcfg block.Config
	bcfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	q := New(cfg, StoreConfig{BlockCacheBytes: 1 << 20}, nil, nil, store, nil, log.NewNopLogger(), prometheus.NewRegistry())
	ctx := context.Background()
	for b := range blocks {
		w, err := block.NewWriter(ctx, store, bcfg, "t", uuid.New(), 0, tracesPer, t.TempDir())
		require.NoError(t, err)
		for i := range tracesPer {
			id := make([]byte, 16)
			id[0], id[1] = byte(i), byte(b)
			svc := "a"
			if i%2 == 1 {
				svc = "b"
			}
			td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{
				Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{Key: "service.name", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: svc}}}}},
				ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{
					TraceId: id, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, byte(i)}, Name: "root",
					StartTimeUnixNano: uint64(1e18) + uint64(b)*1e9, EndTimeUnixNano: uint64(1e18) + uint64(b)*1e9 + 1e6,
				}}}},
			}}}
			require.NoError(t, w.Add(id, td))
		}
		m, err := w.Close(ctx)
		require.NoError(t, err)
		q.AddBlock(m)
	}
	return q
}

func TestSearcherOverBlocks(t *testing.T) {
	q := testQuerier(t, 4, 10)
	ctx := context.Background()
	var progress []uint32
	resp, err := q.Search(ctx, "t", &rubatopb.SearchRequest{Query: `{ resource.service.name = "b" }`}, func(r *rubatopb.SearchResponse) {
		progress = append(progress, r.Metrics.CompletedJobs)
		require.Equal(t, uint32(4), r.Metrics.TotalJobs)
	})
	require.NoError(t, err)
	require.Len(t, resp.Traces, 20)
	require.Equal(t, []uint32{1, 2, 3, 4}, progress)
	require.Equal(t, uint32(4), resp.Metrics.TotalBlocks)

	resp, err = q.Search(ctx, "t", &rubatopb.SearchRequest{Query: `{}`, Limit: 5}, nil)
	require.NoError(t, err)
	require.Len(t, resp.Traces, 5)

	// Time range: only the block of second 2.
	resp, err = q.Search(ctx, "t", &rubatopb.SearchRequest{Query: `{}`, Start: 1e9 + 2, End: 1e9 + 2}, nil)
	require.NoError(t, err)
	require.Len(t, resp.Traces, 10)
	require.Equal(t, uint32(1), resp.Metrics.TotalBlocks)

	tags, err := q.SearchTagsV2(ctx, "t", &rubatopb.SearchTagsRequest{Scope: "resource"})
	require.NoError(t, err)
	require.Equal(t, []string{"service.name"}, tags.Scopes[0].Tags)
	vals, err := q.SearchTagValuesV2(ctx, "t", &rubatopb.SearchTagValuesRequest{TagName: "resource.service.name"})
	require.NoError(t, err)
	require.Len(t, vals.TagValues, 2)
	vals, err = q.SearchTagValuesV2(ctx, "t", &rubatopb.SearchTagValuesRequest{TagName: "resource.service.name", Query: `{ resource.service.name = "a" }`})
	require.NoError(t, err)
	require.Equal(t, []*rubatopb.TagValue{{Type: "string", Value: "a"}}, vals.TagValues)
	vals, err = q.SearchTagValuesV2(ctx, "t", &rubatopb.SearchTagValuesRequest{TagName: "name"})
	require.NoError(t, err)
	require.Equal(t, []*rubatopb.TagValue{{Type: "string", Value: "root"}}, vals.TagValues)
}

func TestSearcherInvalid(t *testing.T) {
	q := testQuerier(t, 1, 1)
	ctx := context.Background()
	for _, err := range []error{
		func() error { _, err := q.Search(ctx, "t", &rubatopb.SearchRequest{Query: `{ .a = `}, nil); return err }(),
		func() error {
			_, err := q.Search(ctx, "t", &rubatopb.SearchRequest{Query: `{} | rate()`}, nil)
			return err
		}(),
		func() error {
			_, err := q.SearchTagsV2(ctx, "t", &rubatopb.SearchTagsRequest{Scope: "nope"})
			return err
		}(),
		func() error {
			_, err := q.SearchTagsV2(ctx, "t", &rubatopb.SearchTagsRequest{Query: "{"})
			return err
		}(),
		func() error {
			_, err := q.SearchTagValuesV2(ctx, "t", &rubatopb.SearchTagValuesRequest{TagName: "span:bogus"})
			return err
		}(),
	} {
		require.ErrorIs(t, err, ErrInvalidQuery)
	}
}
