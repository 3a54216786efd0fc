package querier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
	"github.com/rubatodb/rubato/pkg/traceql"
)

// Tag scopes of the tags API (CONTRACT.md §1.5).
const (
	ScopeResource        = "resource"
	ScopeSpan            = "span"
	ScopeIntrinsic       = "intrinsic"
	ScopeEvent           = "event"
	ScopeLink            = "link"
	ScopeInstrumentation = "instrumentation"
)

var validScopes = map[string]bool{
	"": true, ScopeResource: true, ScopeSpan: true, ScopeIntrinsic: true,
	ScopeEvent: true, ScopeLink: true, ScopeInstrumentation: true,
}

// intrinsicTags is the minimum the `intrinsic` scope lists (every intrinsic
// the TraceQL engine knows): Grafana falls back to an older built-in list
// when it is absent.
var intrinsicTags = traceql.Intrinsics()

// SearchAPI serves Tempo's search and tag HTTP API over a Searcher.
type SearchAPI struct {
	searcher Searcher // nil: search not available, every call answers 501
	cfg      SearchConfig
	tenants  tenant.Resolver
	logger   log.Logger
}

// NewSearchAPI returns the search API over s (which may be nil).
func NewSearchAPI(s Searcher, cfg SearchConfig, tenants tenant.Resolver, logger log.Logger) *SearchAPI {
	return &SearchAPI{searcher: s, cfg: cfg, tenants: tenants, logger: log.With(logger, "component", "search-api")}
}

// Register mounts the search and tag routes on mux.
func (a *SearchAPI) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/search", a.search)
	mux.HandleFunc("GET /api/search/tags", a.tagsV1)
	mux.HandleFunc("GET /api/v2/search/tags", a.tagsV2)
	mux.HandleFunc("GET /api/search/tag/{name}/values", a.tagValuesV1)
	mux.HandleFunc("GET /api/v2/search/tag/{name}/values", a.tagValuesV2)
}

// httpError is an error with the HTTP status it answers.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

var errNoSearcher = &httpError{code: http.StatusNotImplemented, msg: "search is not implemented: this querier has no search engine"}

// ParseSearchRequest reads /api/search parameters as Tempo does and applies
// cfg: limit default and cap, spss default and bound, maximum range; legacy
// tags/minDuration/maxDuration become TraceQL in Query.
func ParseSearchRequest(r *http.Request, cfg SearchConfig) (*rubatopb.SearchRequest, error) {
	v := r.URL.Query()
	req := &rubatopb.SearchRequest{}
	var err error
	if req.Start, err = uintParam(v.Get("start"), "start"); err != nil {
		return nil, err
	}
	if req.End, err = uintParam(v.Get("end"), "end"); err != nil {
		return nil, err
	}
	q, hasQ := v.Get("q"), v.Get("q") != ""
	tagsText, hasTags := v.Get("tags"), v.Get("tags") != ""
	if hasQ && hasTags {
		return nil, badRequest("invalid request: can't specify tags and q in the same query")
	}
	var tags map[string]string
	if hasTags {
		if tags, err = parseLogfmtTags(tagsText); err != nil {
			return nil, badRequest("%v", err)
		}
	}
	var minMs, maxMs uint32
	for _, p := range []struct {
		name string
		dst  *uint32
	}{{"minDuration", &minMs}, {"maxDuration", &maxMs}} {
		s := v.Get(p.name)
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d.Milliseconds() > 1<<32-1 {
			return nil, badRequest("invalid %s: %q: want a Go duration such as 100ms", p.name, s)
		}
		*p.dst = uint32(d.Milliseconds())
	}
	if minMs != 0 && maxMs != 0 && minMs > maxMs {
		return nil, badRequest("invalid maxDuration: must be greater than minDuration")
	}
	if hasQ && (minMs != 0 || maxMs != 0) {
		return nil, badRequest("invalid request: minDuration and maxDuration belong to tag search; put a duration in the TraceQL query instead")
	}
	if hasQ {
		req.Query = q
	} else if req.Query, err = LegacyToTraceQL(tags, minMs, maxMs); err != nil {
		return nil, badRequest("%v", err)
	}
	if req.Limit, err = positiveParam(v.Get("limit"), "limit"); err != nil {
		return nil, err
	}
	if req.SpansPerSpanSet, err = positiveParam(v.Get("spss"), "spss"); err != nil {
		return nil, err
	}
	if err := ApplySearchLimits(req, cfg); err != nil {
		return nil, err
	}
	return req, nil
}

