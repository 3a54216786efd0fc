package traceqltest

import (
	"encoding/binary"
	"math/rand"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Vocabulary shared by the trace and query generators.
var (
	Services     = []string{"frontend", "cart", "checkout", "db-proxy"}
	Namespaces   = []string{"shop", "infra"}
	Environments = []string{"production", "staging"}
	SpanNames    = []string{"GET /api/cart", "POST /api/checkout", "SELECT cart", "publish", "consume", "render"}
	Methods      = []string{"GET", "POST", "PUT", "DELETE"}
	StatusCodes  = []int64{200, 201, 404, 500, 503}
	DBSystems    = []string{"postgresql", "redis"}
	EventNames   = []string{"exception", "log", "retry"}
	Messages     = []string{"", "timeout", "connection refused", "not found"}
	ScopeNames   = []string{"otel-go", "grpc", "net/http"}
	Versions     = []string{"1.0.0", "1.2.3"}
	Regions      = []string{"eu-west-1", "us-east-1"}
)

// TraceOptions shape generated traces.
type TraceOptions struct {
	MinSpans, MaxSpans int // defaults 1 and 40
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.Intn(len(xs))] }

func str(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

func intKV(k string, v int64) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: v}}}
}

func floatKV(k string, v float64) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: v}}}
}

func boolKV(k string, v bool) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: v}}}
}

func arrKV(k string, vs ...*commonv1.AnyValue) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{ArrayValue: &commonv1.ArrayValue{Values: vs}}}}
}

func sv(s string) *commonv1.AnyValue {
	return &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: s}}
}

func iv(n int64) *commonv1.AnyValue {
	return &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: n}}
}

// Trace returns a random trace with the given trace ID.
func Trace(r *rand.Rand, traceID [16]byte, o TraceOptions) *tracev1.TracesData {
	if o.MinSpans <= 0 {
		o.MinSpans = 1
	}
	if o.MaxSpans < o.MinSpans {
		o.MaxSpans = 40
		if o.MaxSpans < o.MinSpans {
			o.MaxSpans = o.MinSpans
		}
	}
	n := o.MinSpans + r.Intn(o.MaxSpans-o.MinSpans+1)

	// resources and scopes
	nres := 1 + r.Intn(3)
	td := &tracev1.TracesData{}
	var scopes []*tracev1.ScopeSpans
	for i := 0; i < nres; i++ {
		res := &resourcev1.Resource{Attributes: []*commonv1.KeyValue{str("service.name", Services[(i+r.Intn(len(Services)))%len(Services)])}}
		if r.Intn(2) == 0 {
			res.Attributes = append(res.Attributes, str("service.namespace", pick(r, Namespaces)))
		}
		if r.Intn(3) > 0 {
			res.Attributes = append(res.Attributes, str("deployment.environment", pick(r, Environments)))
		}
		if r.Intn(2) == 0 {
			res.Attributes = append(res.Attributes, intKV("host.id", int64(r.Intn(4))))
		}
		if r.Intn(3) == 0 {
			res.Attributes = append(res.Attributes, str("shared", "from-resource"))
		}
		if r.Intn(4) == 0 {
			res.Attributes = append(res.Attributes, str("region", pick(r, Regions)))
		}
		rs := &tracev1.ResourceSpans{Resource: res}
		if r.Intn(8) == 0 {
			rs.Resource = nil
		}
		for j := 0; j < 1+r.Intn(2); j++ {
			ss := &tracev1.ScopeSpans{}
			if r.Intn(5) > 0 {
				ss.Scope = &commonv1.InstrumentationScope{Name: pick(r, ScopeNames), Version: pick(r, Versions)}
				if r.Intn(2) == 0 {
					ss.Scope.Attributes = []*commonv1.KeyValue{str("language", pick(r, []string{"go", "java"}))}
				}
			}
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
			scopes = append(scopes, ss)
		}
		td.ResourceSpans = append(td.ResourceSpans, rs)
	}

	base := uint64(1_700_000_000_000_000_000) + uint64(r.Int63n(1e15))
	ids := make([][]byte, n)
	starts := make([]uint64, n)
	spans := make([]*tracev1.Span, n)
	sharedID := map[string]bool{}
	for i := 0; i < n; i++ {
		id := make([]byte, 8)
		binary.BigEndian.PutUint64(id, uint64(i+1)<<8|uint64(r.Intn(256)))
		ids[i] = id
		sp := &tracev1.Span{
			TraceId: traceID[:],
			SpanId:  id,
			Name:    pick(r, SpanNames),
			Kind:    tracev1.Span_SpanKind(r.Intn(6)),
		}
		// parent: an earlier span; occasionally an orphan or a second root
		switch {
		case i == 0:
		case r.Intn(25) == 0:
			orphan := make([]byte, 8)
			binary.BigEndian.PutUint64(orphan, 0xdead0000|uint64(r.Intn(1000)))
			sp.ParentSpanId = orphan
		case r.Intn(30) == 0:
		default:
			p := r.Intn(i)
			if r.Intn(2) == 0 && i > 1 {
				p = i - 1 // deeper chains
			}
			sp.ParentSpanId = ids[p]
			if r.Intn(20) == 0 && !sharedID[string(ids[p])] {
				// a Zipkin client/server pair sharing one span ID
				sharedID[string(ids[p])] = true
				spans[p].Kind = tracev1.Span_SPAN_KIND_CLIENT
				sp.Kind = tracev1.Span_SPAN_KIND_SERVER
				sp.SpanId = ids[p]
				ids[i] = ids[p]
			}
		}
		start := base + uint64(r.Int63n(2e9))
		if len(sp.ParentSpanId) > 0 {
			start = starts[0] + uint64(r.Int63n(1e9))
		}
		starts[i] = start
		sp.StartTimeUnixNano = start
		durs := []int64{r.Int63n(1e6), r.Int63n(1e8), r.Int63n(3e9)}
		sp.EndTimeUnixNano = start + uint64(pick(r, durs))
		switch r.Intn(6) {
		case 0:
			// nil status
		case 1, 2:
			sp.Status = &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR, Message: pick(r, Messages)}
		case 3:
			sp.Status = &tracev1.Status{Code: tracev1.Status_STATUS_CODE_OK}
		default:
			sp.Status = &tracev1.Status{}
		}
		sp.Attributes = spanAttrs(r)
		for e := r.Intn(3); e > 0; e-- {
			ev := &tracev1.Span_Event{Name: pick(r, EventNames), TimeUnixNano: start + uint64(r.Int63n(5e6))}
			if r.Intn(2) == 0 {
				ev.Attributes = append(ev.Attributes, str("exception.message", pick(r, Messages)))
			}
			if r.Intn(2) == 0 {
				ev.Attributes = append(ev.Attributes, intKV("level", int64(r.Intn(5))))
			}
			sp.Events = append(sp.Events, ev)
		}
		for l := r.Intn(5) / 3; l > 0; l-- {
			lt := make([]byte, 16)
			r.Read(lt)
			ls := make([]byte, 8)
			r.Read(ls)
			link := &tracev1.Span_Link{TraceId: lt, SpanId: ls}
			if r.Intn(2) == 0 {
				link.Attributes = []*commonv1.KeyValue{str("opentracing.ref_type", pick(r, []string{"child_of", "follows_from"}))}
			}
			sp.Links = append(sp.Links, link)
		}
		spans[i] = sp
		ss := pick(r, scopes)
		ss.Spans = append(ss.Spans, sp)
	}
	return td
}

