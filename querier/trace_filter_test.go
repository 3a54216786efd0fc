package querier

import (
	"testing"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// filterTrace: root A -> B -> C, and D under A; A and B in service "front",
// C and D in "back".
func filterTrace() *tracev1.TracesData {
	sp := func(id, parent byte, name string) *tracev1.Span {
		s := &tracev1.Span{TraceId: make([]byte, 16), SpanId: []byte{0, 0, 0, 0, 0, 0, 0, id}, Name: name, StartTimeUnixNano: 1, EndTimeUnixNano: 2}
		if parent != 0 {
			s.ParentSpanId = []byte{0, 0, 0, 0, 0, 0, 0, parent}
		}
		return s
	}
	res := func(svc string) *resourcev1.Resource {
		return &resourcev1.Resource{Attributes: []*commonv1.KeyValue{strAttr("service.name", svc)}}
	}
	return &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{
		{Resource: res("front"), ScopeSpans: []*tracev1.ScopeSpans{{Scope: &commonv1.InstrumentationScope{Name: "lib"}, Spans: []*tracev1.Span{sp(1, 0, "A"), sp(2, 1, "B")}}}},
		{Resource: res("back"), ScopeSpans: []*tracev1.ScopeSpans{{Scope: &commonv1.InstrumentationScope{Name: "lib2"}, Spans: []*tracev1.Span{sp(3, 2, "C"), sp(4, 1, "D")}}}},
	}}
}

func names(td *tracev1.TracesData) []string {
	var out []string
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				out = append(out, s.Name)
			}
		}
	}
	return out
}

func TestTraceFilter(t *testing.T) {
	for _, tc := range []struct {
		q, keep string
		want    []string
	}{
		{`{ name = "C" }`, "", []string{"C"}},
		{`{ name = "C" }`, "true", []string{"A", "B", "C"}},
		{`{ resource.service.name = "back" }`, "", []string{"C", "D"}},
		{`{ name = "B" } || { name = "D" }`, "", []string{"B", "D"}},
		{`{ name = "A" } > { name = "D" }`, "", []string{"D"}},
		{`{ name = "nope" }`, "true", nil},
		{`{}`, "", []string{"A", "B", "C", "D"}},
	} {
		f, err := parseTraceFilter(tc.q, tc.keep)
		require.NoError(t, err, tc.q)
		in := filterTrace()
		out, kept, total, err := f.apply(in)
		require.NoError(t, err, tc.q)
		require.Equal(t, tc.want, names(out), "%s keep_hierarchy=%s", tc.q, tc.keep)
		require.Equal(t, len(tc.want), kept)
		require.Equal(t, 4, total)
		require.Equal(t, []string{"A", "B", "C", "D"}, names(in), "input untouched")
		for _, rs := range out.ResourceSpans {
			require.NotNil(t, rs.Resource, "resources kept with their spans")
			for _, ss := range rs.ScopeSpans {
				require.NotNil(t, ss.Scope)
			}
		}
	}
	for _, tc := range []struct{ q, keep string }{{"{ name = ", ""}, {"{}", "maybe"}} {
		_, err := parseTraceFilter(tc.q, tc.keep)
		require.Error(t, err, tc.q)
	}
	f, err := parseTraceFilter("", "")
	require.NoError(t, err)
	require.Nil(t, f, "no q: no filter")
}