// ApplySearchLimits validates req's range and fills in and bounds its limit
// and spss, for HTTP and gRPC alike. Errors are 400s.
func ApplySearchLimits(req *rubatopb.SearchRequest, cfg SearchConfig) error {
	if (req.Start != 0 || req.End != 0) && req.End <= req.Start {
		return badRequest("http parameter start must be before end. received start=%d end=%d", req.Start, req.End)
	}
	if cfg.MaxDuration > 0 && time.Duration(req.End-req.Start)*time.Second > cfg.MaxDuration {
		return badRequest("range specified by start and end exceeds %s. received start=%d end=%d", cfg.MaxDuration, req.Start, req.End)
	}
	if req.Limit == 0 {
		req.Limit = cfg.DefaultResultLimit
	}
	if cfg.MaxResultLimit != 0 && req.Limit > cfg.MaxResultLimit {
		req.Limit = cfg.MaxResultLimit
	}
	if req.SpansPerSpanSet == 0 {
		req.SpansPerSpanSet = cfg.DefaultSpansPerSpanSet
	}
	if cfg.MaxSpansPerSpanSet != 0 && req.SpansPerSpanSet > cfg.MaxSpansPerSpanSet {
		return badRequest("spans per span set exceeds %d. received %d", cfg.MaxSpansPerSpanSet, req.SpansPerSpanSet)
	}
	if strings.TrimSpace(req.Query) == "" {
		req.Query = "{}"
	}
	// Validate here, as Tempo's frontend does, so a bad query is a 400 with
	// the position whatever the searcher; unsupported TraceQL (metrics
	// queries, …) is a 400 naming the feature.
	if _, err := traceql.Parse(req.Query); err != nil {
		return badRequest("invalid TraceQL query: %v", err)
	}
	return nil
}

func uintParam(s, name string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, badRequest("invalid %s: %q: want unix seconds", name, s)
	}
	return uint32(n), nil
}

func positiveParam(s, name string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, badRequest("invalid %s: %q: must be a positive number", name, s)
	}
	return uint32(n), nil
}

