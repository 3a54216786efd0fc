package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// recvAll reads a server stream to its end.
func recvAll[T any](t *testing.T, s grpc.ServerStreamingClient[T]) ([]*T, error) {
	t.Helper()
	var out []*T
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

// TestStreamingSearchOverHTTPPort dials StreamingQuerier/Search with a real
// gRPC client at the HTTP port (h2c), as Grafana does, and checks every
// message carries metrics and the stream ends with a complete message.
func TestStreamingSearchOverHTTPPort(t *testing.T) {
	final := richSearchResponse(3)
	final.Metrics.CompletedJobs, final.Metrics.TotalJobs = 4, 4
	p1 := richSearchResponse(1)
	p1.Metrics.CompletedJobs, p1.Metrics.TotalJobs = 1, 4
	p2 := richSearchResponse(2)
	p2.Metrics = nil // a searcher that reports no metrics still yields them
	f := &fakeSearcher{searchResp: final, progress: []*rubatopb.SearchResponse{p1, p2}}
	s := startAPI(t, f, defaultSearchConfig(), true)

	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "team-a")
	now := uint32(time.Now().Unix())
	// Grafana's health check: {} over the last 15 minutes, limit 1.
	stream, err := rubatopb.NewStreamingQuerierClient(s.conn).Search(ctx, &rubatopb.SearchRequest{Query: "{}", Start: now - 900, End: now, Limit: 1})
	require.NoError(t, err)
	msgs, err := recvAll(t, stream)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(msgs), 3, "two progress messages and the final one")
	for i, m := range msgs {
		require.NotNil(t, m.Metrics, "message %d has metrics", i)
	}
	require.Equal(t, uint32(1), msgs[0].Metrics.CompletedJobs)
	require.Equal(t, uint32(4), msgs[0].Metrics.TotalJobs)
	for _, m := range msgs[:len(msgs)-1] {
		// Grafana keeps the first copy of a trace it is sent: a trace in a
		// progress message, still partial, would never be corrected.
		require.Empty(t, m.Traces, "progress messages carry metrics only")
	}
	last := msgs[len(msgs)-1]
	require.Len(t, last.Traces, 1, "the searcher found 3; the request's limit is 1")
	require.Equal(t, last.Metrics.TotalJobs, last.Metrics.CompletedJobs)
	require.NotNil(t, last.Traces[0].SpanSet)
	req := f.lastSearch()
	require.Equal(t, uint32(1), req.Limit)
	require.Equal(t, uint32(3), req.SpansPerSpanSet, "defaults apply over gRPC too")
	require.Equal(t, "team-a", f.tenants[len(f.tenants)-1])

	// No tenant in multitenant mode.
	stream, err = rubatopb.NewStreamingQuerierClient(s.conn).Search(context.Background(), &rubatopb.SearchRequest{Query: "{}"})
	require.NoError(t, err)
	_, err = recvAll(t, stream)
	require.Equal(t, codes.Unauthenticated, status.Code(err))
}

func TestStreamingSearchFinalOnly(t *testing.T) {
	// A searcher reporting no progress: exactly one message, complete.
	f := &fakeSearcher{searchResp: &rubatopb.SearchResponse{}}
	s := startAPI(t, f, defaultSearchConfig(), false)
	c := rubatopb.NewStreamingQuerierClient(s.conn)
	stream, err := c.Search(context.Background(), &rubatopb.SearchRequest{Tags: map[string]string{"service.name": "api"}, MinDurationMs: 5})
	require.NoError(t, err)
	msgs, err := recvAll(t, stream)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, uint32(1), msgs[0].Metrics.TotalJobs)
	require.Equal(t, uint32(1), msgs[0].Metrics.CompletedJobs)
	require.Equal(t, `{ resource.service.name =~ ".*api.*" } && { traceDuration >= 5ms }`, f.lastSearch().Query, "legacy gRPC search becomes TraceQL")
	require.Nil(t, f.lastSearch().Tags)

	for _, tc := range []struct {
		req  *rubatopb.SearchRequest
		err  error
		code codes.Code
		msg  string
	}{
		{&rubatopb.SearchRequest{Query: "{ .a = ", Limit: 1}, nil, codes.InvalidArgument, "invalid TraceQL query: parse error at line 1, col"},
		{&rubatopb.SearchRequest{Query: "{}", Limit: 1}, fmt.Errorf("%w: too many conditions", ErrInvalidQuery), codes.InvalidArgument, "too many conditions"},
		{&rubatopb.SearchRequest{Query: "{}", SpansPerSpanSet: 1000}, nil, codes.InvalidArgument, "spans per span set exceeds 100"},
		{&rubatopb.SearchRequest{Query: "{}", Start: 10, End: 5}, nil, codes.InvalidArgument, "start must be before end"},
		{&rubatopb.SearchRequest{Query: "{}", Tags: map[string]string{"a": "b"}}, nil, codes.InvalidArgument, "can't specify tags"},
		{&rubatopb.SearchRequest{Query: "{}"}, errors.New("backend down"), codes.Internal, "backend down"},
	} {
		f.err = tc.err
		stream, err := c.Search(context.Background(), tc.req)
		require.NoError(t, err)
		_, err = recvAll(t, stream)
		require.Equal(t, tc.code, status.Code(err), "%v", err)
		require.Contains(t, status.Convert(err).Message(), tc.msg)
	}
}