func spanAttrs(r *rand.Rand) []*commonv1.KeyValue {
	var kvs []*commonv1.KeyValue
	if r.Intn(3) > 0 {
		kvs = append(kvs, str("http.method", pick(r, Methods)))
	}
	if r.Intn(2) == 0 {
		kvs = append(kvs, intKV("http.status_code", pick(r, StatusCodes)))
	} else if r.Intn(6) == 0 {
		// the same key as a string, as some instrumentations send it
		kvs = append(kvs, str("http.status_code", "500"))
	}
	if r.Intn(4) == 0 {
		kvs = append(kvs, str("db.system", pick(r, DBSystems)))
	}
	if r.Intn(3) == 0 {
		kvs = append(kvs, boolKV("cache.hit", r.Intn(2) == 0))
	}
	if r.Intn(3) == 0 {
		kvs = append(kvs, floatKV("ratio", float64(r.Intn(9))/4))
	}
	if r.Intn(4) == 0 {
		kvs = append(kvs, intKV("retries", int64(r.Intn(4))))
	}
	if r.Intn(5) == 0 {
		kvs = append(kvs, arrKV("tags", sv(pick(r, Methods)), sv(pick(r, Regions))))
	}
	if r.Intn(6) == 0 {
		kvs = append(kvs, arrKV("codes", iv(pick(r, StatusCodes)), iv(pick(r, StatusCodes))))
	}
	if r.Intn(5) == 0 {
		kvs = append(kvs, str("weird key", pick(r, Methods)))
	}
	if r.Intn(4) == 0 {
		kvs = append(kvs, str("shared", "from-span"))
	}
	if r.Intn(10) == 0 {
		kvs = append(kvs, &commonv1.KeyValue{Key: "payload", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_BytesValue{BytesValue: []byte{1, 2}}}})
	}
	r.Shuffle(len(kvs), func(i, j int) { kvs[i], kvs[j] = kvs[j], kvs[i] })
	return kvs
}

// TraceID returns a deterministic trace ID for the i-th trace of a test.
func TraceID(r *rand.Rand) [16]byte {
	var id [16]byte
	r.Read(id[:])
	return id
}
