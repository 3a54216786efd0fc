package jaeger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	jmodel "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	jt "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	"github.com/stretchr/testify/require"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func ptr[T any](v T) *T { return &v }

func strTag(k, v string) *jt.Tag { return &jt.Tag{Key: k, VType: jt.TagType_STRING, VStr: ptr(v)} }
func boolTag(k string, v bool) *jt.Tag {
	return &jt.Tag{Key: k, VType: jt.TagType_BOOL, VBool: ptr(v)}
}
func longTag(k string, v int64) *jt.Tag {
	return &jt.Tag{Key: k, VType: jt.TagType_LONG, VLong: ptr(v)}
}

func attrMap(kvs []*commonpb.KeyValue) map[string]any {
	m := map[string]any{}
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = v.IntValue
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = v.BoolValue
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = v.DoubleValue
		case *commonpb.AnyValue_BytesValue:
			m[kv.Key] = v.BytesValue
		}
	}
	return m
}

func baseSpan() *jt.Span {
	return &jt.Span{TraceIdLow: 0x10, SpanId: 0x20, OperationName: "op", StartTime: 1_000_000, Duration: 250}
}

func TestThriftRules(t *testing.T) {
	with := func(f func(*jt.Span)) *jt.Span { s := baseSpan(); f(s); return s }
	proc := &jt.Process{ServiceName: "api", Tags: []*jt.Tag{strTag("hostname", "h1"), strTag("jaeger.version", "Go-2.30.0"), strTag("ip", "10.0.0.1"), longTag("pid", 7)}}
	for _, tc := range []struct {
		name  string
		span  *jt.Span
		check func(t *testing.T, sp *tracepb.Span, scope *commonpb.InstrumentationScope)
	}{
		{"64-bit ids padded", baseSpan(), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}, sp.TraceId)
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0x20}, sp.SpanId)
		}},
		{"duration µs to end time", baseSpan(), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, uint64(1_000_000_000), sp.StartTimeUnixNano)
			require.Equal(t, uint64(1_000_250_000), sp.EndTimeUnixNano)
		}},
		{"span.kind tag", with(func(s *jt.Span) { s.Tags = []*jt.Tag{strTag("span.kind", "server")} }), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, sp.Kind)
			require.Empty(t, sp.Attributes)
		}},
		{"error=true is ERROR", with(func(s *jt.Span) { s.Tags = []*jt.Tag{boolTag("error", true)} }), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, sp.Status.Code)
			require.Empty(t, sp.Attributes)
		}},
		{"error=false kept", with(func(s *jt.Span) { s.Tags = []*jt.Tag{boolTag("error", false)} }), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Nil(t, sp.Status)
			require.Equal(t, map[string]any{"error": false}, attrMap(sp.Attributes))
		}},
		{"error wins over otel.status_code", with(func(s *jt.Span) {
			s.Tags = []*jt.Tag{boolTag("error", true), strTag("otel.status_code", "OK"), strTag("otel.status_description", "d")}
		}), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, sp.Status.Code)
			require.Equal(t, "d", sp.Status.Message)
		}},
		{"otel.status_code and description", with(func(s *jt.Span) {
			s.Tags = []*jt.Tag{strTag("otel.status_code", "ERROR"), strTag("otel.status_description", "boom")}
		}), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "boom"}, sp.Status)
			require.Empty(t, sp.Attributes)
		}},
		{"otel.status_code as int", with(func(s *jt.Span) { s.Tags = []*jt.Tag{longTag("otel.status_code", 1)} }), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Status_STATUS_CODE_OK, sp.Status.Code)
		}},
		{"http 500 server is ERROR", with(func(s *jt.Span) {
			s.Tags = []*jt.Tag{strTag("span.kind", "server"), longTag("http.status_code", 503), strTag("http.status_message", "unavailable")}
		}), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "unavailable"}, sp.Status)
			require.Equal(t, int64(503), attrMap(sp.Attributes)["http.status_code"])
		}},
		{"http 404 server is not an error", with(func(s *jt.Span) {
			s.Tags = []*jt.Tag{strTag("span.kind", "server"), longTag("http.status_code", 404)}
		}), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Nil(t, sp.Status)
		}},
		{"http 404 client is ERROR (string code)", with(func(s *jt.Span) {
			s.Tags = []*jt.Tag{strTag("span.kind", "client"), strTag("http.status_code", "404")}
		}), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, sp.Status.Code)
		}},
		{"tracestate", with(func(s *jt.Span) { s.Tags = []*jt.Tag{strTag("w3c.tracestate", "k=v")} }), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, "k=v", sp.TraceState)
		}},
		{"otel.scope to scope", with(func(s *jt.Span) {
			s.Tags = []*jt.Tag{strTag("otel.scope.name", "lib"), strTag("otel.scope.version", "2")}
		}), func(t *testing.T, sp *tracepb.Span, scope *commonpb.InstrumentationScope) {
			require.Equal(t, "lib", scope.Name)
			require.Equal(t, "2", scope.Version)
			require.Empty(t, sp.Attributes)
		}},
		{"otel.library to scope", with(func(s *jt.Span) { s.Tags = []*jt.Tag{strTag("otel.library.name", "old")} }), func(t *testing.T, _ *tracepb.Span, scope *commonpb.InstrumentationScope) {
			require.Equal(t, "old", scope.Name)
		}},
		{"typed tags keep their types", with(func(s *jt.Span) {
			s.Tags = []*jt.Tag{boolTag("b", true), longTag("l", -3), {Key: "d", VType: jt.TagType_DOUBLE, VDouble: ptr(2.5)}, {Key: "bin", VType: jt.TagType_BINARY, VBinary: []byte{1, 2}}, strTag("s", "x")}
		}), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, map[string]any{"b": true, "l": int64(-3), "d": 2.5, "bin": []byte{1, 2}, "s": "x"}, attrMap(sp.Attributes))
		}},
		{"parent span id field", with(func(s *jt.Span) { s.ParentSpanId = 0x30 }), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0x30}, sp.ParentSpanId)
			require.Empty(t, sp.Links)
		}},
		{"first CHILD_OF is parent, others are links", with(func(s *jt.Span) {
			s.References = []*jt.SpanRef{
				{RefType: jt.SpanRefType_FOLLOWS_FROM, TraceIdLow: 0x10, SpanId: 0x40},
				{RefType: jt.SpanRefType_CHILD_OF, TraceIdLow: 0x10, SpanId: 0x41},
				{RefType: jt.SpanRefType_CHILD_OF, TraceIdLow: 0x99, SpanId: 0x42},
			}
		}), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0x41}, sp.ParentSpanId)
			require.Len(t, sp.Links, 2)
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0x40}, sp.Links[0].SpanId)
			require.Equal(t, map[string]any{"opentracing.ref_type": "follows_from"}, attrMap(sp.Links[0].Attributes))
			require.Equal(t, byte(0x99), sp.Links[1].TraceId[15])
			require.Equal(t, map[string]any{"opentracing.ref_type": "child_of"}, attrMap(sp.Links[1].Attributes))
		}},
		{"reference duplicating parentSpanId is not a link", with(func(s *jt.Span) {
			s.ParentSpanId = 0x41
			s.References = []*jt.SpanRef{{RefType: jt.SpanRefType_CHILD_OF, TraceIdLow: 0x10, SpanId: 0x41}}
		}), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Empty(t, sp.Links)
		}},
		{"logs to events", with(func(s *jt.Span) {
			s.Logs = []*jt.Log{{Timestamp: 1_000_100, Fields: []*jt.Tag{strTag("event", "retry"), longTag("attempt", 2)}}, {Timestamp: 5, Fields: []*jt.Tag{strTag("message", "m")}}}
		}), func(t *testing.T, sp *tracepb.Span, _ *commonpb.InstrumentationScope) {
			require.Len(t, sp.Events, 2)
			require.Equal(t, "retry", sp.Events[0].Name)
			require.Equal(t, uint64(1_000_100_000), sp.Events[0].TimeUnixNano)
			require.Equal(t, map[string]any{"attempt": int64(2)}, attrMap(sp.Events[0].Attributes))
			require.Equal(t, "", sp.Events[1].Name)
			require.Equal(t, map[string]any{"message": "m"}, attrMap(sp.Events[1].Attributes))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ThriftToOTLP(&jt.Batch{Process: proc, Spans: []*jt.Span{tc.span}})
			require.Len(t, req.ResourceSpans, 1)
			rs := req.ResourceSpans[0]
			require.Equal(t, map[string]any{
				"service.name": "api", "host.name": "h1", "opencensus.exporterversion": "Jaeger-Go-2.30.0", "ip": "10.0.0.1", "pid": int64(7),
			}, attrMap(rs.Resource.Attributes))
			tc.check(t, rs.ScopeSpans[0].Spans[0], rs.ScopeSpans[0].Scope)
		})
	}
}

