package jaeger

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	jmodel "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	jt "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	otlog "github.com/opentracing/opentracing-go/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	jaegerclient "github.com/uber/jaeger-client-go"
	jcthrift "github.com/uber/jaeger-client-go/thrift"
	jcagent "github.com/uber/jaeger-client-go/thrift-gen/agent"
	jct "github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	"github.com/uber/jaeger-client-go/transport"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
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
}

func start(t *testing.T, multitenant bool) *env {
	t.Helper()
	rec := &receivertest.Recorder{}
	udp := func() *UDPConfig {
		return &UDPConfig{Endpoint: "127.0.0.1:0", MaxPacketSize: 65000, QueueSize: 100, Workers: 2}
	}
	cfg := Config{
		GRPC:          &GRPCConfig{Endpoint: "127.0.0.1:0", MaxRecvMsgSizeMiB: 4},
		ThriftHTTP:    &ThriftHTTPConfig{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1 << 20},
		ThriftCompact: udp(),
		ThriftBinary:  udp(),
	}
	r, err := New(cfg, rec, tenant.Resolver{MultitenancyEnabled: multitenant}, log.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) })
	return &env{r: r, rec: rec}
}

// emit records a small trace with the Jaeger Go client through sender and
// returns the spans as the client saw them.
func emit(t *testing.T, sender jaegerclient.Transport) []*jaegerclient.Span {
	t.Helper()
	mem := jaegerclient.NewInMemoryReporter()
	tracer, closer := jaegerclient.NewTracer("inventory", jaegerclient.NewConstSampler(true),
		jaegerclient.NewCompositeReporter(jaegerclient.NewRemoteReporter(sender), mem),
		jaegerclient.TracerOptions.Gen128Bit(true))
	root := tracer.StartSpan("HTTP GET /items")
	ext.SpanKindRPCServer.Set(root)
	ext.HTTPStatusCode.Set(root, 200)
	root.SetTag("items.count", 3)
	root.SetTag("ratio", 0.5)
	root.SetTag("cache.enabled", true)
	child := tracer.StartSpan("SELECT items", opentracing.ChildOf(root.Context()),
		opentracing.FollowsFrom(jaegerclient.NewSpanContext(jaegerclient.TraceID{Low: 0x77}, 0x88, 0, true, nil)))
	ext.SpanKindRPCClient.Set(child)
	ext.Error.Set(child, true)
	child.LogFields(otlog.String("event", "retry"), otlog.Int("attempt", 2))
	time.Sleep(time.Millisecond)
	child.Finish()
	root.Finish()
	var out []*jaegerclient.Span
	for _, s := range mem.GetSpans() { // before Close, which resets mem
		out = append(out, s.(*jaegerclient.Span))
	}
	require.NoError(t, closer.Close()) // flushes the remote reporter
	require.Len(t, out, 2)
	return out
}

