// Package otlpbuild holds the small pieces the Zipkin and Jaeger translators
// share when they build OTLP messages: IDs, typed attributes, status rules
// and the grouping of spans into ResourceSpans/ScopeSpans.
//
// Invariant: nothing here panics on any input; IDs that are all zero are
// returned as nil (OTLP's "absent").
package otlpbuild

import (
	"encoding/binary"
	"strconv"
	"strings"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Attribute keys and values used by the translators.
const (
	KeyServiceName       = "service.name"
	NoServiceName        = "OTLPResourceNoServiceName"
	KeyOtelStatusCode    = "otel.status_code"
	KeyOtelStatusDesc    = "otel.status_description"
	KeyError             = "error"
	KeySpanKind          = "span.kind"
	KeyTraceState        = "w3c.tracestate"
	KeyScopeName         = "otel.scope.name"
	KeyScopeVersion      = "otel.scope.version"
	KeyLibraryName       = "otel.library.name"
	KeyLibraryVersion    = "otel.library.version"
	KeyHTTPStatusCode    = "http.status_code"
	KeyHTTPStatusMessage = "http.status_message"
)

// TraceID returns the 16-byte OTLP trace ID for (high, low), nil if both are 0.
func TraceID(high, low uint64) []byte {
	if high == 0 && low == 0 {
		return nil
	}
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, high)
	binary.BigEndian.PutUint64(b[8:], low)
	return b
}

// SpanID returns the 8-byte OTLP span ID for id, nil if it is 0.
func SpanID(id uint64) []byte {
	if id == 0 {
		return nil
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, id)
	return b
}

// Str returns a string attribute.
func Str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// Int returns an int64 attribute.
func Int(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// Double returns a float64 attribute.
func Double(k string, v float64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}}
}

// Bool returns a boolean attribute.
func Bool(k string, v bool) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: v}}}
}

// Bytes returns a bytes attribute.
func Bytes(k string, v []byte) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: v}}}
}

// Has reports whether attrs holds key k.
func Has(attrs []*commonpb.KeyValue, k string) bool {
	for _, kv := range attrs {
		if kv.Key == k {
			return true
		}
	}
	return false
}

// KindFromString maps a span.kind tag value (case-insensitive) to a SpanKind.
func KindFromString(s string) (tracepb.Span_SpanKind, bool) {
	switch strings.ToLower(s) {
	case "client":
		return tracepb.Span_SPAN_KIND_CLIENT, true
	case "server":
		return tracepb.Span_SPAN_KIND_SERVER, true
	case "producer":
		return tracepb.Span_SPAN_KIND_PRODUCER, true
	case "consumer":
		return tracepb.Span_SPAN_KIND_CONSUMER, true
	case "internal":
		return tracepb.Span_SPAN_KIND_INTERNAL, true
	}
	return tracepb.Span_SPAN_KIND_UNSPECIFIED, false
}

// StatusCodeFromString maps an otel.status_code value: "OK", "ERROR",
// "UNSET" (any case), their STATUS_CODE_ forms, or the numbers 0-2.
func StatusCodeFromString(s string) (tracepb.Status_StatusCode, bool) {
	u := strings.TrimPrefix(strings.ToUpper(s), "STATUS_CODE_")
	switch u {
	case "UNSET", "0":
		return tracepb.Status_STATUS_CODE_UNSET, true
	case "OK", "1":
		return tracepb.Status_STATUS_CODE_OK, true
	case "ERROR", "2":
		return tracepb.Status_STATUS_CODE_ERROR, true
	}
	return tracepb.Status_STATUS_CODE_UNSET, false
}

// StatusFromHTTP applies the OpenTelemetry HTTP rule: 5xx is an error for
// every kind, 4xx for every kind except SERVER, and codes outside 100-599
// are errors; everything else leaves the status unset.
func StatusFromHTTP(code int64, kind tracepb.Span_SpanKind) tracepb.Status_StatusCode {
	switch {
	case code < 100 || code >= 600:
		return tracepb.Status_STATUS_CODE_ERROR
	case code >= 500:
		return tracepb.Status_STATUS_CODE_ERROR
	case code >= 400 && kind != tracepb.Span_SPAN_KIND_SERVER:
		return tracepb.Status_STATUS_CODE_ERROR
	}
	return tracepb.Status_STATUS_CODE_UNSET
}

// ParseInt parses a decimal integer, reporting whether it was one.
func ParseInt(s string) (int64, bool) {
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// ScopeKey identifies an instrumentation scope within a resource.
type ScopeKey struct{ Name, Version string }

// Group collects spans into ResourceSpans and ScopeSpans in first-seen
// order. The resource key is chosen by the caller (for example the service
// name plus resource attributes).
type Group struct {
	resources []*tracepb.ResourceSpans
	byKey     map[string]int
	scopes    []map[ScopeKey]*tracepb.ScopeSpans
}

// Resource returns the index of the ResourceSpans for key, creating it with
// attrs when it is new (attrs is then owned by the group).
func (g *Group) Resource(key string, attrs func() []*commonpb.KeyValue) int {
	if i, ok := g.byKey[key]; ok {
		return i
	}
	if g.byKey == nil {
		g.byKey = make(map[string]int)
	}
	i := len(g.resources)
	g.byKey[key] = i
	g.resources = append(g.resources, &tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: attrs()}})
	g.scopes = append(g.scopes, nil)
	return i
}

// Add appends sp to resource ri under scope sk.
func (g *Group) Add(ri int, sk ScopeKey, sp *tracepb.Span) {
	ss := g.scopes[ri][sk]
	if ss == nil {
		if g.scopes[ri] == nil {
			g.scopes[ri] = make(map[ScopeKey]*tracepb.ScopeSpans, 1)
		}
		ss = &tracepb.ScopeSpans{}
		if sk != (ScopeKey{}) {
			ss.Scope = &commonpb.InstrumentationScope{Name: sk.Name, Version: sk.Version}
		}
		g.scopes[ri][sk] = ss
		rs := g.resources[ri]
		rs.ScopeSpans = append(rs.ScopeSpans, ss)
	}
	ss.Spans = append(ss.Spans, sp)
}

// ResourceSpans returns what was grouped.
func (g *Group) ResourceSpans() []*tracepb.ResourceSpans { return g.resources }
