package zipkin

import (
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

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
		}
	}
	return m
}

func one(t testing.TB, s Span) (*tracepb.Span, map[string]any, *commonpb.InstrumentationScope) {
	t.Helper()
	req := ToOTLP([]Span{s})
	require.Len(t, req.ResourceSpans, 1)
	rs := req.ResourceSpans[0]
	require.Len(t, rs.ScopeSpans, 1)
	require.Len(t, rs.ScopeSpans[0].Spans, 1)
	return rs.ScopeSpans[0].Spans[0], attrMap(rs.Resource.Attributes), rs.ScopeSpans[0].Scope
}

func TestConversionRules(t *testing.T) {
	base := Span{TraceIDLow: 0xabc, ID: 0x1, Name: "op", Timestamp: 1_000_000, Duration: 250, Local: Endpoint{ServiceName: "front"}}
	with := func(f func(*Span)) Span { s := base; f(&s); return s }
	for _, tc := range []struct {
		name  string
		in    Span
		check func(t *testing.T, sp *tracepb.Span, res map[string]any, scope *commonpb.InstrumentationScope)
	}{
		{"64-bit trace id gets high zero", base, func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0xbc}, sp.TraceId)
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 1}, sp.SpanId)
		}},
		{"128-bit trace id kept", with(func(s *Span) { s.TraceIDHigh = 0xff }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, byte(0xff), sp.TraceId[7])
		}},
		{"microseconds to nanoseconds", base, func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, uint64(1_000_000_000), sp.StartTimeUnixNano)
			require.Equal(t, uint64(1_000_250_000), sp.EndTimeUnixNano)
		}},
		{"service name to resource", base, func(t *testing.T, _ *tracepb.Span, res map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, map[string]any{"service.name": "front"}, res)
		}},
		{"missing service name", with(func(s *Span) { s.Local = Endpoint{} }), func(t *testing.T, _ *tracepb.Span, res map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, "OTLPResourceNoServiceName", res["service.name"])
		}},
		{"parent id equal to id dropped", with(func(s *Span) { s.ParentID = s.ID }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Nil(t, sp.ParentSpanId)
		}},
		{"parent id kept", with(func(s *Span) { s.ParentID = 7 }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 7}, sp.ParentSpanId)
		}},
		{"kind", with(func(s *Span) { s.Kind = KindConsumer }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Span_SPAN_KIND_CONSUMER, sp.Kind)
		}},
		{"span.kind tag when kind absent", with(func(s *Span) { s.Tags = []Tag{{"span.kind", "internal"}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Span_SPAN_KIND_INTERNAL, sp.Kind)
			require.Empty(t, sp.Attributes)
		}},
		{"span.kind tag kept when kind set", with(func(s *Span) { s.Kind = KindServer; s.Tags = []Tag{{"span.kind", "client"}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, sp.Kind)
			require.Equal(t, map[string]any{"span.kind": "client"}, attrMap(sp.Attributes))
		}},
		{"otel status code and description", with(func(s *Span) {
			s.Tags = []Tag{{"otel.status_code", "ERROR"}, {"otel.status_description", "bad"}, {"error", "bad"}}
		}), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, sp.Status.Code)
			require.Equal(t, "bad", sp.Status.Message)
			require.Empty(t, sp.Attributes)
		}},
		{"otel status OK", with(func(s *Span) { s.Tags = []Tag{{"otel.status_code", "STATUS_CODE_OK"}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Status_STATUS_CODE_OK, sp.Status.Code)
		}},
		{"error tag true removed", with(func(s *Span) { s.Tags = []Tag{{"error", "true"}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, sp.Status.Code)
			require.Empty(t, sp.Attributes)
		}},
		{"error tag message kept", with(func(s *Span) { s.Tags = []Tag{{"error", "timeout"}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, sp.Status.Code)
			require.Equal(t, map[string]any{"error": "timeout"}, attrMap(sp.Attributes))
		}},
		{"no status without tags", base, func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Nil(t, sp.Status)
		}},
		{"tracestate", with(func(s *Span) { s.Tags = []Tag{{"w3c.tracestate", "a=b"}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, "a=b", sp.TraceState)
			require.Empty(t, sp.Attributes)
		}},
		{"otel.library to scope", with(func(s *Span) { s.Tags = []Tag{{"otel.library.name", "lib"}, {"otel.library.version", "1.0"}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, scope *commonpb.InstrumentationScope) {
			require.Equal(t, "lib", scope.Name)
			require.Equal(t, "1.0", scope.Version)
			require.Empty(t, sp.Attributes)
		}},
		{"otel.scope to scope", with(func(s *Span) { s.Tags = []Tag{{"otel.scope.name", "sc"}} }), func(t *testing.T, _ *tracepb.Span, _ map[string]any, scope *commonpb.InstrumentationScope) {
			require.Equal(t, "sc", scope.Name)
		}},
		{"no scope", base, func(t *testing.T, _ *tracepb.Span, _ map[string]any, scope *commonpb.InstrumentationScope) {
			require.Nil(t, scope)
		}},
		{"resource tags move to resource", with(func(s *Span) {
			s.Tags = []Tag{{"host.name", "h"}, {"telemetry.sdk.language", "go"}, {"http.method", "GET"}}
		}), func(t *testing.T, sp *tracepb.Span, res map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, map[string]any{"service.name": "front", "host.name": "h", "telemetry.sdk.language": "go"}, res)
			require.Equal(t, map[string]any{"http.method": "GET"}, attrMap(sp.Attributes))
		}},
		{"tags stay strings", with(func(s *Span) { s.Tags = []Tag{{"http.status_code", "200"}, {"flag", "true"}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, map[string]any{"http.status_code": "200", "flag": "true"}, attrMap(sp.Attributes))
		}},
		{"endpoints to net attributes", with(func(s *Span) {
			s.Local = Endpoint{ServiceName: "front", IPv4: "10.0.0.1", Port: 8080}
			s.Remote = Endpoint{ServiceName: "db", IPv6: "::1", Port: 5432}
		}), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, map[string]any{
				"net.host.ip": "10.0.0.1", "net.host.port": int64(8080),
				"peer.service": "db", "net.peer.ip": "::1", "net.peer.port": int64(5432),
			}, attrMap(sp.Attributes))
		}},
		{"endpoint never overrides a tag", with(func(s *Span) {
			s.Remote = Endpoint{ServiceName: "db"}
			s.Tags = []Tag{{"peer.service", "orig"}}
		}), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, map[string]any{"peer.service": "orig"}, attrMap(sp.Attributes))
		}},
		{"annotations to events", with(func(s *Span) { s.Annotations = []Annotation{{Timestamp: 5, Value: "retry"}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Len(t, sp.Events, 1)
			require.Equal(t, "retry", sp.Events[0].Name)
			require.Equal(t, uint64(5000), sp.Events[0].TimeUnixNano)
		}},
		{"annotation name|attrs|dropped", with(func(s *Span) {
			s.Annotations = []Annotation{{Timestamp: 5, Value: `exc|{"n":3,"f":1.5,"s":"x","b":true}|2`}}
		}), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			ev := sp.Events[0]
			require.Equal(t, "exc", ev.Name)
			require.Equal(t, uint32(2), ev.DroppedAttributesCount)
			require.Equal(t, map[string]any{"n": int64(3), "f": 1.5, "s": "x", "b": true}, attrMap(ev.Attributes))
		}},
		{"otel go exporter annotation", with(func(s *Span) { s.Annotations = []Annotation{{Value: `exception: {"exception.message":"x","n":2}`}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, "exception", sp.Events[0].Name)
			require.Equal(t, map[string]any{"exception.message": "x", "n": int64(2)}, attrMap(sp.Events[0].Attributes))
		}},
		{"annotation with pipes but no json", with(func(s *Span) { s.Annotations = []Annotation{{Value: "a|b|c"}} }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, "a|b|c", sp.Events[0].Name)
		}},
		{"shared is not mapped", with(func(s *Span) { s.Shared = true; s.Kind = KindServer }), func(t *testing.T, sp *tracepb.Span, _ map[string]any, _ *commonpb.InstrumentationScope) {
			require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0, 1}, sp.SpanId)
			require.Empty(t, sp.Attributes)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, res, scope := one(t, tc.in)
			tc.check(t, sp, res, scope)
		})
	}
}