func (a *SearchAPI) search(w http.ResponseWriter, r *http.Request) {
	tenantID, ok := a.begin(w, r)
	if !ok {
		return
	}
	req, err := ParseSearchRequest(r, a.cfg)
	if err != nil {
		a.fail(w, err)
		return
	}
	if a.searcher == nil {
		a.fail(w, errNoSearcher)
		return
	}
	resp, err := a.searcher.Search(r.Context(), tenantID, req, nil)
	if err != nil {
		a.fail(w, err)
		return
	}
	resp = normalizeSearchResponse(resp, req)
	if wantsProtobuf(r) {
		writeProto(w, resp)
		return
	}
	b, err := appendSearchResponseJSON(make([]byte, 0, 4096), resp)
	if err != nil {
		a.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", mimeJSON)
	_, _ = w.Write(b)
}

// normalizeSearchResponse makes metrics non-nil, holds the answer to the
// request's limit and spss (whatever the searcher returned), and fills the
// deprecated spanSet with the first spanset, as Tempo does (Grafana prefers
// it).
func normalizeSearchResponse(resp *rubatopb.SearchResponse, req *rubatopb.SearchRequest) *rubatopb.SearchResponse {
	if resp == nil {
		resp = &rubatopb.SearchResponse{}
	}
	if resp.Metrics == nil {
		resp.Metrics = &rubatopb.SearchMetrics{}
	}
	if req.Limit > 0 && len(resp.Traces) > int(req.Limit) {
		resp.Traces = resp.Traces[:req.Limit]
	}
	for _, t := range resp.Traces {
		if req.SpansPerSpanSet > 0 {
			for _, ss := range t.SpanSets {
				if len(ss.Spans) > int(req.SpansPerSpanSet) {
					ss.Spans = ss.Spans[:req.SpansPerSpanSet]
				}
			}
			if t.SpanSet != nil && len(t.SpanSet.Spans) > int(req.SpansPerSpanSet) {
				t.SpanSet.Spans = t.SpanSet.Spans[:req.SpansPerSpanSet]
			}
		}
		if t.SpanSet == nil && len(t.SpanSets) > 0 {
			t.SpanSet = t.SpanSets[0]
		}
	}
	return resp
}

// begin resolves the tenant. Whether a searcher is wired is checked after
// the request is parsed, so bad requests are 400 either way.
func (a *SearchAPI) begin(w http.ResponseWriter, r *http.Request) (string, bool) {
	tenantID, err := a.tenants.FromHTTP(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return "", false
	}
	return tenantID, true
}

// fail answers err: request errors are 400 plain text (Grafana shows the
// body), everything else 5xx.
func (a *SearchAPI) fail(w http.ResponseWriter, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		http.Error(w, he.msg, he.code)
	case errors.Is(err, ErrInvalidQuery):
		http.Error(w, err.Error(), http.StatusBadRequest)
	case errors.Is(err, ErrTooManyRequests):
		http.Error(w, err.Error(), http.StatusTooManyRequests)
	case errors.Is(err, ErrNoIngesters), errors.Is(err, ErrIngestersUnavailable), status.Code(err) == codes.Unavailable:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case errors.Is(err, context.Canceled):
		http.Error(w, "request cancelled", 499)
	case errors.Is(err, context.DeadlineExceeded):
		http.Error(w, "search timed out: "+err.Error(), http.StatusGatewayTimeout)
	default:
		level.Error(a.logger).Log("msg", "search failed", "err", err)
		http.Error(w, "search failed: "+err.Error(), http.StatusInternalServerError)
	}
}

// tagsRequest reads the tag API parameters shared by v1 and v2.
func tagsRequest(r *http.Request) (*rubatopb.SearchTagsRequest, error) {
	v := r.URL.Query()
	req := &rubatopb.SearchTagsRequest{Scope: v.Get("scope"), Query: v.Get("q")}
	if !validScopes[req.Scope] {
		return nil, badRequest("invalid scope %q: want resource, span, intrinsic, event, link or instrumentation", req.Scope)
	}
	var err error
	if req.Start, req.End, err = tagRange(v.Get("start"), v.Get("end")); err != nil {
		return nil, err
	}
	if req.MaxTagsPerScope, err = positiveParam(v.Get("limit"), "limit"); err != nil {
		return nil, err
	}
	if req.StaleValuesThreshold, err = positiveParam(v.Get("maxStaleValues"), "maxStaleValues"); err != nil {
		return nil, err
	}
	return req, nil
}

func tagRange(start, end string) (uint32, uint32, error) {
	s, err := uintParam(start, "start")
	if err != nil {
		return 0, 0, err
	}
	e, err := uintParam(end, "end")
	if err != nil {
		return 0, 0, err
	}
	if (s != 0 || e != 0) && e != 0 && e <= s {
		return 0, 0, badRequest("http parameter start must be before end. received start=%d end=%d", s, e)
	}
	return s, e, nil
}

// runTagsV2 asks the searcher and shapes the answer: only the asked scope,
// the intrinsic scope always present when asked for (or no scope given),
// each scope's tags sorted, unique and within the limit.
func (a *SearchAPI) runTagsV2(ctx context.Context, tenantID string, req *rubatopb.SearchTagsRequest) (*rubatopb.SearchTagsV2Response, error) {
	if a.searcher == nil {
		return nil, errNoSearcher
	}
	resp, err := a.searcher.SearchTagsV2(ctx, tenantID, req)
	if err != nil {
		return nil, err
	}
	return shapeTagsV2(resp, req), nil
}

