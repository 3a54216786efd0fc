package querier

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/pkg/backend/local"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// replicaIngester is a real gRPC ingester server on 127.0.0.1 answering
// searches and tag calls with the traces it holds, as one replica.
type replicaIngester struct {
	rubatopb.UnimplementedIngesterServer
	traces []string
	// searched, if set, is given every search request.
	searched chan<- *rubatopb.IngesterSearchRequest
}

func (r *replicaIngester) SearchRecent(_ context.Context, req *rubatopb.IngesterSearchRequest) (*rubatopb.SearchResponse, error) {
	if r.searched != nil {
		r.searched <- req
	}
	resp := &rubatopb.SearchResponse{Metrics: &rubatopb.SearchMetrics{InspectedTraces: uint32(len(r.traces))}}
	for _, id := range r.traces {
		resp.Traces = append(resp.Traces, &rubatopb.TraceSearchMetadata{TraceID: id, RootServiceName: "svc-" + id,
			SpanSets: []*rubatopb.SpanSet{{Matched: 1, Spans: []*rubatopb.Span{{SpanID: id + "01", StartTimeUnixNano: 1}}}}})
	}
	return resp, nil
}

func (r *replicaIngester) SearchTags(context.Context, *rubatopb.SearchTagsRequest) (*rubatopb.SearchTagsV2Response, error) {
	resp := &rubatopb.SearchTagsV2Response{Scopes: []*rubatopb.SearchTagsV2Scope{{Name: "span"}}}
	for _, id := range r.traces {
		resp.Scopes[0].Tags = append(resp.Scopes[0].Tags, "tag-"+id)
	}
	return resp, nil
}

func (r *replicaIngester) SearchTagValues(context.Context, *rubatopb.SearchTagValuesRequest) (*rubatopb.SearchTagValuesV2Response, error) {
	resp := &rubatopb.SearchTagValuesV2Response{}
	for _, id := range r.traces {
		resp.TagValues = append(resp.TagValues, &rubatopb.TagValue{Type: "string", Value: "v-" + id})
	}
	return resp, nil
}

// staticRing is a read ring of fixed instances; dskit computes nothing
// here, the test sets MaxErrors as the ring would (replication_factor/2).
type staticRing struct {
	ring.ReadRing
	rs ring.ReplicationSet
}

func (r *staticRing) GetReplicationSetForOperation(ring.Operation) (ring.ReplicationSet, error) {
	return r.rs, nil
}

// replicaCluster starts three ingesters holding traces t1..t3, each on two
// of them (what a quorum write with RF3 guarantees at least), and stops
// those listed in down (their address then refuses connections).
func replicaCluster(t *testing.T, down ...int) *Querier {
	t.Helper()
	var ings []*replicaIngester
	for _, traces := range [][]string{{"t1", "t2"}, {"t2", "t3"}, {"t1", "t3"}} {
		ings = append(ings, &replicaIngester{traces: traces})
	}
	return replicaQuerier(t, ings, down...)
}

