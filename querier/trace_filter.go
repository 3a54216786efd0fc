package querier

import (
	"errors"
	"fmt"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/traceql"
)

// traceFilter is the `q` of a trace-by-ID request: a TraceQL query whose
// matching spans are the only ones returned.
type traceFilter struct {
	query *traceql.Query
	text  string
	// keepHierarchy also keeps every ancestor of a matching span, so the
	// returned spans still form a tree (Tempo's keep_hierarchy).
	keepHierarchy bool
}

// parseTraceFilter reads q and keep_hierarchy; nil when q is absent.
func parseTraceFilter(q, keepHierarchy string) (*traceFilter, error) {
	if q == "" {
		return nil, nil
	}
	tq, err := traceql.Parse(q)
	if err != nil {
		return nil, fmt.Errorf("invalid TraceQL query: %w", err)
	}
	f := &traceFilter{query: tq, text: q}
	switch keepHierarchy {
	case "", "false", "0":
	case "true", "1":
		f.keepHierarchy = true
	default:
		return nil, fmt.Errorf("keep_hierarchy %q: want true or false", keepHierarchy)
	}
	return f, nil
}

// apply returns the trace reduced to the spans of every spanset q yields
// (plus their ancestors with keepHierarchy), keeping each span's resource
// and scope, and the span counts kept and total. td is not modified.
func (f *traceFilter) apply(td *tracev1.TracesData) (*tracev1.TracesData, int, int, error) {
	total := 0
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			total += len(ss.Spans)
		}
	}
	sets, err := f.query.Eval(td)
	if err != nil {
		var ue *traceql.UnsupportedError
		if errors.As(err, &ue) {
			return nil, 0, total, badRequest("invalid TraceQL query: %v", err)
		}
		return nil, 0, total, fmt.Errorf("evaluating q: %w", err)
	}
	keep := map[*tracev1.Span]bool{}
	for _, set := range sets {
		for _, m := range set.Spans {
			keep[m.Span] = true
		}
	}
	if f.keepHierarchy && len(keep) > 0 {
		byID := map[string]*tracev1.Span{}
		for _, rs := range td.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					byID[string(sp.SpanId)] = sp
				}
			}
		}
		for sp := range keep {
			// Walk up; a span already kept has had its ancestors added, or
			// will have (bounded by the number of spans against cycles).
			for p, n := byID[string(sp.ParentSpanId)], 0; p != nil && n < len(byID); p, n = byID[string(p.ParentSpanId)], n+1 {
				keep[p] = true
			}
		}
	}
	out := &tracev1.TracesData{}
	kept := 0
	for _, rs := range td.ResourceSpans {
		var scopes []*tracev1.ScopeSpans
		for _, ss := range rs.ScopeSpans {
			var spans []*tracev1.Span
			for _, sp := range ss.Spans {
				if keep[sp] {
					spans = append(spans, sp)
				}
			}
			if len(spans) > 0 {
				scopes = append(scopes, &tracev1.ScopeSpans{Scope: ss.Scope, Spans: spans, SchemaUrl: ss.SchemaUrl})
				kept += len(spans)
			}
		}
		if len(scopes) > 0 {
			out.ResourceSpans = append(out.ResourceSpans, &tracev1.ResourceSpans{Resource: rs.Resource, ScopeSpans: scopes, SchemaUrl: rs.SchemaUrl})
		}
	}
	return out, kept, total, nil
}