func TestNilsAndEmpty(t *testing.T) {
	req := ThriftToOTLP(nil, &jt.Batch{Spans: []*jt.Span{nil, {Tags: []*jt.Tag{nil}, Logs: []*jt.Log{nil}, References: []*jt.SpanRef{nil}}}})
	require.Len(t, req.ResourceSpans, 1)
	require.Equal(t, "OTLPResourceNoServiceName", attrMap(req.ResourceSpans[0].Resource.Attributes)["service.name"])
	require.Empty(t, ProtoToOTLP(&jmodel.Batch{Spans: []*jmodel.Span{nil}}).ResourceSpans)
}

// thriftToProto builds the api_v2 form of a thrift batch (what a Jaeger
// agent forwards over gRPC), for the parity test.
func thriftToProto(b *jt.Batch) *jmodel.Batch {
	conv := func(tags []*jt.Tag) []jmodel.KeyValue {
		var out []jmodel.KeyValue
		for _, t := range tags {
			switch t.VType {
			case jt.TagType_STRING:
				out = append(out, jmodel.String(t.Key, t.GetVStr()))
			case jt.TagType_BOOL:
				out = append(out, jmodel.Bool(t.Key, t.GetVBool()))
			case jt.TagType_LONG:
				out = append(out, jmodel.Int64(t.Key, t.GetVLong()))
			case jt.TagType_DOUBLE:
				out = append(out, jmodel.Float64(t.Key, t.GetVDouble()))
			case jt.TagType_BINARY:
				out = append(out, jmodel.Binary(t.Key, t.VBinary))
			}
		}
		return out
	}
	out := &jmodel.Batch{Process: &jmodel.Process{ServiceName: b.Process.ServiceName, Tags: conv(b.Process.Tags)}}
	for _, s := range b.Spans {
		ps := &jmodel.Span{
			TraceID:       jmodel.NewTraceID(uint64(s.TraceIdHigh), uint64(s.TraceIdLow)),
			SpanID:        jmodel.NewSpanID(uint64(s.SpanId)),
			OperationName: s.OperationName,
			StartTime:     time.UnixMicro(s.StartTime),
			Duration:      time.Duration(s.Duration) * time.Microsecond,
			Tags:          conv(s.Tags),
		}
		if s.ParentSpanId != 0 {
			ps.References = append(ps.References, jmodel.NewChildOfRef(ps.TraceID, jmodel.NewSpanID(uint64(s.ParentSpanId))))
		}
		for _, r := range s.References {
			ps.References = append(ps.References, jmodel.SpanRef{TraceID: jmodel.NewTraceID(uint64(r.TraceIdHigh), uint64(r.TraceIdLow)), SpanID: jmodel.NewSpanID(uint64(r.SpanId)), RefType: jmodel.SpanRefType(r.RefType)})
		}
		for _, l := range s.Logs {
			ps.Logs = append(ps.Logs, jmodel.Log{Timestamp: time.UnixMicro(l.Timestamp), Fields: conv(l.Fields)})
		}
		out.Spans = append(out.Spans, ps)
	}
	return out
}