func TestGrouping(t *testing.T) {
	spans := []Span{
		{TraceIDLow: 1, ID: 1, Local: Endpoint{ServiceName: "a"}},
		{TraceIDLow: 1, ID: 2, Local: Endpoint{ServiceName: "b"}},
		{TraceIDLow: 1, ID: 3, Local: Endpoint{ServiceName: "a"}, Tags: []Tag{{"otel.scope.name", "x"}}},
		{TraceIDLow: 1, ID: 4, Local: Endpoint{ServiceName: "a"}},
		{TraceIDLow: 1, ID: 5, Local: Endpoint{ServiceName: "a"}, Tags: []Tag{{"host.name", "other"}}},
	}
	req := ToOTLP(spans)
	require.Len(t, req.ResourceSpans, 3)
	require.Equal(t, "a", attrMap(req.ResourceSpans[0].Resource.Attributes)["service.name"])
	require.Len(t, req.ResourceSpans[0].ScopeSpans, 2)
	require.Len(t, req.ResourceSpans[0].ScopeSpans[0].Spans, 2)
	require.Equal(t, "b", attrMap(req.ResourceSpans[1].Resource.Attributes)["service.name"])
	require.Equal(t, "other", attrMap(req.ResourceSpans[2].Resource.Attributes)["host.name"])
}
