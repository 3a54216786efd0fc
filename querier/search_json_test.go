package querier

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// sameJSONAsProtojson checks the fast encoder against protojson: both fail,
// or both give the same JSON value.
func sameJSONAsProtojson(t *testing.T, resp *rubatopb.SearchResponse) {
	t.Helper()
	want, werr := protojson.Marshal(resp)
	got, gerr := appendSearchResponseJSON(nil, resp)
	if werr != nil {
		require.Error(t, gerr, "protojson refused %v: %v", resp, werr)
		return
	}
	require.NoError(t, gerr)
	var w, g any
	require.NoError(t, json.Unmarshal(want, &w))
	require.NoError(t, json.Unmarshal(got, &g), "%s", got)
	require.Equal(t, w, g, "protojson %s\nfast     %s", want, got)
}

func TestSearchJSONMatchesProtojson(t *testing.T) {
	anyv := func(v *commonv1.AnyValue) *commonv1.KeyValue { return &commonv1.KeyValue{Key: "k", Value: v} }
	rich := richSearchResponse(3)
	rich.Traces[0].SpanSet = rich.Traces[0].SpanSets[0]
	rich.Traces[1].ServiceStats = map[string]*rubatopb.ServiceStats{"b": {}, "a\"\n\x01é": {SpanCount: 1}, "z": nil}
	rich.Traces[2].SpanSets[0].Spans[0].Attributes = []*commonv1.KeyValue{
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: math.MinInt64}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: math.NaN()}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: math.Inf(-1)}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: 1e-7}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: 1e21}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: -0.0}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_BytesValue{BytesValue: []byte{0, 255, 7}}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{ArrayValue: &commonv1.ArrayValue{Values: []*commonv1.AnyValue{
			{Value: &commonv1.AnyValue_StringValue{StringValue: "<tag>&\u2028"}}, {}}}}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{ArrayValue: &commonv1.ArrayValue{}}}),
		anyv(&commonv1.AnyValue{Value: &commonv1.AnyValue_KvlistValue{KvlistValue: &commonv1.KeyValueList{Values: []*commonv1.KeyValue{{Key: "x"}}}}}),
		anyv(&commonv1.AnyValue{}),
		{Key: "no value"},
		{},
	}
	for _, resp := range []*rubatopb.SearchResponse{
		{},
		{Metrics: &rubatopb.SearchMetrics{}},
		{Traces: []*rubatopb.TraceSearchMetadata{{}}},
		{Traces: []*rubatopb.TraceSearchMetadata{{SpanSets: []*rubatopb.SpanSet{{}}}}},
		rich,
		{Traces: []*rubatopb.TraceSearchMetadata{{TraceID: "bad \xff utf8"}}},
	} {
		sameJSONAsProtojson(t, resp)
	}
}

// FuzzSearchJSON: for any SearchResponse (decoded from fuzzed protobuf),
// the fast encoder and protojson agree.
func FuzzSearchJSON(f *testing.F) {
	for _, r := range []*rubatopb.SearchResponse{richSearchResponse(2), {Metrics: &rubatopb.SearchMetrics{TotalJobs: 1}}} {
		b, err := proto.Marshal(r)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var resp rubatopb.SearchResponse
		if proto.Unmarshal(data, &resp) != nil {
			return
		}
		sameJSONAsProtojson(t, &resp)
	})
}

func BenchmarkSearchJSON(b *testing.B) {
	resp := richSearchResponse(20)
	for _, tc := range []struct {
		name string
		fn   func() ([]byte, error)
	}{
		{"protojson", func() ([]byte, error) { return protojson.Marshal(resp) }},
		{"fast", func() ([]byte, error) { return appendSearchResponseJSON(nil, resp) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.fn(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
