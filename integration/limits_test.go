package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// limitsOverrides: a bucket of 100 kB per tenant refilled at 1 byte/s (a
// request over 100 kB is always refused, smaller ones pass for the whole
// test), 4 live traces per tenant, 3000 bytes per trace.
const limitsOverrides = `  defaults:
    ingestion:
      rate_limit_bytes: 1
      burst_size_bytes: 100000
      max_traces_per_user: 4
    global:
      max_bytes_per_trace: 3000`

// traceSpec shapes one trace of a limits request.
type traceSpec struct {
	spans     int
	attrBytes int // size of a string attribute on every span
}

// limitsRequest builds one request holding a trace per spec, fresh IDs.
func limitsRequest(specs ...traceSpec) (*coltracepb.ExportTraceServiceRequest, [][]byte) {
	ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "limits"}}
	ids := make([][]byte, len(specs))
	now := uint64(time.Now().UnixNano())
	for i, sp := range specs {
		ids[i] = randBytes(16)
		for j := 0; j < sp.spans; j++ {
			ss.Spans = append(ss.Spans, &tracev1.Span{
				TraceId: ids[i], SpanId: randBytes(8), Name: fmt.Sprintf("op-%d", j), StartTimeUnixNano: now, EndTimeUnixNano: now + 1000,
				Attributes: []*commonv1.KeyValue{{Key: "pad", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: strings.Repeat("x", sp.attrBytes)}}}},
			})
		}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{Key: "service.name",
			Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "limits"}}}}},
		ScopeSpans: []*tracev1.ScopeSpans{ss},
	}}}, ids
}

// requireStored checks trace id reads back with exactly the request's spans.
func requireStored(t testing.TB, s *server, tenantID string, req *coltracepb.ExportTraceServiceRequest, id []byte) {
	t.Helper()
	got := s.traceByID(t, id, tenantID)
	require.NotNil(t, got, "trace %x not stored", id)
	want := map[string]*tracev1.Span{}
	for _, sp := range asAnswered(req.ResourceSpans[0]).ScopeSpans[0].Spans {
		if string(sp.TraceId) == string(id) {
			want[string(sp.SpanId)] = sp
		}
	}
	require.Equal(t, len(want), countSpans(got))
	for _, rs := range got.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				require.True(t, proto.Equal(want[string(sp.SpanId)], sp), "span %x differs", sp.SpanId)
			}
		}
	}
}

// exportHTTP posts req as OTLP/HTTP protobuf; it returns the status code and
// the decoded body: an ExportTraceServiceResponse on 200, a Status else.
func exportHTTP(t testing.TB, s *server, tenantID string, req *coltracepb.ExportTraceServiceRequest) (int, *coltracepb.ExportTraceServiceResponse, *rpcstatus.Status) {
	t.Helper()
	return exportHTTPHeader(t, s, tenantID, req, nil)
}

// exportHTTPHeader is exportHTTP that also hands the response headers to
// checkHeader.
func exportHTTPHeader(t testing.TB, s *server, tenantID string, req *coltracepb.ExportTraceServiceRequest, checkHeader func(http.Header)) (int, *coltracepb.ExportTraceServiceResponse, *rpcstatus.Status) {
	t.Helper()
	body, err := proto.Marshal(req)
	require.NoError(t, err)
	resp, out := post(t, "http://"+s.otlpHTTP()+"/v1/traces", "application/x-protobuf", body, map[string]string{"X-Scope-OrgID": tenantID})
	if checkHeader != nil {
		checkHeader(resp.Header)
	}
	require.Equal(t, "application/x-protobuf", resp.Header.Get("Content-Type"))
	if resp.StatusCode == http.StatusOK {
		var r coltracepb.ExportTraceServiceResponse
		require.NoError(t, proto.Unmarshal([]byte(out), &r))
		return resp.StatusCode, &r, nil
	}
	var st rpcstatus.Status
	require.NoError(t, proto.Unmarshal([]byte(out), &st))
	return resp.StatusCode, nil, &st
}

