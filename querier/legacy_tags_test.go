package querier

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
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

// FuzzParseSearchRequest: any /api/search query string is refused with an
// error or gives a request within the configured bounds whose TraceQL
// parses.
func FuzzParseSearchRequest(f *testing.F) {
	for _, s := range []string{
		"q=%7B%7D&limit=5&spss=2&start=100&end=200",
		"tags=service.name%3Dapi&minDuration=1s",
		"limit=999999&spss=100&start=1&end=604801",
		"q=%7B%20.a%20%3D%20%22x%22%20%7D%20%7C%20count()%20%3E%201",
		"start=%ff&end=&&=",
	} {
		f.Add(s)
	}
	cfg := defaultSearchConfig()
	cfg.MaxResultLimit = 500
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/api/search", nil)
		r.URL.RawQuery = raw
		req, err := ParseSearchRequest(r, cfg)
		if err != nil {
			return
		}
		_, perr := traceql.Parse(req.Query)
		require.NoError(t, perr, "%q gave query %q", raw, req.Query)
		require.GreaterOrEqual(t, req.Limit, uint32(1))
		require.LessOrEqual(t, req.Limit, cfg.MaxResultLimit)
		require.LessOrEqual(t, req.SpansPerSpanSet, cfg.MaxSpansPerSpanSet)
		require.GreaterOrEqual(t, req.SpansPerSpanSet, uint32(1))
		if req.Start != 0 || req.End != 0 {
			require.Greater(t, req.End, req.Start)
			require.LessOrEqual(t, time.Duration(req.End-req.Start)*time.Second, cfg.MaxDuration)
		}
		require.Empty(t, req.Tags)
		require.Zero(t, req.MinDurationMs)
		require.Zero(t, req.MaxDurationMs)
	})
}
