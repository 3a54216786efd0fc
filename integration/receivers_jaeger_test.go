package integration

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	jmodel "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	otlog "github.com/opentracing/opentracing-go/log"
	"github.com/stretchr/testify/require"
	jaegerclient "github.com/uber/jaeger-client-go"
	jcthrift "github.com/uber/jaeger-client-go/thrift"
	jcagent "github.com/uber/jaeger-client-go/thrift-gen/agent"
	jct "github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	"github.com/uber/jaeger-client-go/transport"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// jaegerSent is one span as the Jaeger client encoded it, with its process.
type jaegerSent struct {
	span    *jct.Span
	process *jct.Process
}

// checkedTransport keeps the errors of a Jaeger sender's flushes (the
// client's reporter only logs them).
type checkedTransport struct {
	jaegerclient.Transport
	mu      sync.Mutex
	errs    []error
	flushed int
}

func (c *checkedTransport) Flush() (int, error) {
	n, err := c.Transport.Flush()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushed += n
	if err != nil {
		c.errs = append(c.errs, err)
	}
	return n, err
}

func (c *checkedTransport) requireOK(t testing.TB, spans int) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NoError(t, errors.Join(c.errs...))
	require.Equal(t, spans, c.flushed, "spans flushed")
}

// emitJaeger records one trace with github.com/uber/jaeger-client-go sent
// through sender: typed tracer (process) tags, every span kind, typed span
// tags including binary, logs with typed fields, a FOLLOWS_FROM reference to
// another trace, error=true, otel.status_*, an HTTP 503, trace state and
// scope tags. It returns what the client encoded, in Thrift.
func emitJaeger(t testing.TB, sender jaegerclient.Transport, gen128 bool) []jaegerSent {
	t.Helper()
	ct := &checkedTransport{Transport: sender}
	mem := jaegerclient.NewInMemoryReporter()
	tracer, closer := jaegerclient.NewTracer("inventory", jaegerclient.NewConstSampler(true),
		jaegerclient.NewCompositeReporter(jaegerclient.NewRemoteReporter(ct), mem),
		jaegerclient.TracerOptions.Gen128Bit(gen128),
		jaegerclient.TracerOptions.Tag("region", "eu-1"), jaegerclient.TracerOptions.Tag("pod.index", 3),
		jaegerclient.TracerOptions.Tag("canary", true), jaegerclient.TracerOptions.Tag("weight", 0.5))

	root := tracer.StartSpan("HTTP GET /items")
	ext.SpanKindRPCServer.Set(root)
	ext.HTTPStatusCode.Set(root, 200)
	root.SetTag("items.count", 3)
	root.SetTag("ratio", 0.25)
	root.SetTag("cache.enabled", true)
	root.SetTag("payload", []byte{0, 1, 2, 0xff})
	root.LogFields(otlog.String("event", "cache.miss"), otlog.Int("shard", 4), otlog.Bool("cold", true), otlog.Float64("ms", 1.5))

	other := jaegerclient.NewSpanContext(jaegerclient.TraceID{High: 0x1234, Low: 0x77}, 0x88, 0, true, nil)
	db := tracer.StartSpan("SELECT items", opentracing.ChildOf(root.Context()), opentracing.FollowsFrom(other))
	ext.SpanKindRPCClient.Set(db)
	ext.Error.Set(db, true)
	db.SetTag("db.statement", "SELECT * FROM items")
	db.LogFields(otlog.String("message", "no event field"), otlog.Int("attempt", 2))
	db.Finish()

	pay := tracer.StartSpan("POST /pay", opentracing.ChildOf(root.Context()))
	ext.SpanKindRPCClient.Set(pay)
	ext.HTTPStatusCode.Set(pay, 503)
	pay.SetTag("http.status_message", "unavailable")
	pay.Finish()

	pub := tracer.StartSpan("publish", opentracing.ChildOf(root.Context()))
	pub.SetTag("span.kind", "producer")
	pub.SetTag("otel.status_code", "ERROR")
	pub.SetTag("otel.status_description", "broker down")
	pub.SetTag("w3c.tracestate", "vendor=v1")
	pub.SetTag("otel.scope.name", "mq")
	pub.SetTag("otel.scope.version", "2.0")
	pub.Finish()

	sub := tracer.StartSpan("consume", opentracing.FollowsFrom(pub.Context()))
	sub.SetTag("span.kind", "consumer")
	sub.SetTag("error", false)
	sub.Finish()

	work := tracer.StartSpan("render", opentracing.ChildOf(root.Context()))
	work.SetTag("span.kind", "internal")
	work.SetTag("otel.status_code", "OK")
	work.Finish()
	time.Sleep(time.Millisecond)
	root.Finish()

	var out []jaegerSent
	for _, s := range mem.GetSpans() { // before Close, which resets mem
		js := s.(*jaegerclient.Span)
		out = append(out, jaegerSent{span: jaegerclient.BuildJaegerThrift(js), process: jaegerclient.BuildJaegerProcessThrift(js)})
	}
	require.NoError(t, closer.Close()) // flushes the remote reporter
	require.Len(t, out, 6)
	ct.requireOK(t, len(out))
	return out
}

