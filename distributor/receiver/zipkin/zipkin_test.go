package zipkin

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	zkmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	zkhttp "github.com/openzipkin/zipkin-go/reporter/http"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	otelzipkin "go.opentelemetry.io/otel/exporters/zipkin"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/distributor/receiver/internal/receivertest"
	"github.com/rubatodb/rubato/pkg/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	r   *Receiver
	rec *receivertest.Recorder
	url string
}

func start(t *testing.T, multitenant bool) *env {
	t.Helper()
	rec := &receivertest.Recorder{}
	r, err := New(Config{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1 << 20}, rec,
		tenant.Resolver{MultitenancyEnabled: multitenant}, log.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) })
	return &env{r: r, rec: rec, url: "http://" + r.Addr().String()}
}

// tenantDoer adds the tenant header to zipkin-go's requests.
type tenantDoer struct {
	c      *http.Client
	tenant string
}

func (d tenantDoer) Do(req *http.Request) (*http.Response, error) {
	req.Header.Set("X-Scope-OrgID", d.tenant)
	return d.c.Do(req)
}

func sampleModels() []zkmodel.SpanModel {
	parent := zkmodel.ID(0x1111)
	base := time.UnixMicro(1_700_000_000_123_456)
	return []zkmodel.SpanModel{{
		SpanContext: zkmodel.SpanContext{TraceID: zkmodel.TraceID{Low: 0xabcdef}, ID: 0x2222, ParentID: &parent},
		Name:        "get /users", Kind: zkmodel.Client, Timestamp: base, Duration: 1500 * time.Microsecond,
		LocalEndpoint:  &zkmodel.Endpoint{ServiceName: "web", IPv4: net.ParseIP("10.0.0.5").To4(), Port: 8080},
		RemoteEndpoint: &zkmodel.Endpoint{ServiceName: "users", IPv4: net.ParseIP("10.0.0.6").To4(), Port: 9000},
		Annotations:    []zkmodel.Annotation{{Timestamp: base.Add(100 * time.Microsecond), Value: "wire.send"}},
		Tags:           map[string]string{"http.method": "GET", "http.status_code": "500", "error": "true"},
	}, {
		SpanContext: zkmodel.SpanContext{TraceID: zkmodel.TraceID{High: 0x1, Low: 0xabcdef}, ID: 0x3333, ParentID: &parent},
		Name:        "select", Kind: zkmodel.Server, Timestamp: base, Duration: 20 * time.Microsecond, Shared: true,
		LocalEndpoint: &zkmodel.Endpoint{ServiceName: "users"},
		Tags:          map[string]string{"otel.scope.name": "db", "w3c.tracestate": "a=b"},
	}}
}

func checkModels(t *testing.T, e *env, wantTenant string) {
	t.Helper()
	got := e.rec.WaitSpans(t, 2)
	c := got["0000000000002222"]
	require.Equal(t, wantTenant, c.Tenant)
	require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0xef}, c.TraceId)
	require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0x11, 0x11}, c.ParentSpanId)
	require.Equal(t, "get /users", c.Name)
	require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, c.Kind)
	require.Equal(t, uint64(1_700_000_000_123_456_000), c.StartTimeUnixNano)
	require.Equal(t, uint64(1_700_000_000_124_956_000), c.EndTimeUnixNano)
	require.Equal(t, map[string]any{"service.name": "web"}, c.Resource)
	require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, c.Status.GetCode())
	require.Equal(t, map[string]any{
		"http.method": "GET", "http.status_code": "500",
		"net.host.ip": "10.0.0.5", "net.host.port": int64(8080),
		"peer.service": "users", "net.peer.ip": "10.0.0.6", "net.peer.port": int64(9000),
	}, receivertest.Attrs(c.Attributes))
	require.Len(t, c.Events, 1)
	require.Equal(t, "wire.send", c.Events[0].Name)
	require.Equal(t, uint64(1_700_000_000_123_556_000), c.Events[0].TimeUnixNano)

	s := got["0000000000003333"]
	require.Equal(t, byte(1), s.TraceId[7])
	require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, s.Kind)
	require.Equal(t, "db", s.Scope.GetName())
	require.Equal(t, "a=b", s.TraceState)
	require.Equal(t, map[string]any{"service.name": "users"}, s.Resource)
	require.Empty(t, s.Attributes)
}

func TestZipkinGoReporter(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []zkhttp.ReporterOption
	}{
		{"json", nil},
		{"proto", []zkhttp.ReporterOption{zkhttp.Serializer(zipkin_proto3.SpanSerializer{})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, true)
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			rep := zkhttp.NewReporter(e.url+"/api/v2/spans", append(tc.opts, zkhttp.Client(tenantDoer{client, "team-z"}), zkhttp.BatchSize(2))...)
			for _, m := range sampleModels() {
				rep.Send(m)
			}
			require.NoError(t, rep.Close())
			checkModels(t, e, "team-z")
		})
	}
}

