package querier

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/golang/protobuf/jsonpb" //nolint:staticcheck // Grafana's Tempo plugin decodes with this exact package.
	protov1 "github.com/golang/protobuf/proto"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// fakeSearcher records requests and answers what the test set. It stands
// in for the engine: these tests are about wire shapes, not search.
type fakeSearcher struct {
	mu        sync.Mutex
	tenants   []string
	searches  []*rubatopb.SearchRequest
	tagReqs   []*rubatopb.SearchTagsRequest
	valueReqs []*rubatopb.SearchTagValuesRequest

	searchResp *rubatopb.SearchResponse
	progress   []*rubatopb.SearchResponse // reported, streamInterval+ apart
	tagsResp   *rubatopb.SearchTagsV2Response
	valuesResp *rubatopb.SearchTagValuesV2Response
	err        error
}

func (f *fakeSearcher) record(tenantID string, fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tenants = append(f.tenants, tenantID)
	fn()
}

func (f *fakeSearcher) Search(ctx context.Context, tenantID string, req *rubatopb.SearchRequest, progress func(*rubatopb.SearchResponse)) (*rubatopb.SearchResponse, error) {
	f.record(tenantID, func() { f.searches = append(f.searches, req) })
	if f.err != nil {
		return nil, f.err
	}
	for _, p := range f.progress {
		if progress != nil {
			progress(p)
			select {
			case <-time.After(2 * streamInterval):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return f.searchResp, nil
}

func (f *fakeSearcher) SearchTagsV2(_ context.Context, tenantID string, req *rubatopb.SearchTagsRequest) (*rubatopb.SearchTagsV2Response, error) {
	f.record(tenantID, func() { f.tagReqs = append(f.tagReqs, req) })
	return f.tagsResp, f.err
}

func (f *fakeSearcher) SearchTagValuesV2(_ context.Context, tenantID string, req *rubatopb.SearchTagValuesRequest) (*rubatopb.SearchTagValuesV2Response, error) {
	f.record(tenantID, func() { f.valueReqs = append(f.valueReqs, req) })
	return f.valuesResp, f.err
}

func (f *fakeSearcher) lastSearch() *rubatopb.SearchRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.searches) == 0 {
		return nil
	}
	return f.searches[len(f.searches)-1]
}

func (f *fakeSearcher) lastTags() *rubatopb.SearchTagsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tagReqs[len(f.tagReqs)-1]
}

func (f *fakeSearcher) lastValues() *rubatopb.SearchTagValuesRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.valueReqs[len(f.valueReqs)-1]
}

// apiServer is the query port as the binary builds it (NewHTTPServer, the
// search API, the fallbacks, StreamingQuerier on the same listener), on a
// real socket on 127.0.0.1.
type apiServer struct {
	addr string
	conn *grpc.ClientConn
}

func (s *apiServer) url(path string) string { return "http://" + s.addr + path }

func defaultSearchConfig() SearchConfig {
	var c FrontendConfig
	c.RegisterFlagsAndApplyDefaults("", newFlagSet())
	return c.Search
}

func startAPI(t *testing.T, s Searcher, cfg SearchConfig, multitenant bool) *apiServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/echo", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "echo") })
	api := NewSearchAPI(s, cfg, tenant.Resolver{MultitenancyEnabled: multitenant}, log.NewNopLogger())
	api.Register(mux)
	// The trace-by-ID routes share the mux in the binary: register them so
	// a conflicting fallback pattern panics here too (never called).
	NewTraceHandler(nil, tenant.Resolver{}, log.NewNopLogger()).Register(mux)
	RegisterFallbacks(mux)
	g := grpc.NewServer()
	api.StreamingServer().Register(g)
	srv := NewHTTPServer(g, mux)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		g.Stop()
	})
	return &apiServer{addr: lis.Addr().String(), conn: conn}
}

// httpGet does a plain HTTP/1.1 GET (Go's default client never uses h2c).
func httpGet(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 1, resp.ProtoMajor, "REST stays on HTTP/1.1")
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// strictDecode decodes body exactly as Grafana's Tempo plugin does:
// golang/protobuf v1.5.4 jsonpb, unknown fields rejected.
func strictDecode(t *testing.T, body string, m protov1.Message) {
	t.Helper()
	m.Reset()
	u := jsonpb.Unmarshaler{AllowUnknownFields: false}
	require.NoError(t, u.Unmarshal(strings.NewReader(body), m), "strict jsonpb decode of %s", body)
}

func strAttr(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

func richSearchResponse(n int) *rubatopb.SearchResponse {
	resp := &rubatopb.SearchResponse{Metrics: &rubatopb.SearchMetrics{
		InspectedTraces: 10, InspectedBytes: 1 << 40, TotalBlocks: 3, CompletedJobs: 4, TotalJobs: 4,
		TotalBlockBytes: 1 << 41, InspectedSpans: 99,
	}}
	for i := 0; i < n; i++ {
		resp.Traces = append(resp.Traces, &rubatopb.TraceSearchMetadata{
			TraceID: fmt.Sprintf("%x", 0xabc0+i), RootServiceName: "svc", RootTraceName: "GET /",
			StartTimeUnixNano: 1700000000123456789, DurationMs: 12,
			SpanSets: []*rubatopb.SpanSet{{
				Matched: 2,
				Spans: []*rubatopb.Span{{
					SpanID: "00000000000000a1", Name: "op", StartTimeUnixNano: 1700000000123456789, DurationNanos: 5_000_000,
					Attributes: []*commonv1.KeyValue{
						strAttr("http.method", "GET"),
						{Key: "n", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: 1 << 40}}},
						{Key: "f", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: 1.5}}},
						{Key: "b", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: true}}},
					},
				}},
				Attributes: []*commonv1.KeyValue{strAttr("by(resource.service.name)", "svc")},
			}},
			ServiceStats: map[string]*rubatopb.ServiceStats{"svc": {SpanCount: 3, ErrorCount: 1}},
		})
	}
	return resp
}
