package querier

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/block"
)

func TestParseTraceID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // hex of 16 bytes, "" for an error
	}{
		{"0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"},
		{"0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcdef"},
		{"abcdef0123456789", "0000000000000000abcdef0123456789"}, // 64-bit
		{"1", "00000000000000000000000000000001"},
		{"abc", "00000000000000000000000000000abc"}, // odd length
		{"", ""},
		{strings.Repeat("a", 33), ""},
		{"xyz", ""},
		{"0x12", ""},
	} {
		id, err := ParseTraceID(tc.in)
		if tc.want == "" {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, hexOf(id[:]))
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestParseTimeRange(t *testing.T) {
	tr, err := parseTimeRange(httptest.NewRequest("GET", "/?start=100&end=200", nil))
	require.NoError(t, err)
	require.Equal(t, time.Unix(100, 0), tr.Start)
	require.Equal(t, time.Unix(200, 0), tr.End)
	tr, err = parseTimeRange(httptest.NewRequest("GET", "/?start=0&end=0", nil))
	require.NoError(t, err)
	require.True(t, tr.Start.IsZero() && tr.End.IsZero(), "0 means open, as Grafana sends")
	for _, q := range []string{"start=abc", "end=-1", "start=200&end=100"} {
		_, err := parseTimeRange(httptest.NewRequest("GET", "/?"+q, nil))
		require.Error(t, err, q)
	}
}

func TestTimeRangeOverlaps(t *testing.T) {
	m := &block.Meta{StartTime: time.Unix(100, 0), EndTime: time.Unix(200, 0)}
	require.True(t, TimeRange{}.overlaps(m))
	require.True(t, TimeRange{Start: time.Unix(150, 0)}.overlaps(m))
	require.True(t, TimeRange{Start: time.Unix(50, 0), End: time.Unix(100, 0)}.overlaps(m))
	require.False(t, TimeRange{Start: time.Unix(201, 0)}.overlaps(m))
	require.False(t, TimeRange{End: time.Unix(99, 0)}.overlaps(m))
}

func TestMarshalTraceJSONV1(t *testing.T) {
	b, err := MarshalTraceJSONV1(&tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{
		ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{TraceId: []byte{1, 2}, Name: "op"}}}},
	}}})
	require.NoError(t, err)
	require.JSONEq(t, `{"batches":[{"scopeSpans":[{"spans":[{"traceId":"AQI=","name":"op"}]}]}]}`, string(b))
	b, err = MarshalTraceJSONV1(&tracev1.TracesData{})
	require.NoError(t, err)
	require.JSONEq(t, `{"batches":[]}`, string(b))
}