func shapeTagsV2(resp *rubatopb.SearchTagsV2Response, req *rubatopb.SearchTagsRequest) *rubatopb.SearchTagsV2Response {
	if resp == nil {
		resp = &rubatopb.SearchTagsV2Response{}
	}
	byName := map[string]map[string]bool{}
	var order []string
	add := func(scope string, tags []string) {
		if req.Scope != "" && scope != req.Scope {
			return
		}
		set, ok := byName[scope]
		if !ok {
			set = map[string]bool{}
			byName[scope] = set
			order = append(order, scope)
		}
		for _, t := range tags {
			if t != "" {
				set[t] = true
			}
		}
	}
	for _, s := range resp.Scopes {
		add(s.Name, s.Tags)
	}
	add(ScopeIntrinsic, intrinsicTags)
	out := &rubatopb.SearchTagsV2Response{Metrics: resp.Metrics}
	if out.Metrics == nil {
		out.Metrics = &rubatopb.MetadataMetrics{}
	}
	for _, name := range order {
		tags := make([]string, 0, len(byName[name]))
		for t := range byName[name] {
			tags = append(tags, t)
		}
		sort.Strings(tags)
		if req.MaxTagsPerScope != 0 && uint32(len(tags)) > req.MaxTagsPerScope {
			tags = tags[:req.MaxTagsPerScope]
		}
		out.Scopes = append(out.Scopes, &rubatopb.SearchTagsV2Scope{Name: name, Tags: tags})
	}
	return out
}

// tagsV1FromV2 flattens v2 scopes into v1 tag names: attribute scopes when
// no scope is asked for (intrinsics only when asked, as Tempo's v1).
func tagsV1FromV2(v2 *rubatopb.SearchTagsV2Response, scope string, limit uint32) *rubatopb.SearchTagsResponse {
	set := map[string]bool{}
	for _, s := range v2.Scopes {
		if scope == "" && s.Name == ScopeIntrinsic {
			continue
		}
		for _, t := range s.Tags {
			set[t] = true
		}
	}
	out := &rubatopb.SearchTagsResponse{Metrics: v2.Metrics, TagNames: make([]string, 0, len(set))}
	for t := range set {
		out.TagNames = append(out.TagNames, t)
	}
	sort.Strings(out.TagNames)
	if limit != 0 && uint32(len(out.TagNames)) > limit {
		out.TagNames = out.TagNames[:limit]
	}
	return out
}

func (a *SearchAPI) tagsV2(w http.ResponseWriter, r *http.Request) {
	serveTags(a, w, r, tagsRequest, func(ctx context.Context, tenantID string, req *rubatopb.SearchTagsRequest) (proto.Message, error) {
		return a.runTagsV2(ctx, tenantID, req)
	})
}

func (a *SearchAPI) tagsV1(w http.ResponseWriter, r *http.Request) {
	serveTags(a, w, r, tagsRequest, func(ctx context.Context, tenantID string, req *rubatopb.SearchTagsRequest) (proto.Message, error) {
		limit := req.MaxTagsPerScope
		v2, err := a.runTagsV2(ctx, tenantID, req)
		if err != nil {
			return nil, err
		}
		return tagsV1FromV2(v2, req.Scope, limit), nil
	})
}

// serveTags is the shape of every tag handler: the tenant, the request
// parsed from the URL, the answer run and written (protobuf or JSON); any
// error answered by fail.
func serveTags[Req any](a *SearchAPI, w http.ResponseWriter, r *http.Request, parse func(*http.Request) (Req, error),
	run func(ctx context.Context, tenantID string, req Req) (proto.Message, error),
) {
	tenantID, ok := a.begin(w, r)
	if !ok {
		return
	}
	req, err := parse(r)
	if err != nil {
		a.fail(w, err)
		return
	}
	resp, err := run(r.Context(), tenantID, req)
	if err != nil {
		a.fail(w, err)
		return
	}
	writeAnswer(w, r, resp)
}

