package compactor

import (
	"bytes"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"iter"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/model/combine"
)

// source is one input block read in ascending trace-ID order. The merge
// only decodes a trace (Trace) when it must combine copies; a trace found
// in one input alone goes to the sink with sink.addCopy, which a row-level
// block API can pass through without decoding.
type source interface {
	// next advances to the next trace: false at the end or on error (err).
	next() bool
	// id is the current trace ID, valid until the next call to next.
	id() []byte
	// trace decodes the current trace.
	trace() (*tracev1.TracesData, error)
	// spanCount is the current trace's span count, known without decoding.
	spanCount() int
	err() error
	close()
}

// sink is the output block.
type sink interface {
	// addCopy writes the current trace of src unchanged.
	addCopy(src source) error
	// add writes a trace built by combining copies.
	add(id []byte, td *tracev1.TracesData) error
}

// iterSource reads a block with block.Reader.Iterate, turned into a pull
// iterator. Iterate fetches one row group at a time, so a source holds one
// row group and a few decoded traces.
type iterSource struct {
	nextFn  func() ([]byte, *tracev1.TracesData, bool)
	stop    func()
	curID   []byte
	cur     *tracev1.TracesData
	iterErr error
}

func newIterSource(ctx context.Context, r *block.Reader) *iterSource {
	s := &iterSource{}
	errStop := errors.New("stop")
	seq := func(yield func([]byte, *tracev1.TracesData) bool) {
		err := r.Iterate(ctx, func(id []byte, td *tracev1.TracesData) error {
			if !yield(id, td) {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			s.iterErr = fmt.Errorf("read block %s: %w", r.Meta().BlockID, err)
		}
	}
	s.nextFn, s.stop = iter.Pull2(seq)
	return s
}

func (s *iterSource) next() bool {
	id, td, ok := s.nextFn()
	s.curID, s.cur = id, td
	return ok
}
func (s *iterSource) id() []byte                          { return s.curID }
func (s *iterSource) trace() (*tracev1.TracesData, error) { return s.cur, nil }
func (s *iterSource) spanCount() int                      { return countSpans(s.cur) }
func (s *iterSource) err() error                          { return s.iterErr }
func (s *iterSource) close()                              { s.stop() }

// writerSink writes to a block.Writer with Add.
type writerSink struct{ w *block.Writer }

func (k writerSink) addCopy(src source) error {
	td, err := src.trace()
	if err != nil {
		return err
	}
	return k.w.Add(src.id(), td)
}

func (k writerSink) add(id []byte, td *tracev1.TracesData) error { return k.w.Add(id, td) }

// mergeStats counts what one merge did.
type mergeStats struct {
	tracesIn      int64 // traces read, copies counted separately
	tracesOut     int64
	combined      int64 // output traces built from more than one copy
	spansDeduped  int64 // spans dropped because another copy had them
	spansTooLarge int64 // spans dropped by maxBytesPerTrace
	cutTraces     int64
	notCombined   int64 // traces whose copies were too big to combine
	spansNotKept  int64 // spans of the copies not kept (duplicates included)
}

// limits bound the work of combining one trace.
type limits struct {
	// maxBytesPerTrace > 0 cuts a combined trace past that many OTLP bytes.
	maxBytesPerTrace int
	// maxCombineSpans > 0: copies holding more spans than that together
	// are not decoded; the copy with the most spans is kept as it is.
	maxCombineSpans int
}

// cursorHeap orders sources by current trace ID, then by input position,
// so copies of a trace are combined in input order.
type cursorHeap struct {
	srcs []source
	pos  []int
}

func (h *cursorHeap) Len() int { return len(h.srcs) }
func (h *cursorHeap) Less(i, j int) bool {
	if c := bytes.Compare(h.srcs[i].id(), h.srcs[j].id()); c != 0 {
		return c < 0
	}
	return h.pos[i] < h.pos[j]
}
func (h *cursorHeap) Swap(i, j int) {
	h.srcs[i], h.srcs[j] = h.srcs[j], h.srcs[i]
	h.pos[i], h.pos[j] = h.pos[j], h.pos[i]
}
func (h *cursorHeap) Push(x any) {
	e := x.(heapEntry)
	h.srcs, h.pos = append(h.srcs, e.src), append(h.pos, e.pos)
}
func (h *cursorHeap) Pop() any {
	n := len(h.srcs) - 1
	e := heapEntry{h.srcs[n], h.pos[n]}
	h.srcs, h.pos = h.srcs[:n], h.pos[:n]
	return e
}

type heapEntry struct {
	src source
	pos int
}

// merge streams the k-way merge of srcs (each ascending by trace ID) into
// out. Copies of one trace are combined with duplicate spans (same span ID)
// removed; only those copies are ever decoded together, so memory is one
// row group per source plus the copies of one trace, whose decoding lim
// bounds.
func merge(ctx context.Context, srcs []source, out sink, lim limits) (mergeStats, error) {
	var st mergeStats
	h := &cursorHeap{}
	for i, s := range srcs {
		if s.next() {
			heap.Push(h, heapEntry{s, i})
		} else if err := s.err(); err != nil {
			return st, err
		}
	}
	var (
		group []heapEntry
		id    []byte
	)
	for h.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		group = group[:0]
		id = append(id[:0], h.srcs[0].id()...)
		for h.Len() > 0 && bytes.Equal(h.srcs[0].id(), id) {
			group = append(group, heap.Pop(h).(heapEntry))
		}
		st.tracesIn += int64(len(group))
		keep, spans := 0, 0
		if len(group) > 1 && lim.maxCombineSpans > 0 {
			for i, e := range group {
				n := e.src.spanCount()
				spans += n
				if n > group[keep].src.spanCount() {
					keep = i
				}
			}
		}
		if len(group) == 1 || (lim.maxCombineSpans > 0 && spans > lim.maxCombineSpans) {
			if err := out.addCopy(group[keep].src); err != nil {
				return st, fmt.Errorf("write trace %x: %w", id, err)
			}
			if len(group) > 1 {
				st.notCombined++
				st.spansNotKept += int64(spans - group[keep].src.spanCount())
			}
		} else {
			td, err := combineGroup(group, &st, lim.maxBytesPerTrace)
			if err != nil {
				return st, fmt.Errorf("combine trace %x: %w", id, err)
			}
			if err := out.add(id, td); err != nil {
				return st, fmt.Errorf("write trace %x: %w", id, err)
			}
			st.combined++
		}
		st.tracesOut++
		for _, e := range group {
			if e.src.next() {
				if bytes.Compare(e.src.id(), id) <= 0 {
					return st, fmt.Errorf("input %d: trace id %x after %x", e.pos, e.src.id(), id)
				}
				heap.Push(h, e)
			} else if err := e.src.err(); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

// combineGroup combines the copies of one trace, in input order.
func combineGroup(group []heapEntry, st *mergeStats, maxBytes int) (*tracev1.TracesData, error) {
	var c combine.Combiner
	var spans int
	for _, e := range group {
		td, err := e.src.trace()
		if err != nil {
			return nil, err
		}
		spans += countSpans(td)
		c.Add(td)
	}
	st.spansDeduped += int64(spans - c.Spans())
	td := c.Result()
	if td == nil {
		// Every copy was empty; keep the row (the writer needs a trace).
		return &tracev1.TracesData{}, nil
	}
	if maxBytes > 0 && proto.Size(td) > maxBytes {
		dropped := cutTrace(td, maxBytes)
		st.spansTooLarge += int64(dropped)
		st.cutTraces++
	}
	return td, nil
}

// cutTrace keeps the spans of td, in order, while the trace stays within
// maxBytes of OTLP protobuf, and drops the rest (at least one span is
// always kept). It returns how many spans it dropped.
func cutTrace(td *tracev1.TracesData, maxBytes int) int {
	size, dropped := 0, 0
	full := false
	rsOut := td.ResourceSpans[:0]
	for _, rs := range td.ResourceSpans {
		base := proto.Size(&tracev1.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}) + 8
		ssOut := rs.ScopeSpans[:0]
		for _, ss := range rs.ScopeSpans {
			sbase := proto.Size(&tracev1.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}) + 8
			spOut := ss.Spans[:0]
			for _, sp := range ss.Spans {
				n := proto.Size(sp) + 8
				extra := n
				if len(spOut) == 0 {
					extra += sbase
					if len(ssOut) == 0 {
						extra += base
					}
				}
				if full || (size+extra > maxBytes && size > 0) {
					full = true
					dropped++
					continue
				}
				size += extra
				spOut = append(spOut, sp)
			}
			if len(spOut) > 0 {
				ss.Spans = spOut
				ssOut = append(ssOut, ss)
			}
		}
		if len(ssOut) > 0 {
			rs.ScopeSpans = ssOut
			rsOut = append(rsOut, rs)
		}
	}
	td.ResourceSpans = rsOut
	return dropped
}

func countSpans(td *tracev1.TracesData) int {
	n := 0
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}
