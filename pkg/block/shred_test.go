package block

import (
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TestColumnLayout pins the column index constants of shred.go to the
// schema parquet-go derives from traceRow.
func TestColumnLayout(t *testing.T) {
	s := parquet.SchemaOf(new(traceRow))
	cols := s.Columns()
	require.Len(t, cols, numColumns)
	want := map[int]string{
		colTraceID: "TraceID", colStartTimeUnixNano: "StartTimeUnixNano", colEndTimeUnixNano: "EndTimeUnixNano",
		colDurationNano: "DurationNano", colRootServiceName: "RootServiceName", colRootSpanName: "RootSpanName",
		colSpanCount: "SpanCount", colResource: "rs.Resource.Present", colResourceAttrs: "rs.Resource.Attrs.Key",
		colRsSchemaURL: "rs.SchemaURL", colScope: "rs.ss.Scope.Present", colScopeAttrs: "rs.ss.Scope.Attrs.Key",
		colSsSchemaURL: "rs.ss.SchemaURL", colSpan: "rs.ss.Spans.SpanID", colSpanAttrs: "rs.ss.Spans.Attrs.Key",
		colEvent: "rs.ss.Spans.Events.TimeSinceStartNano", colEventAttrs: "rs.ss.Spans.Events.Attrs.Key",
		colLink: "rs.ss.Spans.Links.TraceID", colLinkAttrs: "rs.ss.Spans.Links.Attrs.Key",
		colSpan + 12: "rs.ss.Spans.StatusMessage", colSpan + 27: "rs.ss.Spans.HttpResponseStatusCodePos",
		colResource + 11: "rs.Resource.K8sContainerNamePos", numColumns - 1: "rs.ss.Spans.Links.Attrs.Bytes",
		colResourceServiceName: "rs.Resource.ServiceName", colSpanParentIdx: "rs.ss.Spans.ParentIdx",
		colSpanParentSpanID: "rs.ss.Spans.ParentSpanID", colSpanName: "rs.ss.Spans.Name", colSpanKind: "rs.ss.Spans.Kind",
		colSpanStartOffset: "rs.ss.Spans.StartOffsetNano", colSpanDuration: "rs.ss.Spans.DurationNano",
	}
	for c, path := range want {
		require.Equal(t, path, strings.Join(cols[c], "."), "column %d", c)
	}
}

// shredCases returns traces covering every shape the shredder handles:
// empty lists at each level, optional values set and zero.
func shredCases(tb testing.TB) []*tracev1.TracesData {
	rng := seededRand(tb, 5)
	id := randBytes(rng, TraceIDSize)
	cases := []*tracev1.TracesData{
		{},
		{ResourceSpans: []*tracev1.ResourceSpans{{}}},
		{ResourceSpans: []*tracev1.ResourceSpans{{Resource: &resourcev1.Resource{}, ScopeSpans: []*tracev1.ScopeSpans{{}}}}},
		{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{}, {Name: "x"}}}, {}}}, {}}},
		{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{
			Events: []*tracev1.Span_Event{{}, {Attributes: []*commonv1.KeyValue{strKV("", ""), intKV("i", 0)}}},
			Links:  []*tracev1.Span_Link{{}},
		}}}}}}},
		genExoticTrace(id),
	}
	for range 20 {
		cases = append(cases, genRealisticTrace(rng, id, 1_700_000_000_000_000_000))
	}
	return cases
}

func TestShredMatchesDeconstruct(t *testing.T) {
	schema := parquet.SchemaOf(new(traceRow))
	var s shredder
	var tr traceRow
	for i, td := range shredCases(t) {
		require.NoError(t, tr.fromOTLP([16]byte{1, 2, 3}, td))
		want := schema.Deconstruct(nil, &tr)
		got := s.shred(&tr).row(nil)
		var back columns
		back.split(got)
		require.Equal(t, s.cols, back, "case %d: split", i)
		if !want.Equal(got) {
			require.Equal(t, want, got, "case %d", i)
		}
	}
}
