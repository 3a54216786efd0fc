package combine

import (
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// FillRequired gives every ResourceSpans a Resource, every ScopeSpans a
// Scope and every span a Status, empty where the client sent none, as Tempo
// does on its read path. Grafana's Tempo plugin dereferences all three
// without nil checks (CONTRACT.md §6) and fails the whole query on a nil, so
// every trace Rubato answers goes through this. Storage keeps what the
// client sent (a nil stays nil in a block); only answers are filled.
//
// It modifies td in place, including span messages shared with the inputs
// of a Combiner; callers pass traces decoded for this one answer.
func FillRequired(td *tracev1.TracesData) {
	for _, rs := range td.GetResourceSpans() {
		if rs.Resource == nil {
			rs.Resource = &resourcev1.Resource{}
		}
		for _, ss := range rs.ScopeSpans {
			if ss.Scope == nil {
				ss.Scope = &commonv1.InstrumentationScope{}
			}
			for _, sp := range ss.Spans {
				if sp.Status == nil {
					sp.Status = &tracev1.Status{}
				}
			}
		}
	}
}
