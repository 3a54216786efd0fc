package querier

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang/protobuf/jsonpb" //nolint:staticcheck // Grafana's decoder
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

// TestSearchJSONStrict decodes /api/search the way Grafana does (strict
// jsonpb), for a response using every field, and checks the parameters
// reached the searcher with defaults and limits applied.
func TestSearchJSONStrict(t *testing.T) {
	f := &fakeSearcher{searchResp: richSearchResponse(2)}
	s := startAPI(t, f, defaultSearchConfig(), false)

	code, body := httpGet(t, s.url("/api/search?q="+url.QueryEscape(`{ resource.service.name = "svc" }`)+"&limit=5&spss=2&start=1700000000&end=1700003600"))
	require.Equal(t, http.StatusOK, code, body)
	var got rubatopb.SearchResponse
	strictDecode(t, body, &got)
	require.Len(t, got.Traces, 2)
	tr := got.Traces[0]
	require.Equal(t, "abc0", tr.TraceID)
	require.Equal(t, uint64(1700000000123456789), tr.StartTimeUnixNano)
	require.Len(t, tr.SpanSets, 1)
	require.NotNil(t, tr.SpanSet, "deprecated spanSet carries the first spanset, as Tempo")
	require.Equal(t, "00000000000000a1", tr.SpanSet.Spans[0].SpanID)
	require.Equal(t, int64(1<<40), tr.SpanSets[0].Spans[0].Attributes[1].Value.GetIntValue())
	require.Equal(t, uint32(1), tr.ServiceStats["svc"].ErrorCount)
	require.Equal(t, uint64(99), got.Metrics.InspectedSpans)
	require.Contains(t, body, `"inspectedBytes":"1099511627776"`, "64-bit integers are JSON strings")

	req := f.lastSearch()
	require.Equal(t, `{ resource.service.name = "svc" }`, req.Query)
	require.Equal(t, uint32(5), req.Limit)
	require.Equal(t, uint32(2), req.SpansPerSpanSet)
	require.Equal(t, uint32(1700000000), req.Start)
	require.Equal(t, uint32(1700003600), req.End)

	// Accept: application/protobuf gets the same answer as protobuf.
	hreq, err := http.NewRequest(http.MethodGet, s.url("/api/search?limit=5"), nil)
	require.NoError(t, err)
	hreq.Header.Set("Accept", "application/protobuf")
	hresp, err := http.DefaultClient.Do(hreq)
	require.NoError(t, err)
	pb, err := io.ReadAll(hresp.Body)
	require.NoError(t, err)
	hresp.Body.Close()
	require.Equal(t, "application/protobuf", hresp.Header.Get("Content-Type"))
	var fromPB rubatopb.SearchResponse
	require.NoError(t, proto.Unmarshal(pb, &fromPB))
	require.Len(t, fromPB.Traces, 2)
	require.Equal(t, "abc1", fromPB.Traces[1].TraceID)

	// The answer is held to limit and spss whatever the searcher returns.
	f.searchResp = richSearchResponse(5)
	f.searchResp.Traces[0].SpanSets[0].Spans = append(f.searchResp.Traces[0].SpanSets[0].Spans, f.searchResp.Traces[1].SpanSets[0].Spans[0], f.searchResp.Traces[2].SpanSets[0].Spans[0])
	code, body = httpGet(t, s.url("/api/search?limit=2&spss=2"))
	require.Equal(t, http.StatusOK, code, body)
	strictDecode(t, body, &got)
	require.Len(t, got.Traces, 2)
	require.Len(t, got.Traces[0].SpanSets[0].Spans, 2)
	require.Equal(t, uint32(2), got.Traces[0].SpanSets[0].Matched, "matched is the searcher's count")

	// Nothing found still decodes, with metrics.
	f.searchResp = &rubatopb.SearchResponse{}
	code, body = httpGet(t, s.url("/api/search"))
	require.Equal(t, http.StatusOK, code)
	strictDecode(t, body, &got)
	require.Empty(t, got.Traces)
	require.JSONEq(t, `{"metrics":{}}`, body)
	require.Equal(t, "{}", f.lastSearch().Query, "no q: match all")
	// The decoder is as strict as Grafana's: a field beyond the pinned
	// proto (Tempo's later backendReads) fails.
	require.Error(t, jsonpb.UnmarshalString(`{"metrics":{"backendReads":"1"}}`, &rubatopb.SearchResponse{}))
	require.Equal(t, uint32(20), f.lastSearch().Limit, "default_result_limit")
	require.Equal(t, uint32(3), f.lastSearch().SpansPerSpanSet, "default spss")
}

