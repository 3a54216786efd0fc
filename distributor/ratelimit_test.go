package distributor

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"io"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/distributor/receiver/otlp"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// newLimitOnlyDistributor builds a Distributor with no ring: enough for
// requests the rate limiter refuses, which never reach an ingester.
func newLimitOnlyDistributor(t testing.TB, cfg Config, lim overrides.Limits) *Distributor {
	t.Helper()
	require.NoError(t, lim.Validate())
	return &Distributor{
		cfg: cfg, overrides: overrides.New(overrides.Config{Defaults: lim}), logger: log.NewNopLogger(),
		limiters:       map[string]*rate.Limiter{},
		receivedSpans:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"tenant"}),
		receivedBytes:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "b"}, []string{"tenant"}),
		discardedSpans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "d"}, []string{"tenant", "reason"}),
	}
}

// drain empties the tenant's bucket at now.
func drain(t testing.TB, d *Distributor, tenantID string, now time.Time) {
	lim := d.overrides.For(tenantID)
	require.True(t, d.limiter(tenantID, lim).AllowN(now, lim.IngestionBurstSizeBytes))
}

func retryInfo(t testing.TB, err error) *errdetails.RetryInfo {
	t.Helper()
	for _, det := range status.Convert(err).Details() {
		if ri, ok := det.(*errdetails.RetryInfo); ok {
			return ri
		}
	}
	return nil
}

func TestRateLimitedErrorCarriesRetryInfo(t *testing.T) {
	base := overrides.Limits{IngestionRateLimitBytes: 1000, IngestionBurstSizeBytes: 10_000}
	for _, tc := range []struct {
		name      string
		cfg       Config
		lim       func(l *overrides.Limits)
		size      int
		wantDelay time.Duration
	}{
		{name: "delay until the request fits", size: 5000, wantDelay: 5 * time.Second},
		{name: "a fraction of a second is raised to 1s", size: 200, wantDelay: time.Second},
		{name: "a delay past the Collector's budget is capped", size: 9000, lim: func(l *overrides.Limits) { l.IngestionRateLimitBytes = 100 }, wantDelay: maxRetryDelay},
		{name: "retry_after_on_resource_exhausted wins over the limiter", cfg: Config{RetryAfterOnResourceExhausted: 3 * time.Second}, size: 9000, wantDelay: 3 * time.Second},
		{name: "the tenant's override wins over the distributor's", cfg: Config{RetryAfterOnResourceExhausted: 3 * time.Second},
			lim: func(l *overrides.Limits) { l.RetryAfterOnResourceExhausted = 7 * time.Second }, size: 9000, wantDelay: 7 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := base
			if tc.lim != nil {
				tc.lim(&lim)
			}
			d := newLimitOnlyDistributor(t, tc.cfg, lim)
			now := time.Unix(1_700_000_000, 0)
			drain(t, d, "t", now)
			err := d.checkRate("t", d.overrides.For("t"), tc.size, 3, now)
			require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
			ri := retryInfo(t, err)
			require.NotNil(t, ri, "ResourceExhausted without RetryInfo is a permanent error to the Collector")
			require.Equal(t, tc.wantDelay, ri.GetRetryDelay().AsDuration())
			require.Contains(t, status.Convert(err).Message(), "RATE_LIMITED")
			// HTTP receivers turn it into 429 with Retry-After in whole seconds.
			require.Equal(t, http.StatusTooManyRequests, receiver.HTTPStatus(err))
			h := http.Header{}
			receiver.SetRetryAfter(h, err)
			require.Equal(t, fmt.Sprint(int(tc.wantDelay/time.Second)), h.Get("Retry-After"))
			// The refused request took no tokens: once it fits, it passes.
			require.NoError(t, d.checkRate("t", d.overrides.For("t"), tc.size, 3,
				now.Add(time.Duration(float64(tc.size)/float64(lim.IngestionRateLimitBytes)*float64(time.Second)))))
		})
	}
}

func TestRetryAfterSecondsRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 29500 * time.Millisecond: 30} {
		require.Equal(t, want, receiver.RetryAfterSeconds(d), "%s", d)
	}
}

func TestRequestOverBurstIsPermanent(t *testing.T) {
	d := newLimitOnlyDistributor(t, Config{RetryAfterOnResourceExhausted: time.Second},
		overrides.Limits{IngestionRateLimitBytes: 1000, IngestionBurstSizeBytes: 10_000})
	// Even with a full bucket, a request over the burst can never pass.
	err := d.checkRate("t", d.overrides.For("t"), 10_001, 42, time.Now())
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	require.Nil(t, retryInfo(t, err), "no RetryInfo: nobody should retry this")
	msg := status.Convert(err).Message()
	for _, want := range []string{"REQUEST_TOO_LARGE", "10001 bytes", "burst_size_bytes (10000)", "42 spans", "send_batch_max_size"} {
		require.Contains(t, msg, want)
	}
	require.Equal(t, http.StatusRequestEntityTooLarge, receiver.HTTPStatus(err))
	require.Equal(t, "request_too_large", receiver.Reason(err))
	h := http.Header{}
	receiver.SetRetryAfter(h, err)
	require.Empty(t, h.Get("Retry-After"))
	// A request of exactly the burst passes.
	require.NoError(t, d.checkRate("t", d.overrides.For("t"), 10_000, 42, time.Now()))
}