func TestOTelZipkinExporter(t *testing.T) {
	e := start(t, false)
	exp, err := otelzipkin.New(e.url + "/api/v2/spans")
	require.NoError(t, err)
	sent := receivertest.EmitSDKSpans(t, exp, receivertest.SDKOptions{NoSlices: true, NoInternal: true})
	got := e.rec.WaitSpans(t, len(sent))
	for _, s := range sent {
		g, ok := got[s.SpanContext().SpanID().String()]
		require.True(t, ok)
		require.Equal(t, tenant.SingleTenant, g.Tenant)
		receivertest.RequireSDKSpan(t, s, g, true)
	}
}

func post(t *testing.T, url, ct, enc string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", ct)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func gz(t testing.TB, p []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(p)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return buf.Bytes()
}

func TestV1JSONGzip(t *testing.T) {
	e := start(t, false)
	doc := `[{"traceId":"5af7183fb1d4cf5f","name":"get","id":"6b221d5bc9e6496c",
	  "annotations":[{"timestamp":10,"value":"sr","endpoint":{"serviceName":"api"}},{"timestamp":30,"value":"ss","endpoint":{"serviceName":"api"}}],
	  "binaryAnnotations":[{"key":"http.path","value":"/x","endpoint":{"serviceName":"api"}}]}]`
	code, body := post(t, e.url+"/api/v1/spans", "application/json", "gzip", gz(t, []byte(doc)), nil)
	require.Equal(t, http.StatusAccepted, code, body)
	sp := e.rec.WaitSpans(t, 1)["6b221d5bc9e6496c"]
	require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, sp.Kind)
	require.Equal(t, uint64(10_000), sp.StartTimeUnixNano)
	require.Equal(t, uint64(30_000), sp.EndTimeUnixNano)
	require.Equal(t, map[string]any{"service.name": "api"}, sp.Resource)
	require.Equal(t, map[string]any{"http.path": "/x"}, receivertest.Attrs(sp.Attributes))
}

func TestErrors(t *testing.T) {
	good, err := json.Marshal(sampleModels())
	require.NoError(t, err)
	bomb := gz(t, make([]byte, 4<<20))
	for _, tc := range []struct {
		name        string
		multitenant bool
		path, ct    string
		enc         string
		body        []byte
		hdr         map[string]string
		consumerErr error
		code        int
	}{
		{name: "malformed json", path: "/api/v2/spans", ct: "application/json", body: []byte(`[{`), code: 400},
		{name: "malformed proto", path: "/api/v2/spans", ct: "application/x-protobuf", body: []byte{0x0a, 0x09}, code: 400},
		{name: "v1 thrift", path: "/api/v1/spans", ct: "application/x-thrift", body: []byte{1}, code: 415},
		{name: "too large", path: "/api/v2/spans", ct: "application/json", body: make([]byte, 2<<20), code: 413},
		{name: "gzip bomb", path: "/api/v2/spans", ct: "application/json", enc: "gzip", body: bomb, code: 413},
		{name: "tenant path traversal", multitenant: true, path: "/api/v2/spans", ct: "application/json", body: good, hdr: map[string]string{"X-Scope-OrgID": "../x"}, code: 400},
		{name: "tenant missing", multitenant: true, path: "/api/v2/spans", ct: "application/json", body: good, code: 401},
		{name: "rate limited", path: "/api/v2/spans", ct: "application/json", body: good, consumerErr: status.Error(codes.ResourceExhausted, "slow"), code: 429},
		{name: "no content type is json", path: "/", body: good, code: 202},
		{name: "request over the burst", path: "/api/v2/spans", ct: "application/json", body: good, consumerErr: tooLargeErr(t), code: 413},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, tc.multitenant)
			e.rec.Err = tc.consumerErr
			code, body := post(t, e.url+tc.path, tc.ct, tc.enc, tc.body, tc.hdr)
			require.Equal(t, tc.code, code, body)
		})
	}
}

func tooLargeErr(t *testing.T) error {
	st, err := status.New(codes.FailedPrecondition, "REQUEST_TOO_LARGE").WithDetails(&errdetails.ErrorInfo{Reason: receiver.ReasonRequestTooLarge, Domain: receiver.ErrorDomain})
	require.NoError(t, err)
	return st.Err()
}

func TestRetryAfter(t *testing.T) {
	good, err := json.Marshal(sampleModels())
	require.NoError(t, err)
	e := start(t, false)
	st, err := status.New(codes.ResourceExhausted, "RATE_LIMITED").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(1200 * time.Millisecond)})
	require.NoError(t, err)
	e.rec.Err = st.Err()
	req, err := http.NewRequest(http.MethodPost, e.url+"/api/v2/spans", bytes.NewReader(good))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "2", resp.Header.Get("Retry-After"))
}