func jaegerTagValue(tag *jct.Tag) any {
	switch tag.VType {
	case jct.TagType_STRING:
		return tag.GetVStr()
	case jct.TagType_BOOL:
		return tag.GetVBool()
	case jct.TagType_LONG:
		return tag.GetVLong()
	case jct.TagType_DOUBLE:
		return tag.GetVDouble()
	case jct.TagType_BINARY:
		return tag.VBinary
	}
	return nil
}

// jaegerResource is a process as a resource (RECEIVERS.md Jaeger rule 1).
func jaegerResource(p *jct.Process) map[string]any {
	res := map[string]any{"service.name": p.ServiceName}
	for _, tag := range p.Tags {
		switch tag.Key {
		case "hostname":
			res["host.name"] = jaegerTagValue(tag)
		case "jaeger.version":
			res["opencensus.exporterversion"] = "Jaeger-" + tag.GetVStr()
		default:
			res[tag.Key] = jaegerTagValue(tag)
		}
	}
	return res
}

var jaegerKinds = map[string]tracev1.Span_SpanKind{
	"client": tracev1.Span_SPAN_KIND_CLIENT, "server": tracev1.Span_SPAN_KIND_SERVER, "producer": tracev1.Span_SPAN_KIND_PRODUCER,
	"consumer": tracev1.Span_SPAN_KIND_CONSUMER, "internal": tracev1.Span_SPAN_KIND_INTERNAL,
}

var otelCodes = map[string]tracev1.Status_StatusCode{
	"UNSET": tracev1.Status_STATUS_CODE_UNSET, "OK": tracev1.Status_STATUS_CODE_OK, "ERROR": tracev1.Status_STATUS_CODE_ERROR,
}

// jaegerWant derives what a Jaeger span reads back as (RECEIVERS.md Jaeger
// rules 3–10): typed attributes, kind, status, parent and links from the
// references, logs as events.
func jaegerWant(p *jct.Process, s *jct.Span) wantSpan {
	w := wantSpan{
		traceID: be128(uint64(s.TraceIdHigh), uint64(s.TraceIdLow)), spanID: be64(uint64(s.SpanId)), name: s.OperationName,
		start: uint64(s.StartTime) * 1000, end: uint64(s.StartTime+s.Duration) * 1000,
		resource: jaegerResource(p), attrs: map[string]any{},
	}
	var errTrue, hasCode, hasHTTP bool
	var desc, httpMsg *string
	var httpCode int64
	for _, tag := range s.Tags {
		v := jaegerTagValue(tag)
		switch tag.Key {
		case "span.kind":
			w.kind = jaegerKinds[tag.GetVStr()]
			continue
		case "error":
			if v == true {
				errTrue = true
				continue
			}
		case "otel.status_code":
			w.status, hasCode = otelCodes[tag.GetVStr()], true
			continue
		case "otel.status_description":
			desc = tag.VStr
			continue
		case "w3c.tracestate":
			w.traceState = tag.GetVStr()
			continue
		case "otel.scope.name":
			w.scopeName = tag.GetVStr()
			continue
		case "otel.scope.version":
			w.scopeVersion = tag.GetVStr()
			continue
		case "http.status_code":
			httpCode, hasHTTP = tag.GetVLong(), true
		case "http.status_message":
			httpMsg = tag.VStr
		}
		w.attrs[tag.Key] = v
	}
	switch {
	case errTrue:
		w.status = tracev1.Status_STATUS_CODE_ERROR
		if desc != nil {
			w.statusMsg = *desc
		} else if httpMsg != nil {
			w.statusMsg = *httpMsg
		}
	case hasCode:
		if desc != nil {
			w.statusMsg = *desc
		}
	case hasHTTP && (httpCode >= 500 || httpCode >= 400 && w.kind != tracev1.Span_SPAN_KIND_SERVER || httpCode < 100 || httpCode > 599):
		w.status = tracev1.Status_STATUS_CODE_ERROR
		if httpMsg != nil {
			w.statusMsg = *httpMsg
		}
	default:
		if desc != nil {
			w.attrs["otel.status_description"] = *desc
		}
	}
	parent, skip := s.ParentSpanId, -1
	for i, r := range s.References {
		if r.RefType == jct.SpanRefType_CHILD_OF && r.TraceIdHigh == s.TraceIdHigh && r.TraceIdLow == s.TraceIdLow &&
			(parent == 0 || r.SpanId == parent) {
			parent, skip = r.SpanId, i
			break
		}
	}
	if parent != 0 {
		w.parentID = be64(uint64(parent))
	}
	for i, r := range s.References {
		if i == skip {
			continue
		}
		refType := "child_of"
		if r.RefType == jct.SpanRefType_FOLLOWS_FROM {
			refType = "follows_from"
		}
		w.links = append(w.links, wantLink{traceID: be128(uint64(r.TraceIdHigh), uint64(r.TraceIdLow)), spanID: be64(uint64(r.SpanId)),
			attrs: map[string]any{"opentracing.ref_type": refType}})
	}
	for _, l := range s.Logs {
		e := wantEvent{time: uint64(l.Timestamp) * 1000, attrs: map[string]any{}}
		named := false
		for _, f := range l.Fields {
			if f.Key == "event" && f.VType == jct.TagType_STRING && !named {
				e.name, named = f.GetVStr(), true
				continue
			}
			e.attrs[f.Key] = jaegerTagValue(f)
		}
		w.events = append(w.events, e)
	}
	return w
}

