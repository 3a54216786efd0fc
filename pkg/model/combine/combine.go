// Package combine merges parts of one trace found in several places (live
// traces, blocks, replicas) into one OTLP TracesData.
//
// Invariants: the result holds every span of every input exactly once, where
// "the same span" means the same span ID and kind (the first copy seen wins,
// inputs are visited in argument order). Kind is part of the identity, as in
// Tempo's combiner: a Zipkin client and the server half that shares its ID
// (B3 join, `shared: true`) are two spans and both are kept. Resource and
// scope groupings are kept; inputs are not modified but the result shares
// span messages with them.
package combine

import (
	"encoding/binary"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Combiner accumulates parts of one trace. The zero value is ready to use.
// Not safe for concurrent use.
type Combiner struct {
	seen  map[idKind]struct{} // 8-byte span IDs, the OTLP norm
	other map[string]struct{} // IDs of any other length, kind appended
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
		c.seen = make(map[idKind]struct{}, 64)
	}
	for _, rs := range td.ResourceSpans {
		var keptRS *tracev1.ResourceSpans
		for _, ss := range rs.ScopeSpans {
			var keptSS *tracev1.ScopeSpans
			for _, sp := range ss.Spans {
				if c.duplicate(sp.SpanId, sp.Kind) {
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

// idKind is a span's identity within a trace.
type idKind struct {
	id   uint64
	kind tracev1.Span_SpanKind
}

// duplicate reports whether (id, kind) was seen before, and records it. Empty
// and all-zero IDs are invalid but are never treated as duplicates, so no
// span is lost to them.
func (c *Combiner) duplicate(id []byte, kind tracev1.Span_SpanKind) bool {
	if len(id) == 8 {
		k := idKind{binary.LittleEndian.Uint64(id), kind}
		if k.id == 0 {
			return false
		}
		if _, ok := c.seen[k]; ok {
			return true
		}
		c.seen[k] = struct{}{}
		return false
	}
	if len(id) == 0 {
		return false
	}
	if c.other == nil {
		c.other = make(map[string]struct{})
	}
	k := string(binary.LittleEndian.AppendUint32(append([]byte(nil), id...), uint32(kind)))
	if _, ok := c.other[k]; ok {
		return true
	}
	c.other[k] = struct{}{}
	return false
}