func TestSearchLimitsFromConfig(t *testing.T) {
	f := &fakeSearcher{searchResp: &rubatopb.SearchResponse{}}
	cfg := defaultSearchConfig()
	cfg.DefaultResultLimit, cfg.MaxResultLimit, cfg.MaxDuration, cfg.MaxSpansPerSpanSet = 7, 50, time.Hour, 10
	s := startAPI(t, f, cfg, false)
	for _, tc := range []struct {
		query     string
		code      int
		limit     uint32
		errSubstr string
	}{
		{"", 200, 7, ""},
		{"limit=30", 200, 30, ""},
		{"limit=1000", 200, 50, ""}, // capped, as Tempo
		{"spss=11", 400, 0, "spans per span set exceeds 10. received 11"},
		{"start=1000&end=4601", 400, 0, "range specified by start and end exceeds 1h0m0s"},
		{"start=1000&end=4600", 200, 7, ""},
	} {
		code, body := httpGet(t, s.url("/api/search?"+tc.query))
		require.Equal(t, tc.code, code, "%s: %s", tc.query, body)
		if tc.code == 200 {
			require.Equal(t, tc.limit, f.lastSearch().Limit, tc.query)
		} else {
			require.Contains(t, body, tc.errSubstr, tc.query)
		}
	}
}

func TestSearchBadRequests(t *testing.T) {
	f := &fakeSearcher{searchResp: &rubatopb.SearchResponse{}}
	s := startAPI(t, f, defaultSearchConfig(), false)
	for _, tc := range []struct{ query, want string }{
		{"q=%7B%7D&tags=a%3Db", "can't specify tags and q"},
		{"limit=0", "invalid limit"},
		{"limit=abc", "invalid limit"},
		{"limit=-1", "invalid limit"},
		{"spss=0", "invalid spss"},
		{"start=abc&end=10", "invalid start"},
		{"start=20&end=10", "start must be before end"},
		{"start=20", "start must be before end"},
		{"start=99999999999&end=99999999999", "invalid start"},
		{"minDuration=abc", "invalid minDuration"},
		{"minDuration=2s&maxDuration=1s", "must be greater than minDuration"},
		{"tags=" + url.QueryEscape(`a="unterminated`), "invalid tags"},
		{"tags=" + url.QueryEscape(`a=1 a=2`), "set twice"},
		{"tags=" + url.QueryEscape(`status.code=maybe`), "status.code"},
		{"q=%7B%7D&minDuration=1s", "minDuration and maxDuration belong to tag search"},
	} {
		code, body := httpGet(t, s.url("/api/search?"+tc.query))
		require.Equal(t, http.StatusBadRequest, code, tc.query)
		require.Contains(t, body, tc.want, tc.query)
	}

	// TraceQL is parsed before the searcher runs: 400 plain text with the
	// position, as Tempo's "invalid TraceQL query"; unsupported TraceQL
	// names the feature.
	n := len(f.searches)
	code, body := httpGet(t, s.url("/api/search?q="+url.QueryEscape(`{ .a = 1 }}`)))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "invalid TraceQL query: parse error at line 1, col 11")
	code, body = httpGet(t, s.url("/api/search?q="+url.QueryEscape(`{} | rate()`)))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "unsupported TraceQL feature")
	require.Len(t, f.searches, n, "the searcher never saw them")
	// Request errors the searcher finds (ErrInvalidQuery) are 400 too.
	f.err = fmt.Errorf("%w: attribute name too long", ErrInvalidQuery)
	code, body = httpGet(t, s.url("/api/search?q=%7B%7D"))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "attribute name too long")
	f.err = errors.New("disk on fire")
	code, body = httpGet(t, s.url("/api/search?q=%7B%7D"))
	require.Equal(t, http.StatusInternalServerError, code)
	require.Contains(t, body, "disk on fire")
}

func TestLegacySearchBecomesTraceQL(t *testing.T) {
	f := &fakeSearcher{searchResp: &rubatopb.SearchResponse{}}
	s := startAPI(t, f, defaultSearchConfig(), false)
	tags := url.QueryEscape(`service.name=api http.status_code=500 root.name="GET /x" status.code=error`)
	code, body := httpGet(t, s.url("/api/search?tags="+tags+"&minDuration=100ms&maxDuration=1.5s&limit=3"))
	require.Equal(t, http.StatusOK, code, body)
	req := f.lastSearch()
	require.Equal(t, `{ .http.status_code = 500 || .http.status_code =~ ".*500.*" } && { rootName =~ ".*GET /x.*" } && `+
		`{ resource.service.name =~ ".*api.*" } && { status = error } && { traceDuration >= 100ms && traceDuration <= 1.5s }`, req.Query)
	require.Empty(t, req.Tags, "the searcher gets TraceQL only")
	require.Zero(t, req.MinDurationMs)
	require.Equal(t, uint32(3), req.Limit)
}

