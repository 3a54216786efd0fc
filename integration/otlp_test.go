package integration

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// recorder keeps every span the wrapped exporter acknowledged.
type recorder struct {
	sdktrace.SpanExporter
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
}

func (r *recorder) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := r.SpanExporter.ExportSpans(ctx, spans); err != nil {
		return err
	}
	r.mu.Lock()
	r.spans = append(r.spans, spans...)
	r.mu.Unlock()
	return nil
}

func (r *recorder) byTrace() map[trace.TraceID][]sdktrace.ReadOnlySpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[trace.TraceID][]sdktrace.ReadOnlySpan{}
	for _, s := range r.spans {
		out[s.SpanContext().TraceID()] = append(out[s.SpanContext().TraceID()], s)
	}
	return out
}

// emitTraces makes n traces of realistic shape through the SDK: a server
// root, client and internal children, every attribute type, events, links,
// error statuses, trace state.
func emitTraces(t testing.TB, exp sdktrace.SpanExporter, service string, n int) *recorder {
	t.Helper()
	rec := &recorder{SpanExporter: exp}
	res, err := resource.New(context.Background(), resource.WithAttributes(
		attribute.String("service.name", service),
		attribute.String("k8s.namespace.name", "shop"),
		attribute.String("k8s.pod.name", service+"-7d9f8b-x2x"),
		attribute.Int64("process.pid", 4242),
	))
	require.NoError(t, err)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(rec, sdktrace.WithMaxExportBatchSize(64)), sdktrace.WithResource(res))
	tr := tp.Tracer("shop/checkout", trace.WithInstrumentationVersion("1.2.3"))
	var prevLink trace.SpanContext
	for i := 0; i < n; i++ {
		ts, err := trace.ParseTraceState("vendor=v1")
		require.NoError(t, err)
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceState: ts}))
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot()}
		if prevLink.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: prevLink, Attributes: []attribute.KeyValue{attribute.String("link.kind", "previous")}}))
		}
		ctx, root := tr.Start(ctx, fmt.Sprintf("GET /checkout/%d", i%5), opts...)
		root.SetAttributes(
			attribute.String("http.request.method", "GET"), attribute.Int("http.response.status_code", 200),
			attribute.Bool("cache.hit", i%2 == 0), attribute.Float64("load", 0.25*float64(i)),
			attribute.StringSlice("tags", []string{"a", "b"}), attribute.Int64Slice("ids", []int64{1, 2, 3}),
		)
		for c := 0; c < 3; c++ {
			_, child := tr.Start(ctx, "SELECT orders", trace.WithSpanKind(trace.SpanKindClient))
			child.SetAttributes(attribute.String("db.system", "postgresql"), attribute.Int("row", c))
			child.AddEvent("query sent", trace.WithAttributes(attribute.Int("bytes", 512)))
			if c == 2 {
				child.SetStatus(codes.Error, "deadline exceeded")
			}
			child.End()
		}
		_, internal := tr.Start(ctx, "render", trace.WithSpanKind(trace.SpanKindInternal))
		internal.SetStatus(codes.Ok, "")
		internal.End()
		root.End()
		prevLink = root.SpanContext()
	}
	require.NoError(t, tp.ForceFlush(context.Background()))
	require.NoError(t, tp.Shutdown(context.Background()))
	return rec
}

// requireSameTrace compares every span the SDK exported with what Rubato
// returned, field by field.
func requireSameTrace(t testing.TB, want []sdktrace.ReadOnlySpan, got *tracev1.TracesData) {
	t.Helper()
	require.NotNil(t, got, "trace not found")
	type found struct {
		span  *tracev1.Span
		res   map[string]string
		scope *commonv1.InstrumentationScope
	}
	byID := map[string]found{}
	for _, rs := range got.ResourceSpans {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.Key] = anyString(kv.Value)
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				_, dup := byID[hex.EncodeToString(sp.SpanId)]
				require.False(t, dup, "span %x returned twice", sp.SpanId)
				byID[hex.EncodeToString(sp.SpanId)] = found{sp, res, ss.Scope}
			}
		}
	}
	require.Len(t, byID, len(want), "span count")
	for _, w := range want {
		sid := w.SpanContext().SpanID()
		f, ok := byID[hex.EncodeToString(sid[:])]
		require.True(t, ok, "span %s missing", sid)
		g := f.span
		tid := w.SpanContext().TraceID()
		require.Equal(t, tid[:], g.TraceId)
		if w.Parent().IsValid() {
			pid := w.Parent().SpanID()
			require.Equal(t, pid[:], g.ParentSpanId)
		} else {
			require.Empty(t, g.ParentSpanId)
		}
		require.Equal(t, w.Name(), g.Name)
		require.Equal(t, int32(w.SpanKind()), int32(g.Kind))
		require.Equal(t, uint64(w.StartTime().UnixNano()), g.StartTimeUnixNano)
		require.Equal(t, uint64(w.EndTime().UnixNano()), g.EndTimeUnixNano)
		require.Equal(t, w.SpanContext().TraceState().String(), g.TraceState)
		requireAttrs(t, w.Attributes(), g.Attributes)
		require.Len(t, g.Events, len(w.Events()))
		for i, e := range w.Events() {
			require.Equal(t, e.Name, g.Events[i].Name)
			require.Equal(t, uint64(e.Time.UnixNano()), g.Events[i].TimeUnixNano)
			requireAttrs(t, e.Attributes, g.Events[i].Attributes)
		}
		require.Len(t, g.Links, len(w.Links()))
		for i, l := range w.Links() {
			lt, ls := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			require.Equal(t, lt[:], g.Links[i].TraceId)
			require.Equal(t, ls[:], g.Links[i].SpanId)
			requireAttrs(t, l.Attributes, g.Links[i].Attributes)
		}
		wantCode := map[codes.Code]tracev1.Status_StatusCode{
			codes.Unset: tracev1.Status_STATUS_CODE_UNSET, codes.Error: tracev1.Status_STATUS_CODE_ERROR, codes.Ok: tracev1.Status_STATUS_CODE_OK,
		}[w.Status().Code]
		require.Equal(t, wantCode, g.GetStatus().GetCode())
		require.Equal(t, w.Status().Description, g.GetStatus().GetMessage())
		for _, kv := range w.Resource().Attributes() {
			require.Equal(t, kv.Value.String(), f.res[string(kv.Key)], "resource attribute %s", kv.Key)
		}
		require.Equal(t, w.InstrumentationScope().Name, f.scope.GetName())
		require.Equal(t, w.InstrumentationScope().Version, f.scope.GetVersion())
	}
}