// Batch returns a realistic Jaeger batch of n spans.
func Batch(n int) *jt.Batch {
	b := &jt.Batch{Process: &jt.Process{ServiceName: "checkout", Tags: []*jt.Tag{
		strTag("hostname", "node-7"), strTag("jaeger.version", "Go-2.30.0"), strTag("ip", "10.1.2.3"), strTag("client-uuid", "6d3b1f2a9c"),
	}}}
	for i := 0; i < n; i++ {
		s := &jt.Span{
			TraceIdLow: 0x5af7183fb1d4cf5f + int64(i/10), TraceIdHigh: int64(i % 2), SpanId: int64(1000 + i), ParentSpanId: int64(900 + i),
			OperationName: fmt.Sprintf("HTTP GET /api/items/%d", i%7), Flags: 1,
			StartTime: 1_700_000_000_000_000 + int64(i)*1000, Duration: int64(100 + i),
			Tags: []*jt.Tag{
				strTag("span.kind", []string{"server", "client"}[i%2]), strTag("http.method", "GET"),
				strTag("http.url", fmt.Sprintf("https://shop.example.com/api/items/%d", i)), longTag("http.status_code", 200),
				strTag("component", "net/http"), strTag("peer.service", "inventory"), boolTag("sampler.param", true),
				strTag("sampler.type", "const"), {Key: "ratio", VType: jt.TagType_DOUBLE, VDouble: ptr(0.25)}, strTag("db.statement", "SELECT * FROM items WHERE id = $1"),
			},
			Logs: []*jt.Log{{Timestamp: 1_700_000_000_000_010 + int64(i)*1000, Fields: []*jt.Tag{strTag("event", "cache.miss"), strTag("key", fmt.Sprintf("item:%d", i))}}},
		}
		if i%3 == 0 {
			s.Tags = append(s.Tags, boolTag("error", true))
		}
		if i%4 == 0 {
			s.References = []*jt.SpanRef{{RefType: jt.SpanRefType_FOLLOWS_FROM, TraceIdLow: 0x77, SpanId: 0x88}}
		}
		b.Spans = append(b.Spans, s)
	}
	return b
}