func TestLegacyToTraceQL(t *testing.T) {
	for _, tc := range []struct {
		tags     map[string]string
		min, max uint32
		want     string
	}{
		{nil, 0, 0, "{}"},
		{map[string]string{"name": "a.b*"}, 0, 0, `{ name =~ ".*a\\.b\\*.*" }`},
		{map[string]string{"root.service.name": `q"uote`}, 0, 0, `{ rootServiceName =~ ".*q\"uote.*" }`},
		{map[string]string{"status.code": "2"}, 0, 0, `{ status = error }`},
		{map[string]string{"status.code": "STATUS_CODE_OK"}, 0, 0, `{ status = ok }`},
		{nil, 1, 0, `{ traceDuration >= 1ms }`},
		{nil, 0, 60000, `{ traceDuration <= 1m0s }`},
	} {
		got, err := LegacyToTraceQL(tc.tags, tc.min, tc.max)
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
	}
	for _, bad := range []string{"", "a b", "x}", "a=b"} {
		_, err := LegacyToTraceQL(map[string]string{bad: "v"}, 0, 0)
		require.Error(t, err, bad)
	}
}

func TestTagsV2AndV1(t *testing.T) {
	f := &fakeSearcher{tagsResp: &rubatopb.SearchTagsV2Response{
		Scopes: []*rubatopb.SearchTagsV2Scope{
			{Name: ScopeResource, Tags: []string{"service.name", "host", "service.name"}},
			{Name: ScopeSpan, Tags: []string{"http.method", "host"}},
		},
		Metrics: &rubatopb.MetadataMetrics{InspectedBytes: 1 << 33, TotalJobs: 2, CompletedJobs: 2, TotalBlocks: 1, TotalBlockBytes: 5},
	}}
	s := startAPI(t, f, defaultSearchConfig(), false)

	code, body := httpGet(t, s.url("/api/v2/search/tags?limit=5000&start=100&end=200&q=%7B%7D&maxStaleValues=7"))
	require.Equal(t, http.StatusOK, code, body)
	var v2 rubatopb.SearchTagsV2Response
	strictDecode(t, body, &v2)
	scopes := map[string][]string{}
	for _, sc := range v2.Scopes {
		scopes[sc.Name] = sc.Tags
	}
	require.Equal(t, []string{"host", "service.name"}, scopes[ScopeResource], "sorted, unique")
	for _, in := range []string{"duration", "kind", "name", "rootName", "rootServiceName", "status", "statusMessage", "traceDuration"} {
		require.Contains(t, scopes[ScopeIntrinsic], in)
	}
	req := f.lastTags()
	require.Equal(t, uint32(5000), req.MaxTagsPerScope)
	require.Equal(t, uint32(100), req.Start)
	require.Equal(t, uint32(200), req.End)
	require.Equal(t, "{}", req.Query)
	require.Equal(t, uint32(7), req.StaleValuesThreshold)

	code, body = httpGet(t, s.url("/api/v2/search/tags?scope=span&limit=1"))
	require.Equal(t, http.StatusOK, code, body)
	strictDecode(t, body, &v2)
	require.Len(t, v2.Scopes, 1)
	require.Equal(t, ScopeSpan, v2.Scopes[0].Name)
	require.Equal(t, []string{"host"}, v2.Scopes[0].Tags, "sorted, then the limit")

	code, body = httpGet(t, s.url("/api/search/tags"))
	require.Equal(t, http.StatusOK, code, body)
	var v1 rubatopb.SearchTagsResponse
	strictDecode(t, body, &v1)
	require.Equal(t, []string{"host", "http.method", "service.name"}, v1.TagNames, "v1: attribute names of every scope, no intrinsics")
	code, body = httpGet(t, s.url("/api/search/tags?scope=intrinsic"))
	require.Equal(t, http.StatusOK, code, body)
	strictDecode(t, body, &v1)
	require.Contains(t, v1.TagNames, "rootServiceName")

	code, body = httpGet(t, s.url("/api/v2/search/tags?scope=bogus"))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "invalid scope")
}