// TestLimitsThroughTheBinary sets tiny per-tenant limits and checks what
// every client is told, what is stored, and that
// rubato_discarded_spans_total counts each refused span exactly once.
func TestLimitsThroughTheBinary(t *testing.T) {
	s := startServer(t, options{Multitenancy: true, IdlePeriod: "1h", Overrides: limitsOverrides})
	conn, err := grpc.NewClient(s.otlpGRPC(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := coltracepb.NewTraceServiceClient(conn)
	exportGRPC := func(tenantID string, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return client.Export(metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", tenantID), req)
	}
	discarded := func(tenantID, reason string) float64 {
		return s.metric(t, "rubato_discarded_spans_total", `tenant="`+tenantID+`"`, `reason="`+reason+`"`)
	}
	refused := map[string]int{} // tenant → spans refused, as the clients were told

	// 100 traces × 20 spans of 64-byte attributes: well over the 100 kB burst.
	big := make([]traceSpec, 100)
	for i := range big {
		big[i] = traceSpec{spans: 20, attrBytes: 64}
	}

	t.Run("over the burst over gRPC is a permanent FailedPrecondition", func(t *testing.T) {
		req, ids := limitsRequest(big...)
		require.Greater(t, proto.Size(req), 100_000)
		_, err := exportGRPC("rl-grpc", req)
		require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
		require.Contains(t, status.Convert(err).Message(), "REQUEST_TOO_LARGE")
		require.Contains(t, status.Convert(err).Message(), "burst_size_bytes (100000)")
		refused["rl-grpc"] += 2000
		require.Equal(t, 2000.0, discarded("rl-grpc", "request_too_large"))
		require.Nil(t, s.traceByID(t, ids[0], "rl-grpc"))
		// The refused request took no tokens: a small one still passes.
		small, sids := limitsRequest(traceSpec{spans: 2})
		resp, err := exportGRPC("rl-grpc", small)
		require.NoError(t, err)
		require.Nil(t, resp.PartialSuccess)
		requireStored(t, s, "rl-grpc", small, sids[0])
	})

	t.Run("over the burst over HTTP is 413", func(t *testing.T) {
		req, ids := limitsRequest(big...)
		code, _, st := exportHTTP(t, s, "rl-http", req)
		require.Equal(t, http.StatusRequestEntityTooLarge, code)
		require.Equal(t, int32(codes.FailedPrecondition), st.Code)
		require.Contains(t, st.Message, "REQUEST_TOO_LARGE")
		refused["rl-http"] += 2000
		require.Equal(t, 2000.0, discarded("rl-http", "request_too_large"))
		require.Nil(t, s.traceByID(t, ids[0], "rl-http"))
	})

	t.Run("rate limited is ResourceExhausted with RetryInfo, 429 with Retry-After", func(t *testing.T) {
		// Two requests of 60 kB: the second finds the 100 kB bucket short
		// (it refills at 1 byte/s), so the delay is capped at 30 s.
		half := make([]traceSpec, 50)
		for i := range half {
			half[i] = traceSpec{spans: 10, attrBytes: 100}
		}
		first, _ := limitsRequest(half...)
		require.Greater(t, proto.Size(first), 50_000)
		resp, err := exportGRPC("rl-retry", first)
		require.NoError(t, err)
		// It takes its tokens; most of its traces are refused by the other
		// limits, as a partial success.
		refused["rl-retry"] += int(resp.GetPartialSuccess().GetRejectedSpans())
		second, ids := limitsRequest(half...)
		_, err = exportGRPC("rl-retry", second)
		require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
		require.Contains(t, status.Convert(err).Message(), "RATE_LIMITED")
		var delay time.Duration
		for _, d := range status.Convert(err).Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				delay = ri.GetRetryDelay().AsDuration()
			}
		}
		require.Equal(t, 30*time.Second, delay, "RetryInfo with the capped delay")
		code, _, st := exportHTTPHeader(t, s, "rl-retry", second, func(h http.Header) {
			require.Equal(t, "30", h.Get("Retry-After"))
		})
		require.Equal(t, http.StatusTooManyRequests, code)
		require.Equal(t, int32(codes.ResourceExhausted), st.Code)
		refused["rl-retry"] += 1000
		require.Equal(t, 1000.0, discarded("rl-retry", "rate_limited"))
		require.Nil(t, s.traceByID(t, ids[0], "rl-retry"))
	})

	for _, transport := range []string{"grpc", "http"} {
		t.Run("trace over max_bytes_per_trace is a partial success over "+transport, func(t *testing.T) {
			tenantID := "big-" + transport
			// 20 spans of 200-byte attributes (over 3000 bytes) between two
			// small traces.
			req, ids := limitsRequest(traceSpec{spans: 2, attrBytes: 10}, traceSpec{spans: 20, attrBytes: 200}, traceSpec{spans: 3, attrBytes: 10})
			var resp *coltracepb.ExportTraceServiceResponse
			if transport == "grpc" {
				var err error
				resp, err = exportGRPC(tenantID, req)
				require.NoError(t, err)
			} else {
				var code int
				code, resp, _ = exportHTTP(t, s, tenantID, req)
				require.Equal(t, http.StatusOK, code)
			}
			require.NotNil(t, resp.PartialSuccess)
			require.Equal(t, int64(20), resp.PartialSuccess.RejectedSpans)
			require.Contains(t, resp.PartialSuccess.ErrorMessage, "TRACE_TOO_LARGE")
			refused[tenantID] += 20
			require.Equal(t, 20.0, discarded(tenantID, "trace_too_large"))
			require.Nil(t, s.traceByID(t, ids[1], tenantID), "the refused trace is not stored")
			requireStored(t, s, tenantID, req, ids[0])
			requireStored(t, s, tenantID, req, ids[2])
		})
	}

	t.Run("traces past max_traces_per_user are refused, the others stored", func(t *testing.T) {
		specs := make([]traceSpec, 6)
		for i := range specs {
			specs[i] = traceSpec{spans: i + 1}
		}
		req, ids := limitsRequest(specs...)
		resp, err := exportGRPC("live", req)
		require.NoError(t, err)
		require.NotNil(t, resp.PartialSuccess)
		require.Contains(t, resp.PartialSuccess.ErrorMessage, "LIVE_TRACES_EXCEEDED")
		stored, refusedSpans := 0, 0
		for i, id := range ids {
			if s.traceByID(t, id, "live") == nil {
				refusedSpans += specs[i].spans
				continue
			}
			requireStored(t, s, "live", req, id)
			stored++
		}
		require.Equal(t, 4, stored)
		require.Equal(t, int64(refusedSpans), resp.PartialSuccess.RejectedSpans)
		refused["live"] += refusedSpans
		require.Equal(t, float64(refusedSpans), discarded("live", "live_traces_exceeded"))
	})

	// Every refused span counted once: per tenant over all reasons, and in
	// total against the receivers' own count of spans not accepted.
	total := 0
	for tenantID, n := range refused {
		require.Equal(t, float64(n), s.metric(t, "rubato_discarded_spans_total", `tenant="`+tenantID+`"`), tenantID)
		total += n
	}
	require.Equal(t, float64(total), s.metric(t, "rubato_discarded_spans_total"))
	require.Equal(t, float64(total), s.metric(t, "rubato_receiver_refused_spans_total"))
}
