package rubatopb

import (
	"testing"

	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
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