func TestStreamingTagsAndValues(t *testing.T) {
	f := &fakeSearcher{
		tagsResp: &rubatopb.SearchTagsV2Response{Scopes: []*rubatopb.SearchTagsV2Scope{{Name: ScopeSpan, Tags: []string{"b", "a"}}}},
		valuesResp: &rubatopb.SearchTagValuesV2Response{TagValues: []*rubatopb.TagValue{
			{Type: "string", Value: "x"}, {Type: "int", Value: "1"},
		}},
	}
	s := startAPI(t, f, defaultSearchConfig(), false)
	c := rubatopb.NewStreamingQuerierClient(s.conn)
	ctx := context.Background()

	tv2, err := c.SearchTagsV2(ctx, &rubatopb.SearchTagsRequest{})
	require.NoError(t, err)
	m2, err := recvAll(t, tv2)
	require.NoError(t, err)
	require.Len(t, m2, 1)
	require.NotNil(t, m2[0].Metrics)
	require.Equal(t, m2[0].Metrics.TotalJobs, m2[0].Metrics.CompletedJobs)
	require.Len(t, m2[0].Scopes, 2, "span and intrinsic")

	tv1, err := c.SearchTags(ctx, &rubatopb.SearchTagsRequest{Scope: ScopeSpan})
	require.NoError(t, err)
	m1, err := recvAll(t, tv1)
	require.NoError(t, err)
	require.Len(t, m1, 1)
	require.Equal(t, []string{"a", "b"}, m1[0].TagNames)

	vv2, err := c.SearchTagValuesV2(ctx, &rubatopb.SearchTagValuesRequest{TagName: "span.k", Query: "{}"})
	require.NoError(t, err)
	v2, err := recvAll(t, vv2)
	require.NoError(t, err)
	require.Len(t, v2, 1)
	require.Equal(t, []string{"string:x", "int:1"}, typed(v2[0].TagValues))
	require.NotNil(t, v2[0].Metrics)

	vv1, err := c.SearchTagValues(ctx, &rubatopb.SearchTagValuesRequest{TagName: "k"})
	require.NoError(t, err)
	v1, err := recvAll(t, vv1)
	require.NoError(t, err)
	require.Equal(t, []string{"x", "1"}, v1[0].TagValues)
	require.Equal(t, ".k", f.lastValues().TagName)

	bad, err := c.SearchTagsV2(ctx, &rubatopb.SearchTagsRequest{Scope: "nope"})
	require.NoError(t, err)
	_, err = recvAll(t, bad)
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	mq, err := c.MetricsQueryRange(ctx, &rubatopb.QueryRangeRequest{Query: "{} | rate()"})
	require.NoError(t, err)
	_, err = recvAll(t, mq)
	require.Equal(t, codes.Unimplemented, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "TraceQL metrics are not implemented")
	mi, err := c.MetricsQueryInstant(ctx, &rubatopb.QueryInstantRequest{Query: "{} | rate()"})
	require.NoError(t, err)
	_, err = recvAll(t, mi)
	require.Equal(t, codes.Unimplemented, status.Code(err))
}

func TestStreamingWithoutSearcher(t *testing.T) {
	s := startAPI(t, nil, defaultSearchConfig(), false)
	stream, err := rubatopb.NewStreamingQuerierClient(s.conn).Search(context.Background(), &rubatopb.SearchRequest{Query: "{}"})
	require.NoError(t, err)
	_, err = recvAll(t, stream)
	require.Equal(t, codes.Unimplemented, status.Code(err))
	require.Contains(t, status.Convert(err).Message(), "search is not implemented")
}

// TestStreamingSearchSplitsBigMessages: a final answer bigger than the
// message bound arrives in several messages, each with metrics, whose
// traces together are all the results.
func TestStreamingSearchSplitsBigMessages(t *testing.T) {
	old := maxStreamMessageBytes
	maxStreamMessageBytes = 2048
	t.Cleanup(func() { maxStreamMessageBytes = old })
	final := richSearchResponse(30)
	for i, tr := range final.Traces {
		tr.TraceID = fmt.Sprintf("%032x", i)
	}
	f := &fakeSearcher{searchResp: final}
	s := startAPI(t, f, defaultSearchConfig(), false)
	stream, err := rubatopb.NewStreamingQuerierClient(s.conn).Search(context.Background(), &rubatopb.SearchRequest{Query: "{}", Limit: 30})
	require.NoError(t, err)
	msgs, err := recvAll(t, stream)
	require.NoError(t, err)
	require.Greater(t, len(msgs), 3)
	ids := map[string]bool{}
	for _, m := range msgs {
		require.NotNil(t, m.Metrics)
		require.LessOrEqual(t, proto.Size(m), 2048+512, "bounded (one trace may overflow by itself)")
		for _, tr := range m.Traces {
			ids[tr.TraceID] = true
		}
	}
	require.Len(t, ids, 30)
	last := msgs[len(msgs)-1]
	require.Equal(t, last.Metrics.TotalJobs, last.Metrics.CompletedJobs)
}
