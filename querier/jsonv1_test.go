package querier

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// marshalTraceJSONV1Whole is the v1 JSON encoder as it was before it was
// streamed (protojson of the whole trace, then the top key renamed through
// encoding/json): the oracle of the streamed one's bytes.
func marshalTraceJSONV1Whole(td *tracev1.TracesData) ([]byte, error) {
	b, err := protojson.Marshal(td)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	batches := m["resourceSpans"]
	if batches == nil {
		batches = json.RawMessage("[]")
	}
	return json.Marshal(map[string]json.RawMessage{"batches": batches})
}

// TestWriteTraceJSONV1MatchesMarshal: the streamed v1 JSON is byte for
// byte what the whole-trace encoder wrote, for traces with every kind of
// group and field Grafana's JSON shape has (empty and missing headers,
// schema URLs, characters JSON and HTML escape, events, links, status).
func TestWriteTraceJSONV1MatchesMarshal(t *testing.T) {
	tricky := "a<b>&c\u2028d\u2029e\"f\\g\n\x01h \U0001F600"
	span := func(n byte) *tracev1.Span {
		return &tracev1.Span{
			TraceId: []byte{1, 2, 3, n}, SpanId: []byte{n, 0, 0, 0, 0, 0, 0, 1}, ParentSpanId: []byte{9},
			Name: "op " + tricky, Kind: tracev1.Span_SPAN_KIND_SERVER, StartTimeUnixNano: 1 << 62, EndTimeUnixNano: 1<<62 + 5,
			Attributes: []*commonv1.KeyValue{strAttr("k", tricky), {Key: "i", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: -7}}}},
			Events:     []*tracev1.Span_Event{{Name: "exception", TimeUnixNano: 3}},
			Links:      []*tracev1.Span_Link{{TraceId: []byte{4}, SpanId: []byte{5}}},
			Status:     &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR, Message: tricky},
		}
	}
	for name, td := range map[string]*tracev1.TracesData{
		"empty":     {},
		"no spans":  {ResourceSpans: []*tracev1.ResourceSpans{{}}},
		"nil group": {ResourceSpans: []*tracev1.ResourceSpans{nil, {ScopeSpans: []*tracev1.ScopeSpans{nil, {}}}}},
		"rich": {ResourceSpans: []*tracev1.ResourceSpans{
			{
				Resource:  &resourcev1.Resource{Attributes: []*commonv1.KeyValue{strAttr("service.name", tricky)}, DroppedAttributesCount: 2},
				SchemaUrl: "https://x/" + tricky,
				ScopeSpans: []*tracev1.ScopeSpans{
					{Scope: &commonv1.InstrumentationScope{Name: "lib", Version: "1"}, Spans: []*tracev1.Span{span(1), span(2)}, SchemaUrl: tricky},
					{Scope: &commonv1.InstrumentationScope{}, Spans: []*tracev1.Span{span(3), nil}},
				},
			},
			{Resource: &resourcev1.Resource{}, ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{}}}}},
			{SchemaUrl: "only"},
		}},
		"big": bigTrace(boundsTraceID, 0, 50, 100),
	} {
		t.Run(name, func(t *testing.T) {
			want, err := marshalTraceJSONV1Whole(td)
			require.NoError(t, err)
			got, err := MarshalTraceJSONV1(td)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
}

// maxWriteRecorder records the largest single Write.
type maxWriteRecorder struct {
	*httptest.ResponseRecorder
	maxWrite int
}

func (m *maxWriteRecorder) Write(p []byte) (int, error) {
	m.maxWrite = max(m.maxWrite, len(p))
	return m.ResponseRecorder.Write(p)
}

// TestTraceJSONV1Streamed: the v1 JSON answer of a big trace reaches the
// response writer in pieces of at most the handler's buffer or one span,
// never as one copy of the whole answer, and decodes to the trace.
func TestTraceJSONV1Streamed(t *testing.T) {
	b := newBoundsQuerier(t, Config{}, overrides.Limits{})
	full := bigTrace(boundsTraceID, 0, 400, 2000)
	b.addBlock(t, boundsTraceID, full)
	mux := http.NewServeMux()
	NewHandler(b.q, tenant.Resolver{}).Register(mux)
	req := httptest.NewRequest(http.MethodGet, "/api/traces/"+idHex(boundsTraceID), nil)
	req.Header.Set("Accept", mimeJSON)
	rec := &maxWriteRecorder{ResponseRecorder: httptest.NewRecorder()}
	mux.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	require.Greater(t, len(body), 800_000)
	require.LessOrEqual(t, rec.maxWrite, 64<<10, "no write of the whole answer (largest %d of %d bytes)", rec.maxWrite, len(body))
	require.True(t, strings.HasPrefix(body, `{"batches":[`))
	var got tracev1.TracesData
	require.NoError(t, protojson.Unmarshal([]byte(`{"resourceSpans"`+body[len(`{"batches"`):]), &got))
	require.Equal(t, 400, spanCount(&got))
	require.True(t, proto.Equal(full, &got), "the trace as written")
}

// BenchmarkTraceJSONV1 compares the streamed v1 encoder with the
// whole-trace one it replaced, on a 1,000-span trace.
func BenchmarkTraceJSONV1(b *testing.B) {
	td := bigTrace(boundsTraceID, 0, 1000, 200)
	b.Run("streamed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := WriteTraceJSONV1(io.Discard, td); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshalTraceJSONV1Whole(td); err != nil {
				b.Fatal(err)
			}
		}
	})
}
