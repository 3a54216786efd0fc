package block

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Test data generators. Realistic traces model what an OTel SDK behind a
// Kubernetes service mesh sends: 10 spans over 3 services, k8s resource
// attributes, HTTP attributes, random IDs, durations and a few random-ish
// attribute values (~450 bytes of OTLP protobuf per span).

func strKV(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

func intKV(k string, v int64) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: v}}}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

var (
	genServices = []string{"frontend", "checkout", "cart", "payment", "shipping", "currency", "email", "recommendation", "ad", "product-catalog"}
	genRoutes   = []string{"/api/cart", "/api/checkout", "/api/products/{id}", "/api/users/{id}/orders", "/api/recommendations", "/health"}
	genMethods  = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
)

// genTraceIDs returns n distinct random trace IDs in ascending order.
func genTraceIDs(rng *rand.Rand, n int) [][]byte {
	ids := make([][]byte, 0, n)
	seen := map[string]bool{}
	for len(ids) < n {
		id := randBytes(rng, TraceIDSize)
		if !seen[string(id)] {
			seen[string(id)] = true
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, bytes.Compare)
	return ids
}

// genRealisticTrace builds one realistic trace of 10 spans.
func genRealisticTrace(rng *rand.Rand, traceID []byte, baseNano uint64) *tracev1.TracesData {
	const spans, services = 10, 3
	start := baseNano + uint64(rng.Int64N(int64(300e9)))
	td := &tracev1.TracesData{}
	var parent []byte
	spanNo := 0
	for s := 0; s < services; s++ {
		svc := genServices[rng.IntN(len(genServices))]
		ns := "shop-" + []string{"prod", "staging"}[rng.IntN(2)]
		pod := fmt.Sprintf("%s-%x-%05x", svc, rng.Uint32()&0xffffff, rng.Uint32()&0xfffff)
		rs := &tracev1.ResourceSpans{
			Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{
				strKV("service.name", svc),
				strKV("service.version", fmt.Sprintf("1.%d.%d", rng.IntN(3), rng.IntN(10))),
				strKV("k8s.cluster.name", "eu-west-1"),
				strKV("k8s.namespace.name", ns),
				strKV("k8s.pod.name", pod),
				strKV("k8s.container.name", svc),
				strKV("telemetry.sdk.language", "go"),
				strKV("telemetry.sdk.name", "opentelemetry"),
				strKV("telemetry.sdk.version", "1.28.0"),
			}},
			SchemaUrl: "https://opentelemetry.io/schemas/1.26.0",
		}
		ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", Version: "0.53.0"}}
		rs.ScopeSpans = append(rs.ScopeSpans, ss)
		n := spans / services
		if s == services-1 {
			n = spans - spanNo
		}
		for i := 0; i < n; i++ {
			spanID := randBytes(rng, 8)
			route := genRoutes[rng.IntN(len(genRoutes))]
			method := genMethods[rng.IntN(len(genMethods))]
			status := int64(200)
			if rng.IntN(20) == 0 {
				status = 500
			}
			spStart := start + uint64(spanNo)*uint64(rng.Int64N(2e6))
			kind := tracev1.Span_SPAN_KIND_SERVER
			if i%2 == 1 {
				kind = tracev1.Span_SPAN_KIND_CLIENT
			}
			sp := &tracev1.Span{
				TraceId:           traceID,
				SpanId:            spanID,
				ParentSpanId:      parent,
				Name:              method + " " + route,
				Kind:              kind,
				StartTimeUnixNano: spStart,
				EndTimeUnixNano:   spStart + uint64(rng.Int64N(50e6)),
				Flags:             0x101,
				Attributes: []*commonv1.KeyValue{
					strKV("http.method", method),
					strKV("http.route", route),
					strKV("http.url", fmt.Sprintf("http://%s.%s.svc:8080%s?user=%d&session=%x", svc, ns, route, rng.IntN(100000), rng.Uint32())),
					intKV("http.status_code", status),
					strKV("net.peer.name", fmt.Sprintf("10.%d.%d.%d", rng.IntN(4), rng.IntN(256), rng.IntN(256))),
					intKV("net.peer.port", int64(30000+rng.IntN(30000))),
					strKV("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"),
					intKV("http.response_content_length", int64(rng.IntN(20000))),
				},
				Status: &tracev1.Status{},
			}
			if status >= 500 {
				sp.Status = &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR, Message: "internal error"}
			}
			ss.Spans = append(ss.Spans, sp)
			parent = spanID
			spanNo++
		}
		td.ResourceSpans = append(td.ResourceSpans, rs)
	}
	return td
}

