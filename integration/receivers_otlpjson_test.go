package integration

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// jsonStyle is one way of spelling OTLP/JSON, all of them valid per the
// OTLP specification (and the protobuf JSON mapping it builds on).
type jsonStyle struct {
	name         string
	snake        bool // proto field names instead of lowerCamelCase
	mixed        bool // alternate the two spellings key by key
	enumNumbers  bool // enums as integers instead of names
	int64Numbers bool // 64-bit integers as JSON numbers instead of strings
	upperHex     bool // IDs in upper-case hex
	gzip         bool // Content-Encoding: gzip
	n            int
}

func (st *jsonStyle) key(camel string) string {
	st.n++
	if !st.snake && (!st.mixed || st.n%2 == 0) {
		return camel
	}
	var b strings.Builder
	for _, r := range camel {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (st *jsonStyle) id(b []byte) string {
	if st.upperHex {
		return strings.ToUpper(hex.EncodeToString(b))
	}
	return hex.EncodeToString(b)
}

func (st *jsonStyle) int64(v int64) any {
	if st.int64Numbers {
		return json.Number(strconv.FormatInt(v, 10))
	}
	return strconv.FormatInt(v, 10)
}

func (st *jsonStyle) uint64(v uint64) any {
	if st.int64Numbers {
		return json.Number(strconv.FormatUint(v, 10))
	}
	return strconv.FormatUint(v, 10)
}

func (st *jsonStyle) enum(v int32, names map[int32]string) any {
	if st.enumNumbers {
		return v
	}
	return names[v]
}

func (st *jsonStyle) value(v *commonv1.AnyValue) map[string]any {
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		return map[string]any{st.key("stringValue"): x.StringValue}
	case *commonv1.AnyValue_BoolValue:
		return map[string]any{st.key("boolValue"): x.BoolValue}
	case *commonv1.AnyValue_IntValue:
		return map[string]any{st.key("intValue"): st.int64(x.IntValue)}
	case *commonv1.AnyValue_DoubleValue:
		var d any = x.DoubleValue
		switch {
		case math.IsInf(x.DoubleValue, 1):
			d = "Infinity"
		case math.IsInf(x.DoubleValue, -1):
			d = "-Infinity"
		}
		return map[string]any{st.key("doubleValue"): d}
	case *commonv1.AnyValue_BytesValue:
		return map[string]any{st.key("bytesValue"): base64.StdEncoding.EncodeToString(x.BytesValue)}
	case *commonv1.AnyValue_ArrayValue:
		vs := []any{}
		for _, e := range x.ArrayValue.Values {
			vs = append(vs, st.value(e))
		}
		return map[string]any{st.key("arrayValue"): map[string]any{"values": vs}}
	case *commonv1.AnyValue_KvlistValue:
		return map[string]any{st.key("kvlistValue"): map[string]any{"values": st.attrs(x.KvlistValue.Values)}}
	}
	return map[string]any{}
}

func (st *jsonStyle) attrs(kvs []*commonv1.KeyValue) []any {
	out := []any{}
	for _, kv := range kvs {
		out = append(out, map[string]any{"key": kv.Key, "value": st.value(kv.Value)})
	}
	return out
}

func (st *jsonStyle) span(sp *tracev1.Span) map[string]any {
	m := map[string]any{
		st.key("traceId"): st.id(sp.TraceId), st.key("spanId"): st.id(sp.SpanId), st.key("traceState"): sp.TraceState,
		st.key("parentSpanId"): st.id(sp.ParentSpanId), "flags": sp.Flags, "name": sp.Name,
		"kind":                           st.enum(int32(sp.Kind), tracev1.Span_SpanKind_name),
		st.key("startTimeUnixNano"):      st.uint64(sp.StartTimeUnixNano),
		st.key("endTimeUnixNano"):        st.uint64(sp.EndTimeUnixNano),
		"attributes":                     st.attrs(sp.Attributes),
		st.key("droppedAttributesCount"): sp.DroppedAttributesCount,
		st.key("droppedEventsCount"):     sp.DroppedEventsCount,
		st.key("droppedLinksCount"):      sp.DroppedLinksCount,
		"status": map[string]any{"message": sp.Status.GetMessage(),
			"code": st.enum(int32(sp.Status.GetCode()), tracev1.Status_StatusCode_name)},
	}
	var events, links []any
	for _, e := range sp.Events {
		events = append(events, map[string]any{st.key("timeUnixNano"): st.uint64(e.TimeUnixNano), "name": e.Name,
			"attributes": st.attrs(e.Attributes), st.key("droppedAttributesCount"): e.DroppedAttributesCount})
	}
	for _, l := range sp.Links {
		links = append(links, map[string]any{st.key("traceId"): st.id(l.TraceId), st.key("spanId"): st.id(l.SpanId),
			st.key("traceState"): l.TraceState, "attributes": st.attrs(l.Attributes),
			st.key("droppedAttributesCount"): l.DroppedAttributesCount, "flags": l.Flags})
	}
	m["events"], m["links"] = events, links
	return m
}

func (st *jsonStyle) encode(t testing.TB, req *coltracepb.ExportTraceServiceRequest) []byte {
	t.Helper()
	var rss []any
	for _, rs := range req.ResourceSpans {
		var sss []any
		for _, ss := range rs.ScopeSpans {
			var spans []any
			for _, sp := range ss.Spans {
				spans = append(spans, st.span(sp))
			}
			sss = append(sss, map[string]any{"scope": map[string]any{"name": ss.Scope.Name, "version": ss.Scope.Version,
				"attributes": st.attrs(ss.Scope.Attributes)}, "spans": spans, st.key("schemaUrl"): ss.SchemaUrl})
		}
		rss = append(rss, map[string]any{"resource": map[string]any{"attributes": st.attrs(rs.Resource.Attributes)},
			st.key("scopeSpans"): sss, st.key("schemaUrl"): rs.SchemaUrl})
	}
	b, err := json.Marshal(map[string]any{st.key("resourceSpans"): rss})
	require.NoError(t, err)
	return b
}

func kv(k string, v any) *commonv1.KeyValue {
	var av *commonv1.AnyValue
	switch x := v.(type) {
	case string:
		av = &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: x}}
	case int64:
		av = &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: x}}
	case float64:
		av = &commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: x}}
	case bool:
		av = &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: x}}
	case []byte:
		av = &commonv1.AnyValue{Value: &commonv1.AnyValue_BytesValue{BytesValue: x}}
	case []*commonv1.AnyValue:
		av = &commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{ArrayValue: &commonv1.ArrayValue{Values: x}}}
	case []*commonv1.KeyValue:
		av = &commonv1.AnyValue{Value: &commonv1.AnyValue_KvlistValue{KvlistValue: &commonv1.KeyValueList{Values: x}}}
	default:
		panic(fmt.Sprintf("kv: %T", v))
	}
	return &commonv1.KeyValue{Key: k, Value: av}
}