// jaegerWants groups the expectations by trace ID and checks the spans
// really cover what the test means to prove.
func jaegerWants(t testing.TB, sent []jaegerSent, want map[string][]wantSpan) {
	t.Helper()
	kinds := map[tracev1.Span_SpanKind]bool{}
	var links, events, typed int
	for _, s := range sent {
		w := jaegerWant(s.process, s.span)
		id := hex.EncodeToString(w.traceID)
		want[id] = append(want[id], w)
		kinds[w.kind] = true
		links += len(w.links)
		events += len(w.events)
		for _, v := range w.attrs {
			if _, ok := v.([]byte); ok {
				typed++
			}
		}
	}
	require.Len(t, kinds, 5, "every span kind")
	require.Equal(t, 2, links, "FOLLOWS_FROM to another trace, and to a span of this one")
	require.Equal(t, 2, events)
	require.Equal(t, 1, typed, "a binary tag")
}

// binaryUDPTransport sends the agent's emitBatch in Thrift binary over UDP,
// as a client of the agent's 6832 port does.
type binaryUDPTransport struct {
	addr    string
	process *jct.Process
	spans   []*jct.Span
}

func (b *binaryUDPTransport) Append(s *jaegerclient.Span) (int, error) {
	if b.process == nil {
		b.process = jaegerclient.BuildJaegerProcessThrift(s)
	}
	b.spans = append(b.spans, jaegerclient.BuildJaegerThrift(s))
	return 0, nil
}

