package distributor

import (
	"testing"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func tid(b byte) []byte { id := make([]byte, 16); id[15] = b; return id }

func TestSplitByTrace(t *testing.T) {
	res := func(s string) *resourcev1.Resource {
		return &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{Key: "service.name", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: s}}}}}
	}
	span := func(id []byte, name string) *tracev1.Span { return &tracev1.Span{TraceId: id, SpanId: []byte(name + "0000000")[:8], Name: name} }
	rss := []*tracev1.ResourceSpans{
		{Resource: res("a"), ScopeSpans: []*tracev1.ScopeSpans{
			{Scope: &commonv1.InstrumentationScope{Name: "s1"}, Spans: []*tracev1.Span{span(tid(1), "x"), span(tid(2), "y"), span(tid(1), "z")}},
			{Scope: &commonv1.InstrumentationScope{Name: "s2"}, Spans: []*tracev1.Span{span(tid(1), "w"), span(nil, "bad"), span(make([]byte, 16), "zero")}},
		}},
		{Resource: res("b"), ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{span(tid(2), "v"), span([]byte{1, 2}, "short")}}}},
	}
	r := splitByTrace(rss)
	require.Equal(t, 8, r.total)
	require.Equal(t, 3, r.invalid)
	require.Len(t, r.frags, 2)
	f1, f2 := r.frags[0], r.frags[1]
	require.Equal(t, tid(1), f1.id[:])
	require.Equal(t, uint32(3), f1.spans)
	require.Len(t, f1.td.ResourceSpans, 1, "one resource")
	require.Len(t, f1.td.ResourceSpans[0].ScopeSpans, 2, "two scopes kept apart")
	require.Equal(t, "s2", f1.td.ResourceSpans[0].ScopeSpans[1].Scope.Name)
	require.Equal(t, uint32(2), f2.spans)
	require.Len(t, f2.td.ResourceSpans, 2, "spans of two resources keep their resources")

	enc, err := r.marshal()
	require.NoError(t, err)
	var back tracev1.TracesData
	require.NoError(t, proto.Unmarshal(enc[0], &back))
	require.True(t, proto.Equal(f1.td, &back))
}

func TestTokenForIsStable(t *testing.T) {
	require.Equal(t, tokenFor("t", tid(1)), tokenFor("t", tid(1)))
	require.NotEqual(t, tokenFor("t", tid(1)), tokenFor("u", tid(1)), "tenant is part of the token")
}
