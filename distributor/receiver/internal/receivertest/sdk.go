package receivertest

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// SDKOptions shape the spans EmitSDKSpans makes.
type SDKOptions struct {
	// NoSlices leaves out slice attributes (Zipkin flattens them to JSON).
	NoSlices bool
	// NoInternal uses no INTERNAL kind (Zipkin has no such kind).
	NoInternal bool
}

// EmitSDKSpans creates a small trace with the OpenTelemetry SDK, exports it
// through exp (flushed and shut down before returning) and returns the spans
// as the SDK saw them.
func EmitSDKSpans(t testing.TB, exp sdktrace.SpanExporter, o SDKOptions) []sdktrace.ReadOnlySpan {
	t.Helper()
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	res := resource.NewSchemaless(
		attribute.String("service.name", "checkout"),
		attribute.String("host.name", "node-7"),
		attribute.String("deployment.environment", "test"),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(rec),
		sdktrace.WithBatcher(exp),
	)
	tr := tp.Tracer("shop/checkout", trace.WithInstrumentationVersion("1.4.2"))
	ts, err := trace.ParseTraceState("vendor=opaque,rojo=00f067aa0ba902b7")
	require.NoError(t, err)
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c},
		SpanID:  trace.SpanID{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x73}, TraceFlags: trace.FlagsSampled, TraceState: ts, Remote: true,
	}))
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", "POST"),
		attribute.String("url.path", "/api/checkout"),
		attribute.Int("http.response.status_code", 201),
		attribute.Float64("cart.total", 99.5),
		attribute.Bool("user.premium", true),
	}
	if !o.NoSlices {
		attrs = append(attrs, attribute.StringSlice("cart.items", []string{"a", "b"}))
	}
	ctx, root := tr.Start(ctx, "POST /api/checkout", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	root.AddEvent("cart.validated", trace.WithAttributes(attribute.Int("items", 2)))
	root.SetStatus(codes.Ok, "")

	_, client := tr.Start(ctx, "charge card", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("peer.service", "payments"), attribute.Int64("retry.count", 3)),
		trace.WithLinks(trace.Link{SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SpanID: trace.SpanID{1, 1, 1, 1, 1, 1, 1, 1},
		}), Attributes: []attribute.KeyValue{attribute.String("link.reason", "batch")}}))
	client.RecordError(errors.New("card declined"))
	client.SetStatus(codes.Error, "card declined")
	client.End()

	kind := trace.SpanKindInternal
	if o.NoInternal {
		kind = trace.SpanKindProducer
	}
	_, inner := tr.Start(ctx, "render receipt", trace.WithSpanKind(kind))
	inner.End()
	root.End()

	require.NoError(t, tp.ForceFlush(context.Background()))
	require.NoError(t, tp.Shutdown(context.Background()))
	return rec.Ended()
}