func TestTagValuesV2AndV1(t *testing.T) {
	f := &fakeSearcher{valuesResp: &rubatopb.SearchTagValuesV2Response{
		TagValues: []*rubatopb.TagValue{
			{Type: "string", Value: "GET"}, {Type: "int", Value: "200"}, {Type: "keyword", Value: "error"},
			{Type: "string", Value: "GET"}, {Type: "string", Value: ""}, {Type: "duration", Value: "10ms"},
			{Type: "float", Value: "1.5"}, {Type: "bool", Value: "true"},
		},
		Metrics: &rubatopb.MetadataMetrics{InspectedBytes: 10},
	}}
	s := startAPI(t, f, defaultSearchConfig(), false)

	q := url.QueryEscape(`{resource.service.name="x"}`)
	code, body := httpGet(t, s.url("/api/v2/search/tag/span.http.method/values?limit=5000&q="+q+"&start=100&end=200"))
	require.Equal(t, http.StatusOK, code, body)
	var v2 rubatopb.SearchTagValuesV2Response
	strictDecode(t, body, &v2)
	require.Equal(t, []string{"string:GET", "int:200", "keyword:error", "duration:10ms", "float:1.5", "bool:true"}, typed(v2.TagValues),
		"unique, empty values dropped, searcher order kept")
	req := f.lastValues()
	require.Equal(t, "span.http.method", req.TagName)
	require.Equal(t, `{resource.service.name="x"}`, req.Query)
	require.Equal(t, uint32(5000), req.MaxTagValues)
	require.Equal(t, uint32(100), req.Start)
	require.Equal(t, uint32(200), req.End)

	// Tag names are decoded exactly once.
	for _, tc := range []struct{ path, want string }{
		{"span.a%2Fb", "span.a/b"},
		{"span.a%252Fb", "span.a%2Fb"},
		{"resource.service.name", "resource.service.name"},
		{".k%20x", ".k x"},
	} {
		code, body = httpGet(t, s.url("/api/v2/search/tag/"+tc.path+"/values"))
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, tc.want, f.lastValues().TagName, tc.path)
	}

	code, body = httpGet(t, s.url("/api/v2/search/tag/name/values?limit=2"))
	require.Equal(t, http.StatusOK, code, body)
	strictDecode(t, body, &v2)
	require.Len(t, v2.TagValues, 2)

	// v1: strings, tag name as an unscoped attribute or a legacy name.
	code, body = httpGet(t, s.url("/api/search/tag/http.method/values"))
	require.Equal(t, http.StatusOK, code, body)
	var v1 rubatopb.SearchTagValuesResponse
	strictDecode(t, body, &v1)
	require.Equal(t, []string{"GET", "200", "error", "10ms", "1.5", "true"}, v1.TagValues)
	require.Equal(t, ".http.method", f.lastValues().TagName)
	httpGet(t, s.url("/api/search/tag/root.service.name/values"))
	require.Equal(t, "rootServiceName", f.lastValues().TagName)

	f.err = fmt.Errorf("%w: unknown intrinsic %q", ErrInvalidQuery, "bogus")
	code, body = httpGet(t, s.url("/api/v2/search/tag/bogus/values"))
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `unknown intrinsic "bogus"`)
}

func typed(tvs []*rubatopb.TagValue) []string {
	out := make([]string, len(tvs))
	for i, tv := range tvs {
		out[i] = tv.Type + ":" + tv.Value
	}
	return out
}

func TestTenantsAndNoSearcher(t *testing.T) {
	f := &fakeSearcher{searchResp: &rubatopb.SearchResponse{}}
	s := startAPI(t, f, defaultSearchConfig(), true)
	code, _ := httpGet(t, s.url("/api/search"))
	require.Equal(t, http.StatusUnauthorized, code, "multitenant without X-Scope-OrgID")
	code, _ = httpGet(t, s.url("/api/search"), "X-Scope-OrgID", "team-a")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "team-a", f.tenants[len(f.tenants)-1])

	none := startAPI(t, nil, defaultSearchConfig(), false)
	for _, p := range []string{"/api/search", "/api/v2/search/tags", "/api/search/tags", "/api/v2/search/tag/name/values", "/api/search/tag/x/values"} {
		code, body := httpGet(t, none.url(p))
		require.Equal(t, http.StatusNotImplemented, code, p)
		require.Contains(t, body, "search is not implemented", p)
	}
}

func TestFallbackRoutes(t *testing.T) {
	s := startAPI(t, &fakeSearcher{}, defaultSearchConfig(), false)
	code, body := httpGet(t, s.url("/api/metrics/query_range?q=%7B%7D%7Crate()"))
	require.Equal(t, http.StatusNotImplemented, code)
	require.Contains(t, body, "TraceQL metrics are not implemented")
	code, body = httpGet(t, s.url("/api/metrics/query?q=x"))
	require.Equal(t, http.StatusNotImplemented, code)
	require.Contains(t, body, "TraceQL metrics are not implemented")
	code, body = httpGet(t, s.url("/api/nope"))
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, body, "no such endpoint: GET /api/nope")
	require.NotEqual(t, "404 page not found\n", body)
	code, body = httpGet(t, s.url("/api/echo"))
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "echo", body)

	// REST over h2c (HTTP/2 with prior knowledge) works too.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	resp, err := (&http.Client{Transport: tr}).Get(s.url("/api/echo"))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 2, resp.ProtoMajor)
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
