package block

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Search benchmarks over one block of realistic traffic (issue 9's
// shape): 100k spans in 10k traces, 10 services with 20 pods each, 13
// resource attributes, HTTP spans with URLs holding IDs and DB spans with
// SQL statements, 3% errors with exception events.

var (
	sbServices = []string{"frontend", "checkout", "cart", "payment", "shipping", "currency", "email", "recommendation", "ad", "catalog"}
	sbRoutes   = []string{"/api/cart", "/api/checkout", "/api/products/{id}", "/api/users/{id}/orders", "/api/recommendations", "/health", "/api/pay", "/api/ship"}
	sbTables   = []string{"orders", "users", "products", "carts", "payments"}
)

func boolKV(k string, v bool) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: v}}}
}

// genTrafficTrace returns a trace of about 10 spans over 3 or 4 services.
func genTrafficTrace(rng *rand.Rand, id []byte, base uint64) *tracev1.TracesData {
	td := &tracev1.TracesData{}
	start := base + uint64(rng.Int64N(300e9))
	var parent []byte
	nsvc := 3 + rng.IntN(2)
	for s := range nsvc {
		svc := sbServices[rng.IntN(len(sbServices))]
		pod := fmt.Sprintf("%s-%06x-%05x", svc, uint32(len(svc))*0x9e37, rng.IntN(20)*7919)
		rs := &tracev1.ResourceSpans{Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{
			strKV("service.name", svc), strKV("service.version", fmt.Sprintf("1.%d.0", rng.IntN(4))),
			strKV("service.namespace", "shop"), strKV("deployment.environment", "prod"),
			strKV("k8s.cluster.name", "eu-west-1"), strKV("k8s.namespace.name", "shop-prod"),
			strKV("k8s.pod.name", pod), strKV("k8s.container.name", svc),
			strKV("k8s.node.name", fmt.Sprintf("node-%02d", rng.IntN(12))), strKV("host.name", pod),
			strKV("telemetry.sdk.language", "go"), strKV("telemetry.sdk.version", "1.28.0"),
			intKV("process.pid", int64(1+rng.IntN(50))),
		}}, SchemaUrl: "https://opentelemetry.io/schemas/1.26.0"}
		ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "go.opentelemetry.io/otel", Version: "1.28.0"}}
		n := 10 / nsvc
		if s == 0 {
			n += 10 % nsvc
		}
		for i := range n {
			spanID := randBytes(rng, 8)
			st := start + uint64(rng.Int64N(5e8))
			sp := &tracev1.Span{TraceId: id, SpanId: spanID, ParentSpanId: parent, StartTimeUnixNano: st,
				EndTimeUnixNano: st + uint64(rng.Int64N(2e8)), Status: &tracev1.Status{}}
			if i%3 == 2 { // a DB call
				table := sbTables[rng.IntN(len(sbTables))]
				sp.Name, sp.Kind = "SELECT "+table, tracev1.Span_SPAN_KIND_CLIENT
				sp.Attributes = []*commonv1.KeyValue{
					strKV("db.system", "postgresql"), strKV("db.name", "shop"), strKV("db.operation", "SELECT"),
					strKV("db.sql.table", table),
					strKV("db.statement", fmt.Sprintf("SELECT * FROM %s WHERE id = %d AND tenant = '%x'", table, rng.IntN(1e6), rng.Uint32())),
					strKV("net.peer.name", "postgres.shop-prod.svc"), intKV("net.peer.port", 5432),
				}
			} else {
				route := sbRoutes[rng.IntN(len(sbRoutes))]
				method := []string{"GET", "GET", "POST", "PUT"}[rng.IntN(4)]
				status := int64(200)
				sp.Name, sp.Kind = method+" "+route, tracev1.Span_SPAN_KIND_SERVER
				sp.Attributes = []*commonv1.KeyValue{
					strKV("http.method", method), strKV("http.route", route),
					strKV("http.url", fmt.Sprintf("http://%s.shop-prod.svc:8080%s?id=%d&session=%x", svc, route, rng.IntN(1e6), rng.Uint64())),
					intKV("http.status_code", status), strKV("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"),
					intKV("http.response_content_length", int64(rng.IntN(20000))), boolKV("http.retry", rng.IntN(50) == 0),
				}
			}
			if rng.IntN(100) < 3 {
				sp.Status = &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR, Message: "internal error"}
				if sp.Kind == tracev1.Span_SPAN_KIND_SERVER {
					sp.Attributes[3] = intKV("http.status_code", 500)
				}
				sp.Events = []*tracev1.Span_Event{{Name: "exception", TimeUnixNano: st, Attributes: []*commonv1.KeyValue{
					strKV("exception.type", "*errors.errorString"),
					strKV("exception.message", fmt.Sprintf("request %d failed: connection reset", rng.IntN(1e6))),
				}}}
			}
			ss.Spans = append(ss.Spans, sp)
			parent = spanID
		}
		rs.ScopeSpans = []*tracev1.ScopeSpans{ss}
		td.ResourceSpans = append(td.ResourceSpans, rs)
	}
	return td
}