func check(t *testing.T, e *env, sent []*jaegerclient.Span, wantTenant string) {
	t.Helper()
	got := e.rec.WaitSpans(t, len(sent))
	for _, s := range sent {
		ctx := s.SpanContext()
		g, ok := got[fmt.Sprintf("%016x", uint64(ctx.SpanID()))]
		require.True(t, ok)
		require.Equal(t, wantTenant, g.Tenant)
		require.Equal(t, fmt.Sprintf("%016x%016x", ctx.TraceID().High, ctx.TraceID().Low), fmt.Sprintf("%x", g.TraceId))
		if ctx.ParentID() != 0 {
			require.Equal(t, fmt.Sprintf("%016x", uint64(ctx.ParentID())), fmt.Sprintf("%x", g.ParentSpanId))
		} else {
			require.Empty(t, g.ParentSpanId)
		}
		require.Equal(t, s.OperationName(), g.Name)
		startUs := s.StartTime().UnixNano() / 1000
		require.Equal(t, uint64(startUs)*1000, g.StartTimeUnixNano)
		require.Equal(t, uint64(startUs+s.Duration().Nanoseconds()/1000)*1000, g.EndTimeUnixNano)

		require.Equal(t, "inventory", g.Resource["service.name"])
		require.Equal(t, "Jaeger-Go-2.30.0", g.Resource["opencensus.exporterversion"])
		require.NotEmpty(t, g.Resource["host.name"])
		require.NotContains(t, g.Resource, "hostname")
		require.NotContains(t, g.Resource, "jaeger.version")

		wantAttrs := map[string]any{}
		for k, v := range s.Tags() {
			switch k {
			case "span.kind", "error":
				continue
			}
			switch v := v.(type) {
			case int:
				wantAttrs[k] = int64(v)
			case uint16:
				wantAttrs[k] = int64(v)
			default:
				wantAttrs[k] = v
			}
		}
		require.Equal(t, wantAttrs, receivertest.Attrs(g.Attributes))
		if s.Tags()["error"] == true {
			require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, g.Status.GetCode())
			require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, g.Kind)
			require.Len(t, g.Events, 1)
			require.Equal(t, "retry", g.Events[0].Name)
			require.Equal(t, map[string]any{"attempt": int64(2)}, receivertest.Attrs(g.Events[0].Attributes))
			require.Equal(t, uint64(s.Logs()[0].Timestamp.UnixNano()/1000)*1000, g.Events[0].TimeUnixNano)
			require.Len(t, g.Links, 1)
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0x88}, g.Links[0].SpanId)
			require.Equal(t, map[string]any{"opentracing.ref_type": "follows_from"}, receivertest.Attrs(g.Links[0].Attributes))
		} else {
			require.Nil(t, g.Status)
			require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, g.Kind)
		}
	}
}

func TestJaegerClientUDPCompact(t *testing.T) {
	e := start(t, false)
	sender, err := jaegerclient.NewUDPTransport(e.r.ThriftCompactAddr().String(), 0)
	require.NoError(t, err)
	check(t, e, emit(t, sender), tenant.SingleTenant)
}

func TestJaegerClientHTTP(t *testing.T) {
	e := start(t, true)
	rt := &http.Transport{}
	defer rt.CloseIdleConnections()
	sender := transport.NewHTTPTransport("http://"+e.r.ThriftHTTPAddr().String()+"/api/traces",
		transport.HTTPRoundTripper(rt), transport.HTTPHeaders(map[string]string{"X-Scope-OrgID": "team-j"}))
	check(t, e, emit(t, sender), "team-j")
}

// binaryUDPSender sends emitBatch in Thrift binary over UDP, as a Jaeger
// agent client on port 6832 does.
type binaryUDPSender struct {
	t     *testing.T
	addr  string
	spans []*jct.Span
	proc  *jct.Process
}

func (s *binaryUDPSender) Append(span *jaegerclient.Span) (int, error) {
	if s.proc == nil {
		s.proc = jaegerclient.BuildJaegerProcessThrift(span)
	}
	s.spans = append(s.spans, jaegerclient.BuildJaegerThrift(span))
	return 0, nil
}