// replicaQuerier serves ings on 127.0.0.1 (those listed in down stopped)
// and returns a querier whose ring holds them, MaxErrors 1.
func replicaQuerier(t *testing.T, ings []*replicaIngester, down ...int) *Querier {
	t.Helper()
	var insts []ring.InstanceDesc
	for i, ing := range ings {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := grpc.NewServer()
		rubatopb.RegisterIngesterServer(srv, ing)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		if contains(down, i) {
			srv.Stop()
		}
		insts = append(insts, ring.InstanceDesc{Addr: lis.Addr().String(), State: ring.ACTIVE})
	}
	store, err := local.New(local.Config{Path: t.TempDir()}, log.NewNopLogger())
	require.NoError(t, err)
	pool := client.NewPool(client.PoolConfig{CheckInterval: time.Minute}, nil, log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = pool.Close() })
	cfg := Config{ConcurrentBlockReads: 4, QueryIngestersTimeout: 5 * time.Second,
		Search: SearchExecConfig{ConcurrentJobs: 2, MaxBlocksPerJob: 4, MaxTagBytes: 1 << 20, TagCacheEntries: 16}}
	rr := &staticRing{rs: ring.ReplicationSet{Instances: insts, MaxErrors: 1}}
	return New(cfg, StoreConfig{BlocklistPoll: time.Hour, BlockCacheBytes: 1 << 20}, rr, pool, store, nil, log.NewNopLogger(), prometheus.NewRegistry())
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// TestSearchToleratesReplicaFailures: with any one of three replicas down
// (MaxErrors 1), searches and tag calls give the exact, complete answer,
// copies from two replicas merged into one; with two down, they fail with
// ErrIngestersUnavailable, which the APIs answer 503 / Unavailable.
func TestSearchToleratesReplicaFailures(t *testing.T) {
	ctx := context.Background()
	for _, down := range [][]int{nil, {0}, {1}, {2}} {
		q := replicaCluster(t, down...)
		resp, err := q.Search(ctx, "t", &rubatopb.SearchRequest{Query: "{}", Limit: 20, SpansPerSpanSet: 3}, nil)
		require.NoError(t, err, "down %v", down)
		var ids []string
		for _, tr := range resp.Traces {
			ids = append(ids, tr.TraceID)
			require.Len(t, tr.SpanSets, 1, "replica copies merged")
			require.Len(t, tr.SpanSets[0].Spans, 1, "replica copies of a span returned once")
		}
		sort.Strings(ids)
		require.Equal(t, []string{"t1", "t2", "t3"}, ids, "down %v", down)
		require.Equal(t, resp.Metrics.TotalJobs, resp.Metrics.CompletedJobs)

		tags, err := q.SearchTagsV2(ctx, "t", &rubatopb.SearchTagsRequest{Scope: "span"})
		require.NoError(t, err, "down %v", down)
		require.Len(t, tags.Scopes, 1)
		got := append([]string(nil), tags.Scopes[0].Tags...)
		sort.Strings(got)
		require.Equal(t, []string{"tag-t1", "tag-t2", "tag-t3"}, got, "down %v", down)

		vals, err := q.SearchTagValuesV2(ctx, "t", &rubatopb.SearchTagValuesRequest{TagName: "span.x"})
		require.NoError(t, err, "down %v", down)
		var vs []string
		for _, v := range vals.TagValues {
			vs = append(vs, v.Value)
		}
		sort.Strings(vs)
		require.Equal(t, []string{"v-t1", "v-t2", "v-t3"}, vs, "down %v", down)

		// The frontend's ingester job runs the same way.
		jr, err := q.searchJob(ctx, "t", &rubatopb.SearchJob{Ingesters: true, Request: &rubatopb.SearchRequest{Query: "{}", Limit: 20, SpansPerSpanSet: 3}})
		require.NoError(t, err, "down %v", down)
		require.Len(t, jr.Traces, 3)
	}

	q := replicaCluster(t, 0, 2)
	_, err := q.Search(ctx, "t", &rubatopb.SearchRequest{Query: "{}", Limit: 20, SpansPerSpanSet: 3}, nil)
	require.ErrorIs(t, err, ErrIngestersUnavailable)
	_, err = q.SearchTagsV2(ctx, "t", &rubatopb.SearchTagsRequest{Scope: "span"})
	require.ErrorIs(t, err, ErrIngestersUnavailable)
	_, err = q.SearchTagValuesV2(ctx, "t", &rubatopb.SearchTagValuesRequest{TagName: "span.x"})
	require.ErrorIs(t, err, ErrIngestersUnavailable)
	_, err = q.searchJob(ctx, "t", &rubatopb.SearchJob{Ingesters: true, Request: &rubatopb.SearchRequest{Query: "{}", Limit: 20}})
	require.ErrorIs(t, err, ErrIngestersUnavailable)
	require.Equal(t, codes.Unavailable, status.Code(jobError(err)), "the frontend gets Unavailable")
	require.Equal(t, codes.Unavailable, status.Code((&StreamingServer{}).grpcError(err)))
	rec := httptest.NewRecorder()
	(&SearchAPI{}).fail(rec, err)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	rec = httptest.NewRecorder()
	(&SearchAPI{}).fail(rec, status.Error(codes.Unavailable, "from the frontend"))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "a job's Unavailable is a 503 at the frontend")
}

// TestSearchJobPassesSkipBlocks: the frontend's ingesters job hands its
// skip list to every ingester asked, and a malformed ID in it is the
// request's fault.
func TestSearchJobPassesSkipBlocks(t *testing.T) {
	searched := make(chan *rubatopb.IngesterSearchRequest, 1)
	q := replicaQuerier(t, []*replicaIngester{{traces: []string{"t1"}, searched: searched}})
	id := uuid.New()
	_, err := q.searchJob(context.Background(), "t", &rubatopb.SearchJob{Ingesters: true,
		Request: &rubatopb.SearchRequest{Query: "{}", Limit: 20}, SkipBlocks: [][]byte{id[:]}})
	require.NoError(t, err)
	require.Equal(t, [][]byte{id[:]}, (<-searched).SkipBlocks)

	_, err = q.searchJob(context.Background(), "t", &rubatopb.SearchJob{Ingesters: true,
		Request: &rubatopb.SearchRequest{Query: "{}"}, SkipBlocks: [][]byte{{1, 2, 3}}})
	require.ErrorIs(t, err, ErrInvalidQuery)
}
