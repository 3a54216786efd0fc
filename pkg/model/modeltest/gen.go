// Package modeltest builds realistic OTLP requests and OTLP/JSON documents
// for the tests and benchmarks of the model and receiver packages.
package modeltest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func randID(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	b[0] |= 1 // never all zero
	return b
}

// Request returns a request with spans spread over 2 services, each span
// carrying about ten attributes of every type, an event and sometimes a link,
// like an instrumented HTTP service would send.
func Request(seed uint64, spans int) *coltracepb.ExportTraceServiceRequest {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	req := &coltracepb.ExportTraceServiceRequest{}
	for svc := 0; svc < 2; svc++ {
		rs := &tracepb.ResourceSpans{
			Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
				str("service.name", fmt.Sprintf("svc-%d", svc)),
				str("host.name", "node-7"),
				str("telemetry.sdk.language", "go"),
				{Key: "process.pid", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 4242}}},
			}},
			ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "net/http", Version: "1.2.3"}}},
			SchemaUrl:  "https://opentelemetry.io/schemas/1.26.0",
		}
		req.ResourceSpans = append(req.ResourceSpans, rs)
	}
	trace := randID(rng, 16)
	for i := 0; i < spans; i++ {
		if i%10 == 0 {
			trace = randID(rng, 16)
		}
		start := uint64(1_700_000_000_000_000_000) + uint64(i)*1_000_000
		sp := &tracepb.Span{
			TraceId:           trace,
			SpanId:            randID(rng, 8),
			ParentSpanId:      randID(rng, 8),
			Name:              fmt.Sprintf("GET /api/items/%d", i%7),
			Kind:              tracepb.Span_SpanKind(1 + i%5),
			StartTimeUnixNano: start,
			EndTimeUnixNano:   start + uint64(rng.IntN(1e9)),
			TraceState:        "rojo=00f067aa0ba902b7",
			Attributes: []*commonpb.KeyValue{
				str("http.request.method", "GET"),
				str("url.full", fmt.Sprintf("https://shop.example.com/api/items/%d?page=%d", i, rng.IntN(100))),
				str("http.route", "/api/items/{id}"),
				{Key: "http.response.status_code", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 200}}},
				str("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"),
				str("server.address", "shop.example.com"),
				{Key: "server.port", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 443}}},
				{Key: "sampling.ratio", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.25}}},
				{Key: "cache.hit", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: i%2 == 0}}},
				str("db.system", "postgresql"),
			},
			Events: []*tracepb.Span_Event{{
				TimeUnixNano: start + 1000,
				Name:         "cache.lookup",
				Attributes:   []*commonpb.KeyValue{str("cache.key", fmt.Sprintf("item:%d", i))},
			}},
			Status: &tracepb.Status{Code: tracepb.Status_StatusCode(i % 3), Message: map[bool]string{true: "boom"}[i%3 == 2]},
		}
		if i%4 == 0 {
			sp.Links = []*tracepb.Span_Link{{TraceId: randID(rng, 16), SpanId: randID(rng, 8), Attributes: []*commonpb.KeyValue{str("link.kind", "batch")}}}
		}
		rs := req.ResourceSpans[i%2]
		rs.ScopeSpans[0].Spans = append(rs.ScopeSpans[0].Spans, sp)
	}
	return req
}

// JSONOptions select an OTLP/JSON spelling.
type JSONOptions struct {
	ProtoNames   bool // snake_case field names
	EnumNumbers  bool // enums as numbers instead of names
	UpperHex     bool // IDs in upper-case hex
	Int64Numbers bool // 64-bit integers as JSON numbers, not strings
}

// JSON encodes req as OTLP/JSON: protojson's output with every ID rewritten
// from base64 to hex, as the OTLP specification requires.
func JSON(req *coltracepb.ExportTraceServiceRequest, o JSONOptions) ([]byte, error) {
	raw, err := protojson.MarshalOptions{UseProtoNames: o.ProtoNames, UseEnumNumbers: o.EnumNumbers}.Marshal(req)
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if err := rewrite(doc, o); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

var idKeys = map[string]bool{"traceId": true, "spanId": true, "parentSpanId": true, "trace_id": true, "span_id": true, "parent_span_id": true}

var int64Keys = map[string]bool{
	"startTimeUnixNano": true, "endTimeUnixNano": true, "timeUnixNano": true, "intValue": true,
	"start_time_unix_nano": true, "end_time_unix_nano": true, "time_unix_nano": true, "int_value": true,
}

func rewrite(v any, o JSONOptions) error {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			s, isStr := x.(string)
			switch {
			case idKeys[k] && isStr:
				b, err := base64.StdEncoding.DecodeString(s)
				if err != nil {
					return err
				}
				h := hex.EncodeToString(b)
				if o.UpperHex {
					h = fmt.Sprintf("%X", b)
				}
				v[k] = h
			case int64Keys[k] && isStr && o.Int64Numbers:
				v[k] = json.Number(s)
			default:
				if err := rewrite(x, o); err != nil {
					return err
				}
			}
		}
	case []any:
		for _, x := range v {
			if err := rewrite(x, o); err != nil {
				return err
			}
		}
	}
	return nil
}