func (b *binaryUDPTransport) Flush() (int, error) {
	if len(b.spans) == 0 {
		return 0, nil
	}
	buf := jcthrift.NewTMemoryBuffer()
	if err := jcagent.NewAgentClientFactory(buf, jcthrift.NewTBinaryProtocolFactoryDefault()).
		EmitBatch(context.Background(), &jct.Batch{Process: b.process, Spans: b.spans}); err != nil {
		return 0, err
	}
	conn, err := net.Dial("udp", b.addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	n := len(b.spans)
	b.spans = nil
	return n, nil
}

func (b *binaryUDPTransport) Close() error { return nil }

// gogoCodec marshals jaeger-idl's gogo-generated api_v2 messages.
type gogoCodec struct{}

func (gogoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(interface{ Marshal() ([]byte, error) })
	if !ok {
		return nil, fmt.Errorf("cannot marshal %T", v)
	}
	return m.Marshal()
}

func (gogoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(interface{ Unmarshal([]byte) error })
	if !ok {
		return fmt.Errorf("cannot unmarshal into %T", v)
	}
	return m.Unmarshal(data)
}

func (gogoCodec) Name() string { return "proto" }

// grpcTransport posts each flush as one api_v2 PostSpans call. Spans are
// converted from the client's Thrift form; the parent becomes the first
// CHILD_OF reference, as api_v2 has no parent field. overrideProcess gives
// the spans whose operation it names their own process (api_v2 allows a
// per-span process that wins over the batch's).
type grpcTransport struct {
	client          api_v2.CollectorServiceClient
	overrideProcess map[string]*jct.Process
	batch           jmodel.Batch
}

func protoTags(tags []*jct.Tag) []jmodel.KeyValue {
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

func (g *grpcTransport) Append(span *jaegerclient.Span) (int, error) {
	ts := jaegerclient.BuildJaegerThrift(span)
	if g.batch.Process == nil {
		p := jaegerclient.BuildJaegerProcessThrift(span)
		g.batch.Process = &jmodel.Process{ServiceName: p.ServiceName, Tags: protoTags(p.Tags)}
	}
	tid := jmodel.NewTraceID(uint64(ts.TraceIdHigh), uint64(ts.TraceIdLow))
	ps := &jmodel.Span{
		TraceID: tid, SpanID: jmodel.NewSpanID(uint64(ts.SpanId)), OperationName: ts.OperationName,
		StartTime: time.UnixMicro(ts.StartTime).UTC(), Duration: time.Duration(ts.Duration) * time.Microsecond, Tags: protoTags(ts.Tags),
	}
	if p := g.overrideProcess[ts.OperationName]; p != nil {
		ps.Process = &jmodel.Process{ServiceName: p.ServiceName, Tags: protoTags(p.Tags)}
	}
	if ts.ParentSpanId != 0 {
		ps.References = append(ps.References, jmodel.NewChildOfRef(tid, jmodel.NewSpanID(uint64(ts.ParentSpanId))))
	}
	for _, r := range ts.References {
		if r.RefType == jct.SpanRefType_CHILD_OF && r.SpanId == ts.ParentSpanId {
			continue
		}
		ps.References = append(ps.References, jmodel.SpanRef{TraceID: jmodel.NewTraceID(uint64(r.TraceIdHigh), uint64(r.TraceIdLow)),
			SpanID: jmodel.NewSpanID(uint64(r.SpanId)), RefType: jmodel.SpanRefType(r.RefType)})
	}
	for _, l := range ts.Logs {
		ps.Logs = append(ps.Logs, jmodel.Log{Timestamp: time.UnixMicro(l.Timestamp).UTC(), Fields: protoTags(l.Fields)})
	}
	g.batch.Spans = append(g.batch.Spans, ps)
	return 0, nil
}

func (g *grpcTransport) Flush() (int, error) {
	if len(g.batch.Spans) == 0 {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := g.client.PostSpans(ctx, &api_v2.PostSpansRequest{Batch: g.batch})
	n := len(g.batch.Spans)
	g.batch.Spans = nil
	return n, err
}

func (g *grpcTransport) Close() error { return nil }

// TestJaegerRoundTrip sends one 64-bit and one 128-bit trace through each
// Jaeger transport with real clients: jaeger-client-go's UDP sender (Thrift
// compact, 6831-style) and HTTP sender (Thrift binary to /api/traces), an
// agent emitBatch in Thrift binary over UDP (6832-style), and api_v2's
// CollectorServiceClient over gRPC; every span is read back field by field,
// live and from the backend.
func TestJaegerRoundTrip(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h", Jaeger: true})
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", s.ports.JaegerGRPC), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(gogoCodec{})))
	require.NoError(t, err)
	defer conn.Close()
	collector := api_v2.NewCollectorServiceClient(conn)
	compactAddr := fmt.Sprintf("127.0.0.1:%d", s.ports.JaegerCompact)
	ownProcess := &jct.Process{ServiceName: "render-svc", Tags: []*jct.Tag{{Key: "hostname", VType: jct.TagType_STRING, VStr: ptrTo("render-host")}}}

	for _, tc := range []struct {
		name      string
		transport string // the receiver's transport label
		sender    func(t *testing.T) jaegerclient.Transport
		processOf map[string]*jct.Process
	}{
		{name: "udp compact", transport: "udp_thrift_compact", sender: func(t *testing.T) jaegerclient.Transport {
			tr, err := jaegerclient.NewUDPTransport(compactAddr, 0)
			require.NoError(t, err)
			return tr
		}},
		{name: "udp binary", transport: "udp_thrift_binary", sender: func(*testing.T) jaegerclient.Transport {
			return &binaryUDPTransport{addr: fmt.Sprintf("127.0.0.1:%d", s.ports.JaegerBinary)}
		}},
		{name: "thrift http", transport: "thrift_http", sender: func(*testing.T) jaegerclient.Transport {
			return transport.NewHTTPTransport(fmt.Sprintf("http://127.0.0.1:%d/api/traces", s.ports.JaegerThriftHTTP))
		}},
		{name: "grpc", transport: "grpc", processOf: map[string]*jct.Process{"render": ownProcess}, sender: func(*testing.T) jaegerclient.Transport {
			return &grpcTransport{client: collector, overrideProcess: map[string]*jct.Process{"render": ownProcess}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := map[string][]wantSpan{}
			n := 0
			for _, gen128 := range []bool{false, true} {
				sent := emitJaeger(t, tc.sender(t), gen128)
				for i := range sent {
					if p := tc.processOf[sent[i].span.OperationName]; p != nil {
						sent[i].process = p
					}
				}
				require.Equal(t, gen128, sent[0].span.TraceIdHigh != 0)
				jaegerWants(t, sent, want)
				n += len(sent)
			}
			checkTraces(t, s, want)
			require.Equal(t, float64(n), s.metric(t, "rubato_receiver_accepted_spans_total", `protocol="jaeger"`, `transport="`+tc.transport+`"`))
		})
	}
}

func ptrTo[T any](v T) *T { return &v }
