package querier

import (
	"fmt"
	"net/http"
)

// notImplemented lists Tempo query-port routes Rubato does not serve, with
// the feature each belongs to: they answer 501 naming it, so a client (or
// a person reading Grafana's error) learns what is missing rather than
// seeing a bare 404.
var notImplemented = []struct{ pattern, feature string }{
	{"/api/metrics/query_range", "TraceQL metrics are not implemented"},
	{"/api/metrics/query", "TraceQL metrics are not implemented"},
	{"/api/metrics/summary", "span metrics summaries are not implemented"},
	{"/api/metrics", "span metrics are not implemented"},
	{"POST /api/v2/traces/diff", "trace diff is not implemented"},
	{"/api/overrides", "user-configurable overrides are not implemented"},
	{"/api/mcp", "the MCP server is not implemented"},
	{"/api/search/recent", "recent-search is not implemented; use /api/search"},
	{"/querier/", "Tempo's internal querier API is not implemented; use the /api routes"},
	{"/generator/", "the metrics-generator API is not implemented"},
	{"/memberlist", "memberlist is not in use in this process (no ring here has kvstore.store: memberlist)"},
	{"/status/usage-stats", "usage statistics are not implemented"},
}

// RegisterFallbacks mounts the 501 routes and a catch-all 404 that says
// what was asked for, in place of Go's bare "404 page not found". Call it
// on the query port's mux; more specific routes registered on the same mux
// (before or after) still win.
func RegisterFallbacks(mux *http.ServeMux) {
	for _, ni := range notImplemented {
		msg := ni.feature + " (" + "Rubato answers Tempo's trace-by-ID, search and tag APIs)"
		mux.HandleFunc(ni.pattern, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, msg, http.StatusNotImplemented)
		})
	}
	mux.HandleFunc("/", notFound)
}

func notFound(w http.ResponseWriter, r *http.Request) {
	http.Error(w, fmt.Sprintf("no such endpoint: %s %s (Rubato serves Tempo's query API: /api/traces/{id}, /api/v2/traces/{id}, /api/search, /api/search/tags, /api/v2/search/tags, /api/search/tag/{name}/values, /api/v2/search/tag/{name}/values, /api/echo, /api/status/buildinfo, /ready, /metrics)",
		r.Method, r.URL.EscapedPath()), http.StatusNotFound)
}
