package distributor

import (
	"fmt"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// fragment is every span of one trace found in a request, re-encoded as an
// OTLP TracesData that keeps the spans' resource and scope.
type fragment struct {
	id    [16]byte
	spans uint32
	td    *tracev1.TracesData
	// last resource and scope the fragment copied, so consecutive spans of
	// one scope share one ScopeSpans.
	lastRS *tracev1.ResourceSpans
	lastSS *tracev1.ScopeSpans
	outRS  *tracev1.ResourceSpans
	outSS  *tracev1.ScopeSpans
}

// splitResult is a request split by trace ID.
type splitResult struct {
	frags   []*fragment
	invalid int // spans without a valid trace ID
	total   int
}

// splitByTrace groups the spans of rss by trace ID, in order of first
// appearance. Spans whose trace ID is not 16 bytes or is all zero are
// counted as invalid (the OTLP spec forbids both).
func splitByTrace(rss []*tracev1.ResourceSpans) splitResult {
	var res splitResult
	index := map[[16]byte]*fragment{}
	for _, rs := range rss {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				res.total++
				if !validTraceID(sp.TraceId) {
					res.invalid++
					continue
				}
				id := [16]byte(sp.TraceId)
				f := index[id]
				if f == nil {
					f = &fragment{id: id, td: &tracev1.TracesData{}}
					index[id] = f
					res.frags = append(res.frags, f)
				}
				if f.lastRS != rs {
					f.lastRS, f.lastSS = rs, nil
					f.outRS = &tracev1.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}
					f.td.ResourceSpans = append(f.td.ResourceSpans, f.outRS)
				}
				if f.lastSS != ss {
					f.lastSS = ss
					f.outSS = &tracev1.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}
					f.outRS.ScopeSpans = append(f.outRS.ScopeSpans, f.outSS)
				}
				f.outSS.Spans = append(f.outSS.Spans, sp)
				f.spans++
			}
		}
	}
	return res
}

func validTraceID(id []byte) bool {
	if len(id) != 16 {
		return false
	}
	for _, b := range id {
		if b != 0 {
			return true
		}
	}
	return false
}

// marshal encodes every fragment.
func (r splitResult) marshal() ([][]byte, error) {
	out := make([][]byte, len(r.frags))
	opts := proto.MarshalOptions{}
	for i, f := range r.frags {
		b, err := opts.Marshal(f.td)
		if err != nil {
			return nil, fmt.Errorf("encode trace fragment: %w", err)
		}
		out[i] = b
	}
	return out, nil
}
