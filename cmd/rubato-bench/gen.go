package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// template is one marshaled OTLP request and the offsets of every ID in it,
// so that a request with fresh IDs costs a copy and a few writes instead of
// building and marshaling protobuf: the client must not steal the server's
// CPU on a shared 2-core machine.
type template struct {
	bytes      []byte
	traceIDs   [][]int          // per trace, offsets of its 16-byte ID
	spanIDs    [][]int          // per span, offsets of its 8-byte ID (as span and as parent)
	reqIDs     [][]int          // offsets of 16-hex-digit request IDs, rewritten per request
	times      map[uint64][]int // offsets of each distinct timestamp, shifted per request
	spans      int
	traceCount int
}

func str(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

func num(k string, v int64) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: v}}}
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// newTemplate builds traces × spansPer spans: a SERVER root and CLIENT or
// INTERNAL children carrying HTTP, database and RPC attributes as current
// OpenTelemetry instrumentation emits them, for three services.
func newTemplate(traces, spansPer int) (*template, error) {
	services := []string{"frontend", "checkout", "payments"}
	now := uint64(time.Now().UnixNano())
	req := &coltracepb.ExportTraceServiceRequest{}
	var traceIDs [][]byte
	var spanIDs [][]byte
	for si, svc := range services {
		rs := &tracev1.ResourceSpans{
			Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{
				str("service.name", svc), str("service.version", "1.27.3"), str("service.namespace", "shop"),
				str("k8s.namespace.name", "shop-prod"), str("k8s.pod.name", svc+"-6b8f9c7d5-x7k2p"),
				str("k8s.node.name", "ip-10-0-12-34.eu-west-1.compute.internal"), str("k8s.cluster.name", "prod-eu"),
				str("telemetry.sdk.language", "go"), str("telemetry.sdk.name", "opentelemetry"), str("telemetry.sdk.version", "1.38.0"),
			}},
			SchemaUrl: "https://opentelemetry.io/schemas/1.26.0",
		}
		ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", Version: "0.63.0"}}
		rs.ScopeSpans = append(rs.ScopeSpans, ss)
		for t := si; t < traces; t += len(services) {
			for len(traceIDs) <= t {
				traceIDs = append(traceIDs, random(16))
			}
			tid := traceIDs[t]
			var root []byte
			for s := 0; s < spansPer; s++ {
				sid := random(8)
				spanIDs = append(spanIDs, sid)
				start := now + uint64(s)*1_000_000
				sp := &tracev1.Span{
					TraceId: tid, SpanId: sid, Name: "GET /api/checkout/{cartId}", Kind: tracev1.Span_SPAN_KIND_SERVER,
					StartTimeUnixNano: start, EndTimeUnixNano: start + uint64(3_000_000+s*250_000),
					Attributes: []*commonv1.KeyValue{
						str("http.request.method", "GET"), num("http.response.status_code", 200),
						str("url.path", fmt.Sprintf("/api/checkout/%x", sid[:4])), str("server.address", svc+".shop.svc.cluster.local"),
						num("server.port", 8080), str("network.protocol.version", "1.1"),
						str("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"),
						str("app.request_id", fmt.Sprintf("%x", random(8))),
						str("client.address", fmt.Sprintf("10.%d.%d.%d", sid[1], sid[2], sid[3])),
						str("http.route", "/api/checkout/{cartId}"),
					},
					Status: &tracev1.Status{},
				}
				if s == 0 {
					root = sid
				} else {
					sp.ParentSpanId = root
					sp.Kind = tracev1.Span_SPAN_KIND_CLIENT
					sp.Name = "SELECT shop.orders"
					sp.Attributes = []*commonv1.KeyValue{
						str("db.system", "postgresql"), str("db.namespace", "shop"),
						str("db.query.text", "SELECT id, total, currency FROM orders WHERE cart_id = $1"),
						str("server.address", "orders-db.shop.svc.cluster.local"), num("server.port", 5432),
						num("db.response.returned_rows", int64(s)), str("app.request_id", fmt.Sprintf("%x", random(8))),
					}
					if s%5 == 4 {
						sp.Events = []*tracev1.Span_Event{{TimeUnixNano: start + 1000, Name: "retry", Attributes: []*commonv1.KeyValue{num("attempt", 2)}}}
					}
				}
				ss.Spans = append(ss.Spans, sp)
			}
		}
		req.ResourceSpans = append(req.ResourceSpans, rs)
	}
	return newTemplateFrom(req, traceIDs, spanIDs)
}