func (s *binaryUDPSender) Flush() (int, error) {
	if len(s.spans) == 0 {
		return 0, nil
	}
	buf := jcthrift.NewTMemoryBuffer()
	c := jcagent.NewAgentClientFactory(buf, jcthrift.NewTBinaryProtocolFactoryConf(nil))
	if err := c.EmitBatch(context.Background(), &jct.Batch{Process: s.proc, Spans: s.spans}); err != nil {
		return 0, err
	}
	conn, err := net.Dial("udp", s.addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	n := len(s.spans)
	s.spans = nil
	return n, nil
}

func (s *binaryUDPSender) Close() error { return nil }

func TestAgentThriftBinaryUDP(t *testing.T) {
	e := start(t, false)
	check(t, e, emit(t, &binaryUDPSender{t: t, addr: e.r.ThriftBinaryAddr().String()}), tenant.SingleTenant)
}

// grpcSender posts batches with the api_v2 CollectorServiceClient.
type grpcSender struct {
	client api_v2.CollectorServiceClient
	ctx    context.Context
	batch  jmodel.Batch
}

func (s *grpcSender) Append(span *jaegerclient.Span) (int, error) {
	ts := jaegerclient.BuildJaegerThrift(span)
	if s.batch.Process == nil {
		p := jaegerclient.BuildJaegerProcessThrift(span)
		s.batch.Process = &jmodel.Process{ServiceName: p.ServiceName, Tags: tagsToProto(p.Tags)}
	}
	ps := &jmodel.Span{
		TraceID: jmodel.NewTraceID(uint64(ts.TraceIdHigh), uint64(ts.TraceIdLow)), SpanID: jmodel.NewSpanID(uint64(ts.SpanId)),
		OperationName: ts.OperationName, StartTime: time.UnixMicro(ts.StartTime), Duration: time.Duration(ts.Duration) * time.Microsecond,
		Tags: tagsToProto(ts.Tags),
	}
	if ts.ParentSpanId != 0 {
		ps.References = append(ps.References, jmodel.NewChildOfRef(ps.TraceID, jmodel.NewSpanID(uint64(ts.ParentSpanId))))
	}
	for _, r := range ts.References {
		if r.RefType == jct.SpanRefType_CHILD_OF && r.SpanId == ts.ParentSpanId {
			continue
		}
		ps.References = append(ps.References, jmodel.SpanRef{TraceID: jmodel.NewTraceID(uint64(r.TraceIdHigh), uint64(r.TraceIdLow)), SpanID: jmodel.NewSpanID(uint64(r.SpanId)), RefType: jmodel.SpanRefType(r.RefType)})
	}
	for _, l := range ts.Logs {
		ps.Logs = append(ps.Logs, jmodel.Log{Timestamp: time.UnixMicro(l.Timestamp), Fields: tagsToProto(l.Fields)})
	}
	s.batch.Spans = append(s.batch.Spans, ps)
	return 0, nil
}

func tagsToProto(tags []*jct.Tag) []jmodel.KeyValue {
	var out []jmodel.KeyValue
	for _, t := range tags {
		switch t.VType {
		case jct.TagType_STRING:
			out = append(out, jmodel.String(t.Key, t.GetVStr()))
		case jct.TagType_BOOL:
			out = append(out, jmodel.Bool(t.Key, t.GetVBool()))
		case jct.TagType_LONG:
			out = append(out, jmodel.Int64(t.Key, t.GetVLong()))
		case jct.TagType_DOUBLE:
			out = append(out, jmodel.Float64(t.Key, t.GetVDouble()))
		case jct.TagType_BINARY:
			out = append(out, jmodel.Binary(t.Key, t.VBinary))
		}
	}
	return out
}

func (s *grpcSender) Flush() (int, error) {
	if len(s.batch.Spans) == 0 {
		return 0, nil
	}
	_, err := s.client.PostSpans(s.ctx, &api_v2.PostSpansRequest{Batch: s.batch})
	n := len(s.batch.Spans)
	s.batch.Spans = nil
	return n, err
}

func (s *grpcSender) Close() error { return nil }

func dial(t *testing.T, e *env) api_v2.CollectorServiceClient {
	conn, err := grpc.NewClient(e.r.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(gogoCodec{})))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return api_v2.NewCollectorServiceClient(conn)
}

func TestGRPCCollector(t *testing.T) {
	e := start(t, true)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "team-g")
	check(t, e, emit(t, &grpcSender{client: dial(t, e), ctx: ctx}), "team-g")
}