func requireAttrs(t testing.TB, want []attribute.KeyValue, got []*commonv1.KeyValue) {
	t.Helper()
	require.Len(t, got, len(want))
	gm := map[string]*commonv1.AnyValue{}
	for _, kv := range got {
		gm[kv.Key] = kv.Value
	}
	for _, kv := range want {
		g, ok := gm[string(kv.Key)]
		require.True(t, ok, "attribute %s missing", kv.Key)
		switch kv.Value.Type() {
		case attribute.BOOL:
			require.Equal(t, kv.Value.AsBool(), g.GetBoolValue(), kv.Key)
		case attribute.INT64:
			require.Equal(t, kv.Value.AsInt64(), g.GetIntValue(), kv.Key)
		case attribute.FLOAT64:
			require.Equal(t, kv.Value.AsFloat64(), g.GetDoubleValue(), kv.Key)
		case attribute.STRING:
			require.Equal(t, kv.Value.AsString(), g.GetStringValue(), kv.Key)
		case attribute.STRINGSLICE:
			var vs []string
			for _, v := range g.GetArrayValue().GetValues() {
				vs = append(vs, v.GetStringValue())
			}
			require.Equal(t, kv.Value.AsStringSlice(), vs, kv.Key)
		case attribute.INT64SLICE:
			var vs []int64
			for _, v := range g.GetArrayValue().GetValues() {
				vs = append(vs, v.GetIntValue())
			}
			require.Equal(t, kv.Value.AsInt64Slice(), vs, kv.Key)
		default:
			t.Fatalf("attribute type %s not covered", kv.Value.Type())
		}
	}
}

func anyString(v *commonv1.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		return x.StringValue
	case *commonv1.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonv1.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonv1.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	}
	return v.String()
}

// TestOTLPRoundTrip sends through the SDK's gRPC and HTTP exporters and
// reads every trace back at every stage: right after the acknowledgement
// (live traces), after the ingester cut and flushed blocks, and after a
// restart with the WAL gone (backend only).
func TestOTLPRoundTrip(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h"})
	ctx := context.Background()
	grpcExp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(s.otlpGRPC()), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	httpExp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(s.otlpHTTP()), otlptracehttp.WithInsecure())
	require.NoError(t, err)
	want := emitTraces(t, grpcExp, "checkout-grpc", 20).byTrace()
	for id, spans := range emitTraces(t, httpExp, "checkout-http", 20).byTrace() {
		want[id] = spans
	}
	require.Len(t, want, 40)

	check := func(stage string) {
		t.Helper()
		for id, spans := range want {
			got := s.traceByID(t, id[:], "")
			require.NotNil(t, got, "%s: trace %s not found", stage, id)
			requireSameTrace(t, spans, got)
		}
	}
	check("live, right after acknowledgement")
	s.flush(t)
	check("after flush to the backend")
	require.Greater(t, s.metric(t, "rubato_ingester_blocks_flushed_total"), 0.0)

	s.stop()
	require.NoError(t, os.RemoveAll(filepath.Join(s.dir, "wal")))
	s.start()
	check("from the backend only, after restart without WAL")
}

// TestReadAfterWriteEveryStage looks every trace up continuously while the
// ingester moves it from live traces to the head block, to a complete
// block, to the backend: it must never be missing.
func TestReadAfterWriteEveryStage(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "300ms"})
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(s.otlpGRPC()), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	want := emitTraces(t, exp, "raw", 10).byTrace()
	deadline := time.Now().Add(4 * time.Second) // idle 300ms, blocks cut at 2s, flush every 100ms
	rounds := 0
	for time.Now().Before(deadline) || s.metric(t, "rubato_ingester_blocks_flushed_total") == 0 {
		for id, spans := range want {
			requireSameTrace(t, spans, s.traceByID(t, id[:], ""))
		}
		rounds++
		require.Less(t, rounds, 10_000, "blocks never flushed")
	}
	require.Greater(t, s.metric(t, "rubato_ingester_blocks_cut_total"), 0.0)
}