// newTemplateFrom marshals req and records the offsets template.next
// rewrites: trace and span IDs, every attribute value holding a 16-digit
// placeholder (app.request_id, and in the realistic profile URL IDs,
// statement literals and exception messages) and every timestamp.
func newTemplateFrom(req *coltracepb.ExportTraceServiceRequest, traceIDs, spanIDs [][]byte) (*template, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	tp := &template{bytes: b, spans: len(spanIDs), traceCount: len(traceIDs), times: map[uint64][]int{}}
	for _, rs := range req.ResourceSpans {
		for _, sp := range rs.ScopeSpans[0].Spans {
			for _, kv := range sp.Attributes {
				if ph := placeholderIn(kv); ph != "" {
					tp.reqIDs = append(tp.reqIDs, offsets(b, []byte(ph)))
				}
			}
			for _, e := range sp.Events {
				for _, kv := range e.Attributes {
					if ph := placeholderIn(kv); ph != "" {
						tp.reqIDs = append(tp.reqIDs, offsets(b, []byte(ph)))
					}
				}
			}
			for _, ts := range []uint64{sp.StartTimeUnixNano, sp.EndTimeUnixNano} {
				if _, ok := tp.times[ts]; !ok {
					tp.times[ts] = offsets(b, binary.LittleEndian.AppendUint64(nil, ts))
				}
			}
			for _, e := range sp.Events {
				if _, ok := tp.times[e.TimeUnixNano]; !ok {
					tp.times[e.TimeUnixNano] = offsets(b, binary.LittleEndian.AppendUint64(nil, e.TimeUnixNano))
				}
			}
		}
	}
	for _, id := range traceIDs {
		tp.traceIDs = append(tp.traceIDs, offsets(b, id))
	}
	for _, id := range spanIDs {
		tp.spanIDs = append(tp.spanIDs, offsets(b, id))
	}
	return tp, nil
}

// placeholderIn returns the 16-hex-digit placeholder an attribute value
// carries (app.request_id is one whole; URLs, statements and messages end
// with or embed one), or "".
func placeholderIn(kv *commonv1.KeyValue) string {
	v := kv.Value.GetStringValue()
	if kv.Key == "app.request_id" {
		return v
	}
	switch kv.Key {
	case "url.path", "url.full", "db.query.text", "exception.message":
	default:
		return ""
	}
	// The placeholder is the last run of 16 hex digits in the value.
	run := 0
	for i := len(v) - 1; i >= 0; i-- {
		c := v[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'f' {
			run++
			if run == 16 && (i == 0 || !isHexDigit(v[i-1])) {
				return v[i : i+16]
			}
			continue
		}
		run = 0
	}
	return ""
}

func isHexDigit(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }

func offsets(b, pattern []byte) []int {
	var out []int
	for i := 0; ; {
		j := bytes.Index(b[i:], pattern)
		if j < 0 {
			return out
		}
		out = append(out, i+j)
		i += j + len(pattern)
	}
}

// next writes a request with fresh IDs, request IDs and timestamps shifted
// by shift into dst, and returns it and the new trace IDs.
func (t *template) next(dst []byte, ids [][]byte, shift uint64) ([]byte, [][]byte) {
	dst = append(dst[:0], t.bytes...)
	ids = ids[:0]
	fresh := random(16*len(t.traceIDs) + 8*len(t.spanIDs) + 8*len(t.reqIDs))
	for i, offs := range t.traceIDs {
		id := fresh[16*i : 16*i+16]
		for _, o := range offs {
			copy(dst[o:], id)
		}
		ids = append(ids, id)
	}
	base := 16 * len(t.traceIDs)
	for i, offs := range t.spanIDs {
		for _, o := range offs {
			copy(dst[o:], fresh[base+8*i:base+8*i+8])
		}
	}
	reqBase := base + 8*len(t.spanIDs)
	for i, offs := range t.reqIDs {
		const digits = "0123456789abcdef"
		src := fresh[reqBase+8*i:]
		for _, o := range offs {
			for k := 0; k < 16; k++ {
				dst[o+k] = digits[(src[k/2]>>(4*(k%2)))&15]
			}
		}
	}
	for ts, offs := range t.times {
		for _, o := range offs {
			binary.LittleEndian.PutUint64(dst[o:], ts+shift)
		}
	}
	return dst, ids
}