func TestThriftAndProtoAgree(t *testing.T) {
	b := Batch(25)
	fromThrift := ThriftToOTLP(b)
	fromProto := ProtoToOTLP(thriftToProto(b))
	require.True(t, proto.Equal(fromThrift, fromProto), "thrift %v\nproto %v", fromThrift, fromProto)
}

func TestDecodeAgentAndBatch(t *testing.T) {
	ctx := context.Background()
	want := Batch(5)
	for _, tc := range []struct {
		name  string
		proto Protocol
		f     thrift.TProtocolFactory
	}{
		{"compact", Compact, thrift.NewTCompactProtocolFactoryConf(nil)},
		{"binary", Binary, thrift.NewTBinaryProtocolFactoryConf(nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := thrift.NewTMemoryBuffer()
			client := agent.NewAgentClientFactory(buf, tc.f)
			require.NoError(t, client.EmitBatch(ctx, want))
			got, err := DecodeAgentMessage(buf.Bytes(), tc.proto)
			require.NoError(t, err)
			require.True(t, proto.Equal(ThriftToOTLP(want), ThriftToOTLP(got)))
		})
	}
	ser := thrift.NewTSerializer()
	body, err := ser.Write(ctx, want)
	require.NoError(t, err)
	got, err := DecodeThriftBatch(body)
	require.NoError(t, err)
	require.True(t, proto.Equal(ThriftToOTLP(want), ThriftToOTLP(got)))

	pb, err := (&api_v2.PostSpansRequest{Batch: *thriftToProto(want)}).Marshal()
	require.NoError(t, err)
	preq, err := DecodePostSpans(pb)
	require.NoError(t, err)
	require.True(t, proto.Equal(ThriftToOTLP(want), ProtoToOTLP(&preq.Batch)))
}

func TestDecodeErrors(t *testing.T) {
	for name, p := range map[string][]byte{
		"empty":          {},
		"garbage":        []byte("hello world, not thrift"),
		"huge list":      {0x82, 0x21, 0x01, 0x09, 'e', 'm', 'i', 't', 'B', 'a', 't', 'c', 'h', 0x1c, 0x1c, 0x18, 0x00, 0x00, 0x19, 0xfc, 0xff, 0xff, 0xff, 0x07},
		"wrong method":   {0x82, 0x21, 0x01, 0x04, 'n', 'o', 'p', 'e', 0x00},
		"truncated call": {0x82, 0x21, 0x01, 0x09, 'e', 'm', 'i', 't', 'B', 'a', 't', 'c', 'h'},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeAgentMessage(p, Compact)
			require.ErrorIs(t, err, ErrInvalid)
			_, err = DecodeAgentMessage(p, Binary)
			require.ErrorIs(t, err, ErrInvalid)
			_, err = DecodeThriftBatch(p)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
	_, err := DecodePostSpans([]byte{0x0a, 0x05, 0x01})
	require.ErrorIs(t, err, ErrInvalid)
}
