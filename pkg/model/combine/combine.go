// Package combine merges parts of one trace found in several places (live
// traces, blocks, replicas) into one OTLP TracesData.
//
// Invariants: the result holds every span of every input exactly once, where
// "the same span" is decided by SpanSet, the one rule for span identity that
// the compactor uses too: the same span ID and kind, never for an empty or
// all-zero ID (the first copy seen wins, inputs are visited in argument
// order). Kind is part of the identity, as in
// Tempo's combiner: a Zipkin client and the server half that shares its ID
// (B3 join, `shared: true`) are two spans and both are kept. Resource and
// scope groupings are kept; inputs are not modified but the result shares
// span messages with them.
package combine

import (
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Combiner accumulates parts of one trace. The zero value is ready to use.
// Not safe for concurrent use.
type Combiner struct {
	seen  SpanSet
	out   *tracev1.TracesData
	spans int
}

// Add merges td into the result, dropping spans already added.
func (c *Combiner) Add(td *tracev1.TracesData) {
	if td == nil || len(td.ResourceSpans) == 0 {
		return
	}
	if c.out == nil {
		c.out = &tracev1.TracesData{}
	}
	for _, rs := range td.ResourceSpans {
		var keptRS *tracev1.ResourceSpans
		for _, ss := range rs.ScopeSpans {
			var keptSS *tracev1.ScopeSpans
			for _, sp := range ss.Spans {
				if !c.seen.Add(sp.SpanId, int32(sp.Kind)) {
					continue
				}
				if keptSS == nil {
					keptSS = &tracev1.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}
					if keptRS == nil {
						keptRS = &tracev1.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}
						c.out.ResourceSpans = append(c.out.ResourceSpans, keptRS)
					}
					keptRS.ScopeSpans = append(keptRS.ScopeSpans, keptSS)
				}
				keptSS.Spans = append(keptSS.Spans, sp)
				c.spans++
			}
		}
	}
}

// Result returns the combined trace, or nil if no span was added.
func (c *Combiner) Result() *tracev1.TracesData { return c.out }

// Spans returns how many distinct spans were added.
func (c *Combiner) Spans() int { return c.spans }

// Traces combines parts of one trace; nil parts are skipped.
func Traces(parts ...*tracev1.TracesData) *tracev1.TracesData {
	var c Combiner
	for _, p := range parts {
		c.Add(p)
	}
	return c.Result()
}
