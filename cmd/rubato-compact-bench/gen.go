package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/uuid"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
)

func str(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

func num(k string, v int64) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: v}}}
}

var (
	services = []string{"frontend", "checkout", "cart", "payment", "shipping", "currency", "email", "recommendation", "ad", "catalog"}
	routes   = []string{"/api/cart", "/api/checkout", "/api/products/{id}", "/api/users/{id}/orders", "/api/recommendations", "/health"}
	methods  = []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
)

// gen builds realistic traces: spans over three services with Kubernetes
// resource attributes and HTTP attributes (~500 bytes of OTLP per span),
// as an OTel SDK behind a service mesh sends them.
type gen struct {
	rng  *rand.Rand
	base uint64
}

func (g *gen) id(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], g.rng.Uint64())
	}
	return b
}

func (g *gen) resource() *tracev1.ResourceSpans {
	svc := services[g.rng.IntN(len(services))]
	ns := []string{"shop-prod", "shop-staging"}[g.rng.IntN(2)]
	return &tracev1.ResourceSpans{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{
			str("service.name", svc), str("service.version", fmt.Sprintf("1.%d.%d", g.rng.IntN(3), g.rng.IntN(10))),
			str("k8s.cluster.name", "eu-west-1"), str("k8s.namespace.name", ns),
			str("k8s.pod.name", fmt.Sprintf("%s-%06x-%05x", svc, g.rng.Uint32()&0xffffff, g.rng.Uint32()&0xfffff)),
			str("k8s.container.name", svc), str("telemetry.sdk.language", "go"),
			str("telemetry.sdk.name", "opentelemetry"), str("telemetry.sdk.version", "1.28.0"),
		}},
		SchemaUrl:  "https://opentelemetry.io/schemas/1.26.0",
		ScopeSpans: []*tracev1.ScopeSpans{{Scope: &commonv1.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", Version: "0.53.0"}}},
	}
}

func (g *gen) span(traceID, parent []byte, svc string, start uint64) *tracev1.Span {
	route, method := routes[g.rng.IntN(len(routes))], methods[g.rng.IntN(len(methods))]
	status := int64(200)
	if g.rng.IntN(20) == 0 {
		status = 500
	}
	return &tracev1.Span{
		TraceId: traceID, SpanId: g.id(8), ParentSpanId: parent, Name: method + " " + route,
		Kind: tracev1.Span_SPAN_KIND_SERVER, StartTimeUnixNano: start, EndTimeUnixNano: start + uint64(g.rng.Int64N(50e6)), Flags: 0x101,
		Attributes: []*commonv1.KeyValue{
			str("http.method", method), str("http.route", route),
			str("http.url", fmt.Sprintf("http://%s.svc:8080%s?user=%d&session=%x", svc, route, g.rng.IntN(100000), g.rng.Uint32())),
			num("http.status_code", status), str("net.peer.name", fmt.Sprintf("10.%d.%d.%d", g.rng.IntN(4), g.rng.IntN(256), g.rng.IntN(256))),
			num("net.peer.port", int64(30000+g.rng.IntN(30000))), str("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"),
			num("http.response_content_length", int64(g.rng.IntN(20000))),
		},
		Status: &tracev1.Status{},
	}
}

// trace builds one trace of n spans over three services.
func (g *gen) trace(id []byte, n int) *tracev1.TracesData {
	td := &tracev1.TracesData{}
	start := g.base + uint64(g.rng.Int64N(300e9))
	var parent []byte
	for s := 0; s < 3; s++ {
		rs := g.resource()
		svc := rs.Resource.Attributes[0].Value.GetStringValue()
		ss := rs.ScopeSpans[0]
		k := n / 3
		if s == 2 {
			k = n - 2*(n/3)
		}
		for i := 0; i < k; i++ {
			sp := g.span(id, parent, svc, start+uint64(i)*1000)
			if parent == nil {
				parent = sp.SpanId
			}
			ss.Spans = append(ss.Spans, sp)
		}
		td.ResourceSpans = append(td.ResourceSpans, rs)
	}
	return td
}

// writeBlock writes one block of `traces` random 10-span traces; extra,
// when not nil, is added under its own ID.
func writeBlock(ctx context.Context, be backend.Backend, cfg block.Config, g *gen, tenantID string, traces int, extraID []byte, extra *tracev1.TracesData) (*block.Meta, error) {
	ids := make([][]byte, traces)
	for i := range ids {
		ids[i] = g.id(16)
	}
	if extra != nil {
		ids = append(ids, extraID)
	}
	slices.SortFunc(ids, bytes.Compare)
	w, err := block.NewWriter(ctx, be, cfg, tenantID, uuid.New(), 0, len(ids), "")
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		td := extra
		if extra == nil || !bytes.Equal(id, extraID) {
			td = g.trace(id, 10)
		}
		if err := w.Add(id, td); err != nil {
			w.Abort()
			return nil, err
		}
	}
	return w.Close(ctx)
}

func newGen(seed uint64) *gen {
	return &gen{rng: rand.New(rand.NewPCG(seed, seed^0x5555)), base: uint64(time.Now().Add(-10 * time.Minute).UnixNano())}
}