// genExoticTrace exercises every OTLP field and value type.
func genExoticTrace(traceID []byte) *tracev1.TracesData {
	arr := &commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{ArrayValue: &commonv1.ArrayValue{Values: []*commonv1.AnyValue{
		{Value: &commonv1.AnyValue_StringValue{StringValue: "a"}},
		{Value: &commonv1.AnyValue_IntValue{IntValue: -7}},
		{},
	}}}}
	kvl := &commonv1.AnyValue{Value: &commonv1.AnyValue_KvlistValue{KvlistValue: &commonv1.KeyValueList{Values: []*commonv1.KeyValue{
		strKV("nested", "x"),
		{Key: "deeper", Value: arr},
	}}}}
	allTypes := []*commonv1.KeyValue{
		intKV("http.status_code", 404), // dedicated, not first
		strKV("s", "str"),
		strKV("empty", ""),
		{Key: "b", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: true}}},
		{Key: "bf", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: false}}},
		intKV("i0", 0),
		intKV("i", -1<<62),
		{Key: "d", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: 3.25}}},
		{Key: "d0", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: 0}}},
		{Key: "bytes", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_BytesValue{BytesValue: []byte{0, 1, 2, 255}}}},
		{Key: "arr", Value: arr},
		{Key: "kvl", Value: kvl},
		{Key: "nilvalue"},
		{Key: "emptyvalue", Value: &commonv1.AnyValue{}},
		strKV("http.method", "GET"),
		strKV("http.method", "PUT"),           // duplicate key stays generic
		intKV("http.url", 5),                  // dedicated key, wrong type: stays generic
		intKV("http.response.status_code", 0), // dedicated int zero
		strKV("url.full", ""),                 // dedicated string empty
		strKV("", "empty key"),
	}
	other := bytes.Repeat([]byte{0xee}, 16)
	return &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{
		{
			Resource: &resourcev1.Resource{
				Attributes: []*commonv1.KeyValue{
					strKV("host.name", "h1"),
					strKV("service.name", "svc-a"),
					strKV("k8s.pod.name", "pod-1"),
					intKV("k8s.namespace.name", 3), // wrong type
					strKV("k8s.cluster.name", "c"),
					strKV("k8s.container.name", "ctr"),
				},
				DroppedAttributesCount: 3,
			},
			SchemaUrl: "https://opentelemetry.io/schemas/1.21.0",
			ScopeSpans: []*tracev1.ScopeSpans{
				{
					Scope: &commonv1.InstrumentationScope{
						Name: "lib", Version: "1.2.3",
						Attributes:             []*commonv1.KeyValue{strKV("scope.attr", "v"), {Key: "arr", Value: arr}},
						DroppedAttributesCount: 1,
					},
					SchemaUrl: "scope-schema",
					Spans: []*tracev1.Span{
						{
							TraceId:                traceID,
							SpanId:                 []byte{1, 2, 3, 4, 5, 6, 7, 8},
							TraceState:             "vendor=abc,other=1",
							Name:                   "root",
							Kind:                   tracev1.Span_SPAN_KIND_SERVER,
							StartTimeUnixNano:      1_700_000_000_000_000_000,
							EndTimeUnixNano:        1_700_000_001_000_000_000,
							Attributes:             allTypes,
							DroppedAttributesCount: 2,
							Events: []*tracev1.Span_Event{
								{TimeUnixNano: 1_700_000_000_500_000_000, Name: "ev", Attributes: []*commonv1.KeyValue{strKV("e", "1"), {Key: "kvl", Value: kvl}}, DroppedAttributesCount: 4},
								{TimeUnixNano: 5, Name: "before start"},
							},
							DroppedEventsCount: 5,
							Links: []*tracev1.Span_Link{
								{TraceId: other, SpanId: []byte{9, 9, 9, 9, 9, 9, 9, 9}, TraceState: "l=1", Attributes: []*commonv1.KeyValue{intKV("li", 1)}, DroppedAttributesCount: 6, Flags: 0x301},
								{},
							},
							DroppedLinksCount: 7,
							Status:            &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR, Message: "boom"},
							Flags:             0x1ff,
						},
						{
							TraceId:           other, // differs from the row's trace ID
							SpanId:            []byte{8, 7},
							ParentSpanId:      []byte{1, 2, 3, 4, 5, 6, 7, 8},
							Name:              "end before start",
							Kind:              tracev1.Span_SpanKind(42),
							StartTimeUnixNano: 100,
							EndTimeUnixNano:   50,
							Status:            &tracev1.Status{Code: tracev1.Status_StatusCode(9)},
						},
						{
							// no trace id, no status, no times
							SpanId: []byte{},
							Name:   "bare",
						},
					},
				},
				{}, // nil scope, no spans
			},
		},
		{}, // nil resource, no scopes
		{
			Resource: &resourcev1.Resource{}, // empty resource
			ScopeSpans: []*tracev1.ScopeSpans{{
				Scope: &commonv1.InstrumentationScope{},
				Spans: []*tracev1.Span{{TraceId: traceID, SpanId: []byte{7}, StartTimeUnixNano: 1<<64 - 1, EndTimeUnixNano: 3, Status: &tracev1.Status{}}},
			}},
		},
	}}
}

func seededRand(tb testing.TB, seed uint64) *rand.Rand {
	tb.Helper()
	return rand.New(rand.NewPCG(seed, seed^0x5eed))
}
