package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/goleak"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/distributor/receiver/internal/receivertest"
	"github.com/rubatodb/rubato/pkg/model/modeltest"
	"github.com/rubatodb/rubato/pkg/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	r   *Receiver
	rec *receivertest.Recorder
	reg *prometheus.Registry
	url string
}

func start(t *testing.T, multitenant bool, bodyLimit int64) *env {
	t.Helper()
	rec := &receivertest.Recorder{}
	reg := prometheus.NewRegistry()
	cfg := Config{
		GRPC: &GRPCConfig{Endpoint: "127.0.0.1:0", MaxRecvMsgSizeMiB: 4},
		HTTP: &HTTPConfig{Endpoint: "127.0.0.1:0", MaxRequestBodySize: bodyLimit},
	}
	r, err := New(cfg, rec, tenant.Resolver{MultitenancyEnabled: multitenant}, log.NewNopLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) })
	return &env{r: r, rec: rec, reg: reg, url: "http://" + r.HTTPAddr().String() + "/v1/traces"}
}

func TestSDKExporters(t *testing.T) {
	hdr := map[string]string{"X-Scope-OrgID": "team-a"}
	for _, tc := range []struct {
		name      string
		transport string
		exp       func(e *env) (sdktrace.SpanExporter, error)
	}{
		{"grpc gzip", "grpc", func(e *env) (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(e.r.GRPCAddr().String()),
				otlptracegrpc.WithInsecure(), otlptracegrpc.WithHeaders(hdr), otlptracegrpc.WithCompressor("gzip"))
		}},
		{"http protobuf gzip", "http", func(e *env) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(e.r.HTTPAddr().String()),
				otlptracehttp.WithInsecure(), otlptracehttp.WithHeaders(hdr), otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}},
		{"http protobuf plain", "http", func(e *env) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(e.r.HTTPAddr().String()),
				otlptracehttp.WithInsecure(), otlptracehttp.WithHeaders(hdr))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, true, 1<<20)
			exp, err := tc.exp(e)
			require.NoError(t, err)
			sent := receivertest.EmitSDKSpans(t, exp, receivertest.SDKOptions{})
			got := e.rec.WaitSpans(t, len(sent))
			for _, s := range sent {
				id := s.SpanContext().SpanID()
				g, ok := got[id.String()]
				require.True(t, ok, "span %s not received", id)
				require.Equal(t, "team-a", g.Tenant)
				receivertest.RequireSDKSpan(t, s, g, false)
			}
			require.Equal(t, float64(len(sent)), receivertest.CounterValue(t, e.r.sink.Metrics.AcceptedSpans.WithLabelValues("otlp", tc.transport)))
		})
	}
}

func post(t *testing.T, url, contentType, encoding string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, out
}

