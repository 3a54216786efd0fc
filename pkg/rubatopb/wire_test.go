package rubatopb

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestTraceIsTracesData pins the wire identity CONTRACT.md relies on:
// tempopb.Trace and OTLP TracesData have the same encoding, so bytes from one
// decode as the other.
func TestTraceIsTracesData(t *testing.T) {
	td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{
		ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{
			TraceId: make([]byte, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Name: "op",
		}}}},
	}}}
	b, err := proto.Marshal(td)
	require.NoError(t, err)
	var tr Trace
	require.NoError(t, proto.Unmarshal(b, &tr))
	require.Len(t, tr.ResourceSpans, 1)
	require.Equal(t, "op", tr.ResourceSpans[0].ScopeSpans[0].Spans[0].Name)
	b2, err := proto.Marshal(&tr)
	require.NoError(t, err)
	require.Equal(t, b, b2)
}

// TestSearchJSONNames pins the lowerCamel JSON names Grafana's strict jsonpb
// decoder expects, and that 64-bit integers are strings.
func TestSearchJSONNames(t *testing.T) {
	resp := &SearchResponse{
		Traces: []*TraceSearchMetadata{{
			TraceID: "abc", RootServiceName: "svc", StartTimeUnixNano: 1, DurationMs: 2,
			SpanSets: []*SpanSet{{Matched: 1, Spans: []*Span{{SpanID: "01", DurationNanos: 5}}}},
		}},
		Metrics: &SearchMetrics{InspectedTraces: 3, InspectedBytes: 4},
	}
	b, err := protojson.Marshal(resp)
	require.NoError(t, err)
	require.JSONEq(t, `{"traces":[{"traceID":"abc","rootServiceName":"svc","startTimeUnixNano":"1","durationMs":2,
		"spanSets":[{"spans":[{"spanID":"01","durationNanos":"5"}],"matched":1}]}],
		"metrics":{"inspectedTraces":3,"inspectedBytes":"4"}}`, string(b))
}

// TestPinnedFieldSets pins, message by message, the exact fields (JSON name
// and number) of the search API messages against CONTRACT.md §2.4. Grafana
// decodes search JSON strictly against the proto it pins: a field added
// here (backendReads, additionalMetrics, …) would fail every search.
func TestPinnedFieldSets(t *testing.T) {
	want := map[string]string{
		"SearchResponse":            "traces=1 metrics=2",
		"TraceSearchMetadata":       "traceID=1 rootServiceName=2 rootTraceName=3 startTimeUnixNano=4 durationMs=5 spanSet=6 spanSets=7 serviceStats=8",
		"ServiceStats":              "spanCount=1 errorCount=2",
		"SpanSet":                   "spans=1 matched=2 attributes=3",
		"Span":                      "spanID=1 name=2 startTimeUnixNano=3 durationNanos=4 attributes=5",
		"SearchMetrics":             "inspectedTraces=1 inspectedBytes=2 totalBlocks=3 completedJobs=4 totalJobs=5 totalBlockBytes=6 inspectedSpans=7",
		"SearchRequest":             "Tags=1 MinDurationMs=2 MaxDurationMs=3 Limit=4 start=5 end=6 Query=8 SpansPerSpanSet=9 RF1After=10",
		"SearchTagsRequest":         "scope=1 query=2 start=3 end=4 maxTagsPerScope=5 staleValuesThreshold=6 RF1After=7",
		"SearchTagsResponse":        "tagNames=1 metrics=2",
		"SearchTagsV2Response":      "scopes=1 metrics=2",
		"SearchTagsV2Scope":         "name=1 tags=2",
		"SearchTagValuesRequest":    "tagName=1 query=2 start=4 end=5 maxTagValues=6 staleValueThreshold=7 RF1After=8",
		"SearchTagValuesResponse":   "tagValues=1 metrics=2",
		"SearchTagValuesV2Response": "tagValues=1 metrics=2",
		"TagValue":                  "type=1 value=2",
		"MetadataMetrics":           "inspectedBytes=1 totalJobs=2 completedJobs=3 totalBlocks=4 totalBlockBytes=5",
		"TraceByIDResponse":         "trace=1 metrics=2 status=3 message=4",
		"TraceByIDMetrics":          "inspectedBytes=1",
		"TraceByIDRequest":          "traceID=1 blockStart=2 blockEnd=3 queryMode=5 allowPartialTrace=6 RF1After=7",
		"QueryRangeResponse":        "series=1 metrics=2 status=3 message=4",
		"QueryInstantResponse":      "series=1 metrics=2 status=3 message=4",
	}
	fd := File_tempo_proto
	for name, fields := range want {
		md := fd.Messages().ByName(protoreflect.Name(name))
		require.NotNil(t, md, name)
		var got []string
		for i := 0; i < md.Fields().Len(); i++ {
			f := md.Fields().Get(i)
			got = append(got, fmt.Sprintf("%s=%d", f.JSONName(), f.Number()))
		}
		require.Equal(t, fields, strings.Join(got, " "), name)
	}
}

// TestStreamingQuerierMethods pins the full gRPC method names Grafana dials.
func TestStreamingQuerierMethods(t *testing.T) {
	var got []string
	for _, m := range StreamingQuerier_ServiceDesc.Streams {
		got = append(got, "/"+StreamingQuerier_ServiceDesc.ServiceName+"/"+m.StreamName)
	}
	require.Equal(t, []string{
		"/tempopb.StreamingQuerier/Search",
		"/tempopb.StreamingQuerier/SearchTags",
		"/tempopb.StreamingQuerier/SearchTagsV2",
		"/tempopb.StreamingQuerier/SearchTagValues",
		"/tempopb.StreamingQuerier/SearchTagValuesV2",
		"/tempopb.StreamingQuerier/MetricsQueryRange",
		"/tempopb.StreamingQuerier/MetricsQueryInstant",
	}, got)
}