func TestGRPCErrors(t *testing.T) {
	e := start(t, true)
	client := dial(t, e)
	req := &api_v2.PostSpansRequest{Batch: jmodel.Batch{Spans: []*jmodel.Span{{TraceID: jmodel.NewTraceID(0, 1), SpanID: 1}}}}
	_, err := client.PostSpans(metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "../x"), req)
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	e.rec.Err = status.Error(codes.ResourceExhausted, "slow")
	_, err = client.PostSpans(metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "ok"), req)
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	// RetryInfo reaches the client as it is.
	e.rec.Err = retryableErr(t, 3*time.Second)
	_, err = client.PostSpans(metadata.AppendToOutgoingContext(context.Background(), "x-scope-orgid", "ok"), req)
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	d, ok := receiver.RetryDelay(err)
	require.True(t, ok, "RetryInfo lost on the way: %v", status.Convert(err).Details())
	require.Equal(t, 3*time.Second, d)
}

func retryableErr(t *testing.T, d time.Duration) error {
	st, err := status.New(codes.ResourceExhausted, "RATE_LIMITED").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
	require.NoError(t, err)
	return st.Err()
}

func TestThriftHTTPRetryAfter(t *testing.T) {
	body, err := thrift.NewTSerializer().Write(context.Background(), &jt.Batch{Process: &jt.Process{ServiceName: "s"}, Spans: []*jt.Span{{TraceIdLow: 1, SpanId: 1}}})
	require.NoError(t, err)
	e := start(t, true)
	e.rec.Err = retryableErr(t, 2500*time.Millisecond)
	req, err := http.NewRequest(http.MethodPost, "http://"+e.r.ThriftHTTPAddr().String()+"/api/traces", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-thrift")
	req.Header.Set("X-Scope-OrgID", "a")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "3", resp.Header.Get("Retry-After"))
}

func TestThriftHTTPErrors(t *testing.T) {
	body, err := thrift.NewTSerializer().Write(context.Background(), &jt.Batch{Process: &jt.Process{ServiceName: "s"}, Spans: []*jt.Span{{TraceIdLow: 1, SpanId: 1}}})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, ct string
		body     []byte
		hdr      map[string]string
		code     int
	}{
		{"ok", "application/vnd.apache.thrift.binary", body, map[string]string{"X-Scope-OrgID": "a"}, 202},
		{"malformed", "application/x-thrift", []byte("garbage!"), map[string]string{"X-Scope-OrgID": "a"}, 400},
		{"content type", "application/json", body, map[string]string{"X-Scope-OrgID": "a"}, 400},
		{"too large", "application/x-thrift", make([]byte, 2<<20), map[string]string{"X-Scope-OrgID": "a"}, 413},
		{"tenant path traversal", "application/x-thrift", body, map[string]string{"X-Scope-OrgID": "../x"}, 400},
		{"tenant missing", "application/x-thrift", body, nil, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, true)
			req, err := http.NewRequest(http.MethodPost, "http://"+e.r.ThriftHTTPAddr().String()+"/api/traces", bytes.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", tc.ct)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			resp, err := client.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, tc.code, resp.StatusCode)
		})
	}
}

func TestUDPMalformedDropped(t *testing.T) {
	e := start(t, false)
	conn, err := net.Dial("udp", e.r.ThriftCompactAddr().String())
	require.NoError(t, err)
	defer conn.Close()
	for _, p := range [][]byte{[]byte("garbage"), {0x82, 0x21, 0x01, 0x09, 'e', 'm', 'i', 't', 'B', 'a', 't', 'c', 'h', 0x1c, 0x1c, 0x18, 0x00, 0x00, 0x19, 0xfc, 0xff, 0xff, 0xff, 0x07}} {
		_, err := conn.Write(p)
		require.NoError(t, err)
	}
	m := e.r.sink.Metrics.MalformedRequests.WithLabelValues("jaeger", transportCompact)
	require.Eventually(t, func() bool { return receivertest.CounterValue(t, m) == 2 }, 10*time.Second, 10*time.Millisecond)
	// Still serving after bad packets.
	sender, err := jaegerclient.NewUDPTransport(e.r.ThriftCompactAddr().String(), 0)
	require.NoError(t, err)
	check(t, e, emit(t, sender), tenant.SingleTenant)
}