// exportRequest builds an OTLP request of n spans, each in its own trace,
// with a pad-byte attribute.
func exportRequest(n, pad int) *coltracepb.ExportTraceServiceRequest {
	ss := &tracev1.ScopeSpans{}
	for i := range n {
		tid := make([]byte, 16)
		tid[0], tid[15] = 1, byte(i)
		ss.Spans = append(ss.Spans, &tracev1.Span{TraceId: tid, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, byte(i + 1)}, Name: "op",
			Attributes: []*commonv1.KeyValue{{Key: "pad", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: strings.Repeat("x", pad)}}}}})
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{ss}}}}
}

// TestLimitAnswersOverTheWire runs the distributor behind the real OTLP
// receiver on 127.0.0.1 and checks what gRPC and HTTP clients are told, and
// that each refused span is counted once under its reason.
func TestLimitAnswersOverTheWire(t *testing.T) {
	d := newLimitOnlyDistributor(t, Config{}, overrides.Limits{IngestionRateLimitBytes: 1000, IngestionBurstSizeBytes: 4000})
	r, err := otlp.New(otlp.Config{
		GRPC: &otlp.GRPCConfig{Endpoint: "127.0.0.1:0", MaxRecvMsgSizeMiB: 4},
		HTTP: &otlp.HTTPConfig{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1 << 20},
	}, d, tenant.Resolver{MultitenancyEnabled: true}, log.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) })
	conn, err := grpc.NewClient(r.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	client := coltracepb.NewTraceServiceClient(conn)
	exportGRPC := func(tenantID string, req *coltracepb.ExportTraceServiceRequest) error {
		_, err := client.Export(metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", tenantID), req)
		return err
	}
	exportHTTP := func(tenantID string, req *coltracepb.ExportTraceServiceRequest) (*http.Response, *rpcstatus.Status) {
		body, err := proto.Marshal(req)
		require.NoError(t, err)
		hreq, err := http.NewRequest(http.MethodPost, "http://"+r.HTTPAddr().String()+"/v1/traces", strings.NewReader(string(body)))
		require.NoError(t, err)
		hreq.Header.Set("Content-Type", "application/x-protobuf")
		hreq.Header.Set("X-Scope-OrgID", tenantID)
		resp, err := http.DefaultClient.Do(hreq)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var st rpcstatus.Status
		require.NoError(t, proto.Unmarshal(b, &st))
		return resp, &st
	}
	discarded := func(tenantID, reason string) float64 {
		var m dto.Metric
		require.NoError(t, d.discardedSpans.WithLabelValues(tenantID, reason).Write(&m))
		return m.GetCounter().GetValue()
	}

	over := exportRequest(10, 500) // > 4000 bytes: over the burst
	require.Greater(t, proto.Size(over), 4000)
	fits := exportRequest(3, 500) // < 4000 bytes
	require.Less(t, proto.Size(fits), 4000)

	t.Run("grpc over burst: FailedPrecondition, no RetryInfo", func(t *testing.T) {
		err := exportGRPC("g", over)
		require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
		require.Nil(t, retryInfo(t, err))
		require.Contains(t, status.Convert(err).Message(), "burst_size_bytes")
		require.Equal(t, 10.0, discarded("g", ReasonRequestTooLarge))
	})
	t.Run("grpc rate limited: ResourceExhausted with RetryInfo", func(t *testing.T) {
		drain(t, d, "g", time.Now())
		err := exportGRPC("g", fits)
		require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
		ri := retryInfo(t, err)
		require.NotNil(t, ri)
		require.GreaterOrEqual(t, ri.GetRetryDelay().AsDuration(), time.Second)
		require.LessOrEqual(t, ri.GetRetryDelay().AsDuration(), 4*time.Second) // at most a full bucket at 1000 B/s
		require.Equal(t, 3.0, discarded("g", ReasonRateLimited))
	})
	t.Run("http over burst: 413, no Retry-After", func(t *testing.T) {
		resp, st := exportHTTP("h", over)
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		require.Empty(t, resp.Header.Get("Retry-After"))
		require.Equal(t, int32(codes.FailedPrecondition), st.Code)
		require.Contains(t, st.Message, "send_batch_max_size")
		require.Equal(t, 10.0, discarded("h", ReasonRequestTooLarge))
	})
	t.Run("http rate limited: 429 with Retry-After", func(t *testing.T) {
		drain(t, d, "h", time.Now())
		resp, st := exportHTTP("h", fits)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		secs := resp.Header.Get("Retry-After")
		require.Contains(t, []string{"1", "2", "3", "4"}, secs)
		require.Equal(t, int32(codes.ResourceExhausted), st.Code)
		require.NotEmpty(t, st.Details, "the Status body carries the RetryInfo too")
		require.Equal(t, 3.0, discarded("h", ReasonRateLimited))
	})
	// Each refused span counted once, under one reason.
	require.Equal(t, 26.0, discarded("g", ReasonRequestTooLarge)+discarded("g", ReasonRateLimited)+
		discarded("h", ReasonRequestTooLarge)+discarded("h", ReasonRateLimited))
}