func gz(t testing.TB, p []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(p)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func TestHTTPJSON(t *testing.T) {
	want := modeltest.Request(7, 30)
	for _, o := range []modeltest.JSONOptions{{}, {ProtoNames: true, EnumNumbers: true, Int64Numbers: true, UpperHex: true}} {
		e := start(t, false, 1<<20)
		doc, err := modeltest.JSON(want, o)
		require.NoError(t, err)
		resp, body := post(t, e.url, "application/json; charset=utf-8", "gzip", gz(t, doc), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var out coltracepb.ExportTraceServiceResponse
		require.NoError(t, protojson.Unmarshal(body, &out))
		require.Nil(t, out.PartialSuccess)
		calls := e.rec.Calls()
		require.Len(t, calls, 1)
		require.Equal(t, tenant.SingleTenant, calls[0].Tenant)
		require.True(t, proto.Equal(want, calls[0].Req))
	}
}

func TestHTTPPartialSuccess(t *testing.T) {
	e := start(t, false, 1<<20)
	e.rec.Rejected, e.rec.Msg = 2, "trace too large"
	pb, err := proto.Marshal(modeltest.Request(1, 5))
	require.NoError(t, err)
	resp, body := post(t, e.url, "application/x-protobuf", "", pb, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out coltracepb.ExportTraceServiceResponse
	require.NoError(t, proto.Unmarshal(body, &out))
	require.Equal(t, int64(2), out.PartialSuccess.GetRejectedSpans())
	require.Equal(t, "trace too large", out.PartialSuccess.GetErrorMessage())

	doc, err := modeltest.JSON(modeltest.Request(1, 5), modeltest.JSONOptions{})
	require.NoError(t, err)
	resp, body = post(t, e.url, "application/json", "", doc, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"partialSuccess":{"rejectedSpans":"2","errorMessage":"trace too large"}}`, string(body))
	require.Equal(t, float64(4), receivertest.CounterValue(t, e.r.sink.Metrics.RefusedSpans.WithLabelValues("otlp", "http", "partial")))
}

func TestHTTPErrors(t *testing.T) {
	pb, err := proto.Marshal(modeltest.Request(1, 5))
	require.NoError(t, err)
	bomb := gz(t, make([]byte, 4<<20)) // ~4 KiB inflating to 4 MiB
	require.Less(t, len(bomb), 64<<10)
	for _, tc := range []struct {
		name        string
		multitenant bool
		ct, enc     string
		body        []byte
		hdr         map[string]string
		consumerErr error
		code        int
		grpcCode    codes.Code
	}{
		{name: "malformed protobuf", ct: "application/x-protobuf", body: []byte{0x0a, 0xff}, code: 400, grpcCode: codes.InvalidArgument},
		{name: "malformed json", ct: "application/json", body: []byte(`{"resourceSpans":[`), code: 400, grpcCode: codes.InvalidArgument},
		{name: "base64 ids in json", ct: "application/json", body: []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA=="}]}]}]}`), code: 400, grpcCode: codes.InvalidArgument},
		{name: "unsupported content type", ct: "text/plain", body: pb, code: 415, grpcCode: codes.InvalidArgument},
		{name: "unsupported encoding", ct: "application/x-protobuf", enc: "br", body: pb, code: 415, grpcCode: codes.InvalidArgument},
		{name: "corrupt gzip", ct: "application/x-protobuf", enc: "gzip", body: []byte("not gzip"), code: 400, grpcCode: codes.InvalidArgument},
		{name: "body too large", ct: "application/x-protobuf", body: make([]byte, 2<<20), code: 413, grpcCode: codes.InvalidArgument},
		{name: "gzip bomb", ct: "application/x-protobuf", enc: "gzip", body: bomb, code: 413, grpcCode: codes.InvalidArgument},
		{name: "tenant path traversal", multitenant: true, ct: "application/x-protobuf", body: pb, hdr: map[string]string{"X-Scope-OrgID": "../x"}, code: 400, grpcCode: codes.InvalidArgument},
		{name: "tenant missing", multitenant: true, ct: "application/x-protobuf", body: pb, code: 401, grpcCode: codes.Unauthenticated},
		{name: "rate limited", ct: "application/json", body: []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x"}]}]}]}`), consumerErr: status.Error(codes.ResourceExhausted, "slow down"), code: 429, grpcCode: codes.ResourceExhausted},
		{name: "unavailable", ct: "application/x-protobuf", body: pb, consumerErr: status.Error(codes.Unavailable, "no quorum"), code: 503, grpcCode: codes.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, tc.multitenant, 1<<20)
			e.rec.Err = tc.consumerErr
			resp, body := post(t, e.url, tc.ct, tc.enc, tc.body, tc.hdr)
			require.Equal(t, tc.code, resp.StatusCode, string(body))
			var st rpcstatus.Status
			if resp.Header.Get("Content-Type") == "application/json" {
				require.NoError(t, protojson.Unmarshal(body, &st))
			} else {
				require.Equal(t, "application/x-protobuf", resp.Header.Get("Content-Type"))
				require.NoError(t, proto.Unmarshal(body, &st))
			}
			require.Equal(t, int32(tc.grpcCode), st.Code)
			require.NotEmpty(t, st.Message)
			if tc.consumerErr == nil {
				require.Empty(t, e.rec.Calls())
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		e := start(t, false, 1<<20)
		client := &http.Client{Transport: &http.Transport{}}
		defer client.CloseIdleConnections()
		resp, err := client.Get(e.url)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	})
}

func TestGRPCErrors(t *testing.T) {
	req := modeltest.Request(3, 4)
	for _, tc := range []struct {
		name        string
		tenant      string
		consumerErr error
		code        codes.Code
	}{
		{"consumer status passes through", "t1", status.Error(codes.ResourceExhausted, "rate limited"), codes.ResourceExhausted},
		{"tenant path traversal", "../x", nil, codes.InvalidArgument},
		{"tenant missing", "", nil, codes.Unauthenticated},
		{"ok", "t1", nil, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, true, 1<<20)
			e.rec.Err = tc.consumerErr
			conn, err := grpc.NewClient(e.r.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			require.NoError(t, err)
			defer conn.Close()
			ctx := context.Background()
			if tc.tenant != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "x-scope-orgid", tc.tenant)
			}
			_, err = coltracepb.NewTraceServiceClient(conn).Export(ctx, req)
			require.Equal(t, tc.code, status.Code(err), "%v", err)
		})
	}
	t.Run("message too large", func(t *testing.T) {
		e := start(t, false, 1<<20)
		conn, err := grpc.NewClient(e.r.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		defer conn.Close()
		_, err = coltracepb.NewTraceServiceClient(conn).Export(context.Background(), modeltest.Request(1, 12000))
		require.Equal(t, codes.ResourceExhausted, status.Code(err))
	})
}