// otlpJSONRequest is two traces (two services) using every field the
// OTLP/JSON decoder reads, every value type and every kind and status.
func otlpJSONRequest() (*coltracepb.ExportTraceServiceRequest, [][]byte) {
	now := uint64(time.Now().Add(-time.Minute).UnixNano())
	ids := [][]byte{randBytes(16), randBytes(16)}
	typed := []*commonv1.KeyValue{
		kv("s", "text"), kv("i", int64(-1<<62)), kv("d", 0.125), kv("inf", math.Inf(1)), kv("ninf", math.Inf(-1)), kv("b", true),
		kv("bytes", []byte{0, 0xfb, 0xff}), kv("arr", []*commonv1.AnyValue{{Value: &commonv1.AnyValue_IntValue{IntValue: 1}},
			{Value: &commonv1.AnyValue_StringValue{StringValue: "two"}}}),
		kv("map", []*commonv1.KeyValue{kv("nested", 2.5), kv("deeper", []*commonv1.KeyValue{kv("x", false)})}),
	}
	var rss []*tracev1.ResourceSpans
	for svc, id := range ids {
		root := randBytes(8)
		var spans []*tracev1.Span
		for k := tracev1.Span_SPAN_KIND_UNSPECIFIED; k <= tracev1.Span_SPAN_KIND_CONSUMER; k++ {
			sp := &tracev1.Span{
				TraceId: id, SpanId: randBytes(8), ParentSpanId: root, TraceState: "rojo=00f067aa0ba902b7", Flags: 0x301,
				Name: "op-" + k.String(), Kind: k, StartTimeUnixNano: now + uint64(k)*1000, EndTimeUnixNano: now + uint64(k)*1000 + 999_999_999,
				Attributes: typed, DroppedAttributesCount: 1, DroppedEventsCount: 2, DroppedLinksCount: 3,
				Status: &tracev1.Status{Code: tracev1.Status_StatusCode(int32(k) % 3), Message: "status " + k.String()},
				Events: []*tracev1.Span_Event{{TimeUnixNano: now + 5, Name: "ev", Attributes: typed[:3], DroppedAttributesCount: 4}},
				Links: []*tracev1.Span_Link{{TraceId: randBytes(16), SpanId: randBytes(8), TraceState: "a=b", Attributes: typed[5:7],
					DroppedAttributesCount: 5, Flags: 0x100}},
			}
			if k == tracev1.Span_SPAN_KIND_SERVER {
				sp.SpanId, sp.ParentSpanId = root, nil
			}
			spans = append(spans, sp)
		}
		rss = append(rss, &tracev1.ResourceSpans{
			Resource: &resourcev1.Resource{Attributes: append([]*commonv1.KeyValue{kv("service.name", fmt.Sprintf("json-%d", svc))}, typed...)},
			ScopeSpans: []*tracev1.ScopeSpans{{
				Scope: &commonv1.InstrumentationScope{Name: "json/scope", Version: "9.9", Attributes: typed[:2]},
				Spans: spans, SchemaUrl: "https://opentelemetry.io/schemas/1.26.0",
			}},
			SchemaUrl: "https://opentelemetry.io/schemas/1.25.0",
		})
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: rss}, ids
}

