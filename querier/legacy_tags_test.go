package querier

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/traceql"
)

// FuzzLegacySearch: whatever legacy tag search a client sends, the request
// is either refused with an error or becomes TraceQL that parses; and a tag
// value, however odd, matches a span whose attribute holds it (the value's
// quoting survives TraceQL's lexer and regex).
func FuzzLegacySearch(f *testing.F) {
	f.Add(`service.name=api http.status_code=500`, "100ms", "1s", "GET /x")
	f.Add(`a="b c" root.name=x status.code=error`, "", "", `q"uo\te.*[`)
	f.Add(`=`, "-1s", "", "\x00\xff")
	f.Add(`k="\u00e9\n"`, "1h", "2h", "é")
	f.Fuzz(func(t *testing.T, tags, minD, maxD, value string) {
		q := url.Values{"tags": {tags}, "minDuration": {minD}, "maxDuration": {maxD}}
		req, err := ParseSearchRequest(httptest.NewRequest("GET", "/api/search?"+q.Encode(), nil), defaultSearchConfig())
		if err == nil {
			_, perr := traceql.Parse(req.Query)
			require.NoError(t, perr, "tags %q became %q", tags, req.Query)
		}

		query, err := LegacyToTraceQL(map[string]string{"k": value}, 0, 0)
		if !utf8.ValidString(value) {
			require.Error(t, err, "OTLP strings are UTF-8: such a value is refused")
			return
		}
		require.NoError(t, err)
		tq, err := traceql.Parse(query)
		require.NoError(t, err, "value %q became %q", value, query)
		td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{
			TraceId: make([]byte, 16), SpanId: make([]byte, 8), Name: "op", StartTimeUnixNano: 1, EndTimeUnixNano: 2,
			Attributes: []*commonv1.KeyValue{strAttr("k", value)},
		}}}}}}}
		sets, err := tq.Eval(td)
		require.NoError(t, err)
		require.NotEmpty(t, sets, "value %q: %s must match its own span", value, query)
	})
}
