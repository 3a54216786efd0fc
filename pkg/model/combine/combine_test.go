package combine

import (
	"testing"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

func td(svc string, ids ...byte) *tracev1.TracesData {
	ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "lib"}}
	for _, id := range ids {
		ss.Spans = append(ss.Spans, &tracev1.Span{SpanId: []byte{0, 0, 0, 0, 0, 0, 0, id}, Name: svc})
	}
	return &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{Key: "service.name",
			Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: svc}}}}},
		ScopeSpans: []*tracev1.ScopeSpans{ss},
	}}}
}

func names(t *tracev1.TracesData) (out []string) {
	for _, rs := range t.GetResourceSpans() {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				out = append(out, s.Name+string('0'+rune(s.SpanId[7])))
			}
		}
	}
	return out
}

func TestTraces(t *testing.T) {
	for _, tc := range []struct {
		name  string
		parts []*tracev1.TracesData
		want  []string
	}{
		{"nothing", nil, nil},
		{"nil parts", []*tracev1.TracesData{nil, {}}, nil},
		{"one", []*tracev1.TracesData{td("a", 1, 2)}, []string{"a1", "a2"}},
		{"disjoint", []*tracev1.TracesData{td("a", 1), td("b", 2)}, []string{"a1", "b2"}},
		{"replica copy dropped, first wins", []*tracev1.TracesData{td("a", 1, 2), td("b", 2, 3)}, []string{"a1", "a2", "b3"}},
		{"fully duplicate part adds no empty groups", []*tracev1.TracesData{td("a", 1), td("b", 1)}, []string{"a1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Traces(tc.parts...)
			require.Equal(t, tc.want, names(got))
			for _, rs := range got.GetResourceSpans() {
				require.NotEmpty(t, rs.ScopeSpans)
				for _, ss := range rs.ScopeSpans {
					require.NotEmpty(t, ss.Spans)
				}
			}
		})
	}
}

func TestInvalidIDsNeverDropped(t *testing.T) {
	a := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{
		{Name: "empty"}, {Name: "empty2"}, {SpanId: make([]byte, 8), Name: "zero"}, {SpanId: make([]byte, 8), Name: "zero2"},
		{SpanId: []byte{1, 2, 3}, Name: "short"}, {SpanId: []byte{1, 2, 3}, Name: "short-dup"},
		{SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, Name: "long"}, {SpanId: []byte{9, 2, 3, 4, 5, 6, 7, 8, 1}, Name: "long-other"},
	}}}}}}
	var c Combiner
	c.Add(a)
	require.Equal(t, 7, c.Spans())
}

// TestSharedSpanIDsKeptByKind: a Zipkin client span and the server half
// sharing its ID are two spans (Tempo keys by ID and kind); replica copies
// of either are still dropped. Before, the server half was lost on read.
func TestSharedSpanIDsKeptByKind(t *testing.T) {
	span := func(id []byte, kind tracev1.Span_SpanKind, name string) *tracev1.Span {
		return &tracev1.Span{SpanId: id, Kind: kind, Name: name}
	}
	id, odd := []byte{0, 0, 0, 0, 0, 0, 0, 7}, []byte{1, 2, 3}
	part := func(suffix string) *tracev1.TracesData {
		return &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{
			span(id, tracev1.Span_SPAN_KIND_CLIENT, "client"+suffix), span(id, tracev1.Span_SPAN_KIND_SERVER, "server"+suffix),
			span(odd, tracev1.Span_SPAN_KIND_CLIENT, "odd-client"+suffix), span(odd, tracev1.Span_SPAN_KIND_SERVER, "odd-server"+suffix),
		}}}}}}
	}
	got := Traces(part(""), part("-replica"))
	var out []string
	for _, s := range got.ResourceSpans[0].ScopeSpans[0].Spans {
		out = append(out, s.Name)
	}
	require.Equal(t, []string{"client", "server", "odd-client", "odd-server"}, out)
}