// tagValuesRequest reads the tag-values parameters; the tag name is the
// path segment decoded once (Grafana encodes it twice, its backend decodes
// it once, so Rubato sees it encoded once).
func tagValuesRequest(r *http.Request) (*rubatopb.SearchTagValuesRequest, error) {
	v := r.URL.Query()
	req := &rubatopb.SearchTagValuesRequest{TagName: r.PathValue("name"), Query: v.Get("q")}
	if strings.TrimSpace(req.TagName) == "" {
		return nil, badRequest("please provide a non-empty tag name")
	}
	var err error
	if req.Start, req.End, err = tagRange(v.Get("start"), v.Get("end")); err != nil {
		return nil, err
	}
	if req.MaxTagValues, err = positiveParam(v.Get("limit"), "limit"); err != nil {
		return nil, err
	}
	if req.StaleValueThreshold, err = positiveParam(v.Get("maxStaleValues"), "maxStaleValues"); err != nil {
		return nil, err
	}
	return req, nil
}

func (a *SearchAPI) runTagValuesV2(ctx context.Context, tenantID string, req *rubatopb.SearchTagValuesRequest) (*rubatopb.SearchTagValuesV2Response, error) {
	if a.searcher == nil {
		return nil, errNoSearcher
	}
	resp, err := a.searcher.SearchTagValuesV2(ctx, tenantID, req)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		resp = &rubatopb.SearchTagValuesV2Response{}
	}
	// Unique (type, value), in the searcher's order, within the limit;
	// entries without a value are useless to Grafana.
	seen := map[[2]string]bool{}
	vals := resp.TagValues[:0:0]
	for _, tv := range resp.TagValues {
		k := [2]string{tv.GetType(), tv.GetValue()}
		if tv == nil || tv.Value == "" || seen[k] {
			continue
		}
		seen[k] = true
		vals = append(vals, tv)
	}
	if req.MaxTagValues != 0 && uint32(len(vals)) > req.MaxTagValues {
		vals = vals[:req.MaxTagValues]
	}
	out := &rubatopb.SearchTagValuesV2Response{TagValues: vals, Metrics: resp.Metrics}
	if out.Metrics == nil {
		out.Metrics = &rubatopb.MetadataMetrics{}
	}
	return out, nil
}

func (a *SearchAPI) tagValuesV2(w http.ResponseWriter, r *http.Request) {
	serveTags(a, w, r, tagValuesRequest, func(ctx context.Context, tenantID string, req *rubatopb.SearchTagValuesRequest) (proto.Message, error) {
		return a.runTagValuesV2(ctx, tenantID, req)
	})
}

// V1TagName maps a v1 tag name (a bare attribute key, or one of Tempo's
// legacy well-known names) to its TraceQL identifier for the v2 lookup.
func V1TagName(name string) string {
	switch name {
	case "root.service.name":
		return "rootServiceName"
	case "root.name":
		return "rootName"
	case "name":
		return "name"
	case "status.code":
		return "status"
	}
	return "." + name
}

func tagValuesV1FromV2(v2 *rubatopb.SearchTagValuesV2Response) *rubatopb.SearchTagValuesResponse {
	out := &rubatopb.SearchTagValuesResponse{Metrics: v2.Metrics, TagValues: []string{}}
	seen := map[string]bool{}
	for _, tv := range v2.TagValues {
		if !seen[tv.Value] {
			seen[tv.Value] = true
			out.TagValues = append(out.TagValues, tv.Value)
		}
	}
	return out
}

func (a *SearchAPI) tagValuesV1(w http.ResponseWriter, r *http.Request) {
	serveTags(a, w, r, tagValuesRequest, func(ctx context.Context, tenantID string, req *rubatopb.SearchTagValuesRequest) (proto.Message, error) {
		req.TagName = V1TagName(req.TagName)
		v2, err := a.runTagValuesV2(ctx, tenantID, req)
		if err != nil {
			return nil, err
		}
		return tagValuesV1FromV2(v2), nil
	})
}

// writeAnswer writes m as Tempo does: protobuf when the client accepts
// application/protobuf, else protobuf JSON (lowerCamel names, 64-bit
// integers as strings, zero fields omitted).
func writeAnswer(w http.ResponseWriter, r *http.Request, m proto.Message) {
	if wantsProtobuf(r) {
		writeProto(w, m)
		return
	}
	writeJSON(w, m)
}

// writeJSON writes m as protobuf JSON.
func writeJSON(w http.ResponseWriter, m proto.Message) {
	b, err := protojson.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", mimeJSON)
	_, _ = w.Write(b)
}
