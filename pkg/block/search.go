package block

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend"
)

// SearchRequest selects traces of a block.
type SearchRequest struct {
	// Start and End bound the traces by time (zero: open). A trace is a
	// candidate if its [start, end] overlaps [Start, End]; its start is
	// its earliest non-zero span start (0 when it has none), its end its
	// latest span end.
	Start, End time.Time
	Predicates []Predicate
	// All: every predicate must be satisfiable in the trace (by some span,
	// with its resource, scope, events and links); false: at least one.
	All bool
	// SameSpan (with All): one span must satisfy every predicate at once,
	// with its own resource, scope, events and links; predicates on the
	// trace (root names, traceDuration) hold for the trace as a whole.
	// TraceQL's `{ a && b }` says so (traceql.Conditions.SameSpan).
	SameSpan bool
	// Fields, if not nil, says what fn reads of each trace; the parts it
	// does not read may be left out of the traces it gets (see
	// searchproject.go). Nil: traces come whole.
	Fields *SearchFields
}

// SearchStats counts what a search looked at.
type SearchStats struct {
	InspectedTraces uint64 // traces (rows) whose columns were inspected
	InspectedSpans  uint64 // spans of the traces decoded to OTLP
	InspectedBytes  uint64 // bytes read from the backend (not from the cache)
}

// Search calls fn for every trace of the block that may match req (a
// superset of the matches, never missing one), in trace-ID order, decoded
// to OTLP with its parts joined. fn returns false to stop. td is the
// caller's to keep.
func (r *Reader) Search(ctx context.Context, req SearchRequest, fn func(id [16]byte, td *tracev1.TracesData) bool) (st SearchStats, err error) {
	var preds []pred
	preds, err = compilePreds(req.Predicates)
	if err != nil {
		return st, err
	}
	if len(preds) > maxPrunePreds {
		if !req.All {
			preds = nil // some predicate that cannot prune may match
		} else {
			preds = preds[:maxPrunePreds]
		}
	}
	s := &searcher{req: req, preds: preds, start: timeBound(req.Start, 0), end: timeBound(req.End, ^uint64(0))}
	cr := *r
	cb := &countingBackend{Backend: r.be}
	cr.be = cb
	defer func() { st.InspectedBytes = cb.n.Load() }()
	err = cr.search(ctx, s, fn, &st)
	return st, err
}

// timeBound converts a request bound to Unix nanoseconds (zero: def).
func timeBound(t time.Time, def uint64) uint64 {
	if t.IsZero() {
		return def
	}
	ns := t.UnixNano()
	if ns < 0 {
		return 0
	}
	return uint64(ns)
}

// searcher is one search's compiled request.
type searcher struct {
	req        SearchRequest
	preds      []pred
	start, end uint64 // Unix ns, inclusive
}

// overlaps tells whether a trace spanning [start, end] is in the time range.
func (s *searcher) overlaps(start, end uint64) bool {
	return start <= s.end && end >= s.start
}

func (s *searcher) ok(m predMask) bool { return satisfies(m, len(s.preds), s.req.All) }

// errStop ends a search early when fn returns false.
var errStop = errors.New("search stopped")

// countingBackend counts the bytes a search reads.
type countingBackend struct {
	backend.Backend
	n atomic.Uint64
}

func (c *countingBackend) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	b, err := c.Backend.GetRange(ctx, key, off, length)
	c.n.Add(uint64(len(b)))
	return b, err
}

func (c *countingBackend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := c.Backend.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	return &countingReadCloser{ReadCloser: rc, n: &c.n}, nil
}

type countingReadCloser struct {
	io.ReadCloser
	n *atomic.Uint64
}

func (c *countingReadCloser) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(uint64(n))
	return n, err
}