var trafficBlock = sync.OnceValues(func() (*memBackend, *Meta) {
	rng := rand.New(rand.NewPCG(5, 5))
	const n = 10_000
	ids := genTraceIDs(rng, n)
	be := newMemBackend()
	var cfg Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("bench", flag.PanicOnError))
	w, err := NewWriter(context.Background(), be, cfg, testTenant, uuid.New(), 0, n, "")
	if err != nil {
		panic(err)
	}
	protoBytes := 0
	for _, id := range ids {
		td := genTrafficTrace(rng, id, 1_700_000_000_000_000_000)
		protoBytes += proto.Size(td)
		if err := w.Add(id, td); err != nil {
			panic(err)
		}
	}
	m, err := w.Close(context.Background())
	if err != nil {
		panic(err)
	}
	fmt.Printf("traffic block: %d spans, %d B OTLP/span, data %d B, search index %d B, %d row groups\n",
		m.TotalSpans, protoBytes/int(m.TotalSpans), m.Size, m.SearchIndexSize, m.RowGroups)
	return be, m
})

func strPred(sc PredScope, key, val string) Predicate {
	return Predicate{Scope: sc, Key: key, Op: PredEq, Value: PredValue{Type: ValString, Str: val}}
}

// BenchmarkSearch runs issue 9's query shapes on one warm block (footer
// and search index cached) and reports bytes read per search.
func BenchmarkSearch(b *testing.B) {
	be, m := trafficBlock()
	cases := []struct {
		name  string
		req   SearchRequest
		limit int
	}{
		// `{ resource.service.name = "payment" && status = error }`: one
		// span (SameSpan, as pkg/search asks for one filter's &&).
		{"a-selective-limit20", SearchRequest{All: true, SameSpan: true, Predicates: []Predicate{
			strPred(PredResource, "service.name", "payment"),
			{Scope: PredSpanIntrinsic, Key: IntrinsicStatus, Op: PredEq, Value: PredValue{Type: ValStatus, Int: 2}}}}, 20},
		// The same, decoding only what TraceQL reads for that query
		// (SearchFields, as pkg/search asks).
		{"a-selective-projected-limit20", SearchRequest{All: true, SameSpan: true, Fields: &SearchFields{ResourceKeys: []string{"service.name"}}, Predicates: []Predicate{
			strPred(PredResource, "service.name", "payment"),
			{Scope: PredSpanIntrinsic, Key: IntrinsicStatus, Op: PredEq, Value: PredValue{Type: ValStatus, Int: 2}}}}, 20},
		// The same conditions on any spans of the trace.
		{"a-selective-trace-level-limit20", SearchRequest{All: true, Predicates: []Predicate{
			strPred(PredResource, "service.name", "payment"),
			{Scope: PredSpanIntrinsic, Key: IntrinsicStatus, Op: PredEq, Value: PredValue{Type: ValStatus, Int: 2}}}}, 20},
		{"a-one-pod-limit20", SearchRequest{All: true, Predicates: []Predicate{
			strPred(PredResource, "k8s.pod.name", fmt.Sprintf("%s-%06x-%05x", "cart", uint32(4)*0x9e37, 3*7919))}}, 20},
		{"b-nothing-dedicated", SearchRequest{All: true, Predicates: []Predicate{strPred(PredResource, "service.name", "nope")}}, 20},
		{"c-nothing-generic", SearchRequest{All: true, Predicates: []Predicate{strPred(PredSpan, "db.system", "nope")}}, 20},
		{"c-nothing-generic-highcard", SearchRequest{All: true, Predicates: []Predicate{strPred(PredSpan, "db.statement", "SELECT * FROM orders WHERE id = -1")}}, 20},
		// A regex cannot use the bloom filter: the span attribute columns are scanned.
		{"c-nothing-generic-highcard-regex-scan", SearchRequest{All: true, Predicates: []Predicate{
			{Scope: PredSpan, Key: "db.statement", Op: PredRegex, Value: PredValue{Type: ValString, Str: "DELETE .*"}}}}, 20},
		{"c-nothing-dedicated-highcard", SearchRequest{All: true, Predicates: []Predicate{strPred(PredSpan, "http.url", "nope")}}, 20},
	}
	// The same block read as v1 (no search index): every search scans.
	m1 := *m
	m1.Version, m1.SearchIndexSize = VersionV1, 0
	cases = append(cases,
		struct {
			name  string
			req   SearchRequest
			limit int
		}{"v1-b-nothing-dedicated", cases[4].req, 20},
		struct {
			name  string
			req   SearchRequest
			limit int
		}{"v1-c-nothing-generic", cases[5].req, 20})
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			meta := m
			if strings.HasPrefix(c.name, "v1-") {
				meta = &m1
			}
			r := Open(be, meta, NewCache(256<<20))
			ctx := context.Background()
			var bytes, found, decoded uint64
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				n := 0
				st, err := r.Search(ctx, c.req, func([16]byte, *tracev1.TracesData) bool { n++; return n < c.limit })
				require.NoError(b, err)
				bytes += st.InspectedBytes
				decoded += st.InspectedSpans
				found += uint64(n)
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "bytes-read/op")
			b.ReportMetric(float64(found)/float64(b.N), "traces/op")
			b.ReportMetric(float64(decoded)/float64(b.N), "spans-decoded/op")
		})
	}
}

// BenchmarkTagValues is autocompletion of a resource and a span attribute
// from a warm block's search index.
func BenchmarkTagValues(b *testing.B) {
	be, m := trafficBlock()
	r := Open(be, m, NewCache(256<<20))
	ctx := context.Background()
	for _, tc := range []struct {
		scope TagScope
		name  string
	}{{TagResource, "k8s.pod.name"}, {TagSpan, "http.route"}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for range b.N {
				require.NoError(b, r.TagValues(ctx, tc.scope, tc.name, func(TagValue) bool { n++; return true }))
			}
			b.ReportMetric(float64(n)/float64(b.N), "values/op")
		})
	}
}