// TestOTLPJSONRoundTrip posts OTLP/JSON as raw bytes in several valid
// spellings (hex IDs in either case, enum names and numbers, camelCase,
// snake_case and both mixed, 64-bit integers as strings and numbers,
// Infinity, gzip) and reads every span back, compared as protobuf messages
// with what the JSON said, live and from the backend.
func TestOTLPJSONRoundTrip(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h"})
	url := "http://" + s.otlpHTTP() + "/v1/traces"
	type sent struct {
		req *coltracepb.ExportTraceServiceRequest
		ids [][]byte
	}
	var all []sent
	for _, st := range []*jsonStyle{
		{name: "camelCase, enum names, int64 strings"},
		{name: "snake_case, enum numbers, int64 numbers, upper-case hex, gzip", snake: true, enumNumbers: true, int64Numbers: true, upperHex: true, gzip: true},
		{name: "mixed spellings, gzip", mixed: true, gzip: true},
	} {
		req, ids := otlpJSONRequest()
		body := st.encode(t, req)
		hdr := map[string]string{}
		if st.gzip {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, err := zw.Write(body)
			require.NoError(t, err)
			require.NoError(t, zw.Close())
			body, hdr["Content-Encoding"] = buf.Bytes(), "gzip"
		}
		resp, out := post(t, url, "application/json", body, hdr)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", st.name, out)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"), st.name)
		var answer map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &answer), st.name)
		require.NotContains(t, answer, "partialSuccess", st.name)
		all = append(all, sent{req, ids})
	}
	check := func(stage string) {
		for _, snt := range all {
			for i, id := range snt.ids {
				requireSameOTLP(t, snt.req.ResourceSpans[i], s.traceByID(t, id, ""), stage)
			}
		}
	}
	check("live")
	s.flush(t)
	check("from the backend")
}

// requireSameOTLP checks that got is exactly want as answered (asAnswered):
// its resource, scope and spans as protobuf messages.
func requireSameOTLP(t testing.TB, want *tracev1.ResourceSpans, got *tracev1.TracesData, stage string) {
	t.Helper()
	require.NotNil(t, got, stage)
	require.Len(t, got.ResourceSpans, 1, stage)
	want = asAnswered(want)
	g := got.ResourceSpans[0]
	require.True(t, proto.Equal(want.Resource, g.Resource), "%s: resource\nwant %v\ngot  %v", stage, want.Resource, g.Resource)
	require.Equal(t, want.SchemaUrl, g.SchemaUrl, stage)
	require.Len(t, g.ScopeSpans, 1, stage)
	ws, gs := want.ScopeSpans[0], g.ScopeSpans[0]
	require.True(t, proto.Equal(ws.Scope, gs.Scope), "%s: scope\nwant %v\ngot  %v", stage, ws.Scope, gs.Scope)
	require.Equal(t, ws.SchemaUrl, gs.SchemaUrl, stage)
	require.Len(t, gs.Spans, len(ws.Spans), stage)
	byID := map[string]*tracev1.Span{}
	for _, sp := range gs.Spans {
		byID[string(sp.SpanId)] = sp
	}
	for _, w := range ws.Spans {
		require.True(t, proto.Equal(w, byID[string(w.SpanId)]), "%s: span %x\nwant %v\ngot  %v", stage, w.SpanId, w, byID[string(w.SpanId)])
	}
}
