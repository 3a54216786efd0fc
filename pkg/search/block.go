package search

import (
	"context"
	"errors"
	"fmt"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/traceql"
)

// Stats counts what a search read.
type Stats struct {
	InspectedTraces, InspectedSpans, InspectedBytes uint64
}

// Add sums s and o.
func (s *Stats) Add(o Stats) {
	s.InspectedTraces += o.InspectedTraces
	s.InspectedSpans += o.InspectedSpans
	s.InspectedBytes += o.InspectedBytes
}

// Metrics returns s as Tempo's search metrics.
func (s Stats) Metrics() *rubatopb.SearchMetrics {
	return &rubatopb.SearchMetrics{InspectedTraces: uint32(s.InspectedTraces), InspectedSpans: s.InspectedSpans, InspectedBytes: s.InspectedBytes}
}

// Request is one search over one source.
type Request struct {
	Query *traceql.Query
	// Start, End bound the traces, Unix seconds, 0 = open.
	Start, End uint32
	// SpansPerSpanSet bounds listed spans per spanset, 0 = all.
	SpansPerSpanSet int
}

// Candidates calls fn for every trace of the block that may match req (a
// superset of the matches), with the query's conditions pushed down into
// the block (BlockRequest). fn returns false to stop.
func Candidates(ctx context.Context, r *block.Reader, req Request, fn func(id []byte, td *tracev1.TracesData) bool) (Stats, error) {
	bst, err := r.Search(ctx, BlockRequest(req.Query, req.Start, req.End), func(id [16]byte, td *tracev1.TracesData) bool {
		return fn(id[:], td)
	})
	return Stats{InspectedTraces: bst.InspectedTraces, InspectedSpans: bst.InspectedSpans, InspectedBytes: bst.InspectedBytes}, err
}

// SearchBlock runs req over one block: candidates from the block (pushdown),
// decoded with only what Match reads (BlockFields), then Eval on each; fn
// receives each match and returns false to stop.
func SearchBlock(ctx context.Context, r *block.Reader, req Request, fn func(*rubatopb.TraceSearchMetadata) bool) (Stats, error) {
	var evalErr error
	breq := BlockRequest(req.Query, req.Start, req.End)
	breq.Fields = BlockFields(req.Query)
	bst, err := r.Search(ctx, breq, func(id16 [16]byte, td *tracev1.TracesData) bool {
		id := id16[:]
		if req.Start != 0 || req.End != 0 {
			s, e := TraceBounds(td)
			if !InRange(s, e, req.Start, req.End) {
				return true
			}
		}
		md, err := Match(req.Query, id, td, req.SpansPerSpanSet)
		if err != nil {
			evalErr = err
			return false
		}
		if md != nil {
			return fn(md)
		}
		return true
	})
	if err == nil {
		err = evalErr
	}
	return Stats{InspectedTraces: bst.InspectedTraces, InspectedSpans: bst.InspectedSpans, InspectedBytes: bst.InspectedBytes}, err
}

// BlockFields says what Match reads of a trace for q (Eval and Metadata),
// so that the block may leave the rest out of the candidates it decodes.
func BlockFields(q *traceql.Query) *block.SearchFields {
	if q == nil {
		return nil
	}
	qf := q.Fields()
	f := &block.SearchFields{Events: qf.Events}
	for _, a := range qf.Attrs {
		switch a.Scope {
		case traceql.ScopeResource:
			f.ResourceKeys = append(f.ResourceKeys, a.Name)
		case traceql.ScopeSpan:
			f.SpanKeys = append(f.SpanKeys, a.Name)
		case traceql.ScopeUnscoped:
			f.ResourceKeys = append(f.ResourceKeys, a.Name)
			f.SpanKeys = append(f.SpanKeys, a.Name)
		case traceql.ScopeInstrumentation:
			f.ScopeAttrs = true
		case traceql.ScopeEvent:
			f.Events = true
		case traceql.ScopeLink:
			// links are always decoded
		default:
			return nil
		}
	}
	return f
}

// CountSpans returns the number of spans of td.
func CountSpans(td *tracev1.TracesData) int {
	n := 0
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}

// SearchBlocks runs req over blocks one after the other and merges their
// matches, stopping once limit traces are found (0 = no limit). A block
// that no longer exists (backend.ErrNotFound: compacted or deleted since
// it was listed) is skipped; its traces are in the block that replaced it.
func SearchBlocks(ctx context.Context, readers []*block.Reader, req Request, limit int) (*rubatopb.SearchResponse, error) {
	comb := NewCombiner(limit, req.SpansPerSpanSet)
	var st Stats
	shared := budgetFrom(ctx) // the other jobs of this search, in this process
	for _, r := range readers {
		if shared.spent() {
			break
		}
		bst, err := SearchBlock(ctx, r, req, func(md *rubatopb.TraceSearchMetadata) bool {
			comb.Add(md)
			return !comb.Full() && !shared.found(md.TraceID)
		})
		st.Add(bst)
		if errors.Is(err, backend.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", r.Meta().BlockID, err)
		}
		if comb.Full() || shared.spent() {
			break
		}
	}
	return &rubatopb.SearchResponse{Traces: comb.Result(), Metrics: st.Metrics()}, nil
}
