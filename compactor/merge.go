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
	// more reports whether the current trace goes on in the next row: a
	// big trace is stored as several rows with the same ID (block's
	// parts.go), which next then returns one by one; trace, spanCount and
	// spanKeys then describe the current row only.
	more() (bool, error)
	// spanKeys calls fn for every span of the current row.
	spanKeys(fn func(spanID []byte, kind int32))
	err() error
	close()
}

// sink is the output block.
type sink interface {
	// addCopy writes the current row of src unchanged, as a new trace
	// (part false) or as a further part of the trace written last.
	addCopy(src source, part bool) error
	// add writes a trace built by combining copies, or (part) more spans
	// of the trace written last.
	add(id []byte, td *tracev1.TracesData, part bool) error
	// addFiltered writes the current row of src, without the spans whose
	// keep is false (in spanKeys order, at least one true), as a further
	// part of the trace written last.
	addFiltered(src source, keep []bool) error
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
func (s *iterSource) more() (bool, error)                 { return false, nil } // Iterate joins parts
func (s *iterSource) spanKeys(fn func([]byte, int32)) {
	for _, rs := range s.cur.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				fn(sp.GetSpanId(), int32(sp.GetKind()))
			}
		}
	}
}
func (s *iterSource) err() error { return s.iterErr }
func (s *iterSource) close()     { s.stop() }

// writerSink writes to a block.Writer with Add.
type writerSink struct{ w *block.Writer }

func (k writerSink) addCopy(src source, part bool) error {
	td, err := src.trace()
	if err != nil {
		return err
	}
	return k.add(src.id(), td, part)
}

func (k writerSink) addFiltered(src source, keep []bool) error {
	return addFilteredTrace(k, src, keep)
}

// addFilteredTrace is addFiltered by decoding the row.
func addFilteredTrace(out sink, src source, keep []bool) error {
	td, err := src.trace()
	if err != nil {
		return err
	}
	i := 0
	filterSpans(td, func(_ *tracev1.ResourceSpans, _ *tracev1.ScopeSpans, _ *tracev1.Span, _, _ bool) bool {
		i++
		return keep[i-1]
	})
	return out.add(src.id(), td, true)
}

func (k writerSink) add(id []byte, td *tracev1.TracesData, part bool) error {
	if part {
		return k.w.AddPart(id, td)
	}
	return k.w.Add(id, td)
}

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
// out. A trace in one input is copied row by row (copyTrace). Copies of
// one trace are combined with duplicate spans (same span ID and kind)
// removed: as whole decoded traces when each copy is one row
// (combineRows, whose memory lim bounds), part by part when a copy takes
// several rows (combineStreaming). Memory is one row group per source plus
// what combining one trace holds.
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
		multi := false
		for _, e := range group {
			m, err := e.src.more()
			if err != nil {
				return st, err
			}
			multi = multi || m
		}
		var err error
		switch {
		case len(group) == 1:
			err = copyTrace(out, group[0].src, false)
		case multi:
			err = combineStreaming(out, id, group, &st, lim.maxBytesPerTrace)
		default:
			err = combineRows(out, id, group, &st, lim)
		}
		if err != nil {
			return st, fmt.Errorf("write trace %x: %w", id, err)
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

// combineRows writes one trace found in several inputs, each copy one row:
// decoded and combined, or, past maxCombineSpans, the largest copy as is.
func combineRows(out sink, id []byte, group []heapEntry, st *mergeStats, lim limits) error {
	keep, spans := 0, 0
	if lim.maxCombineSpans > 0 {
		for i, e := range group {
			n := e.src.spanCount()
			spans += n
			if n > group[keep].src.spanCount() {
				keep = i
			}
		}
	}
	if lim.maxCombineSpans > 0 && spans > lim.maxCombineSpans {
		st.notCombined++
		st.spansNotKept += int64(spans - group[keep].src.spanCount())
		return out.addCopy(group[keep].src, false)
	}
	td, err := combineGroup(group, st, lim.maxBytesPerTrace)
	if err != nil {
		return err
	}
	st.combined++
	return out.add(id, td, false)
}

// copyTrace writes every row of the current trace of src unchanged (part:
// all of them as parts of the trace written last).
func copyTrace(out sink, src source, part bool) error {
	for {
		if err := out.addCopy(src, part); err != nil {
			return err
		}
		part = true
		more, err := src.more()
		if err != nil || !more {
			return err
		}
		if !src.next() {
			return nextErr(src)
		}
	}
}

func nextErr(src source) error {
	if err := src.err(); err != nil {
		return err
	}
	return errors.New("input ended inside a trace")
}

// combineStreaming writes one trace found in several inputs when a copy is
// stored as several rows (a big trace), in memory bounded by one row plus
// the span keys of the trace: the first copy (input order) is copied row
// by row; from every row of the other copies, the spans already written
// (same span ID and kind, as pkg/model/combine decides) are dropped and
// the rest are appended as a further part (addNewSpans: without decoding
// the row). max_combine_spans does not apply (nothing is held whole);
// maxBytes, when > 0, cuts the spans appended once the trace reaches it
// (the first copy is kept whole, as a trace found in one input is), which
// takes decoding each row to measure it.
func combineStreaming(out sink, id []byte, group []heapEntry, st *mergeStats, maxBytes int) error {
	var seen combine.SpanSet
	size := 0
	first := group[0].src
	for part := false; ; part = true {
		first.spanKeys(func(sid []byte, kind int32) { seen.Add(sid, kind) })
		if maxBytes > 0 {
			td, err := first.trace()
			if err != nil {
				return err
			}
			size += proto.Size(td)
		}
		if err := out.addCopy(first, part); err != nil {
			return err
		}
		more, err := first.more()
		if err != nil {
			return err
		}
		if !more {
			break
		}
		if !first.next() {
			return nextErr(first)
		}
	}
	for _, e := range group[1:] {
		for {
			if maxBytes == 0 {
				if err := addNewSpans(out, e.src, &seen, st); err != nil {
					return err
				}
			} else {
				td, err := e.src.trace()
				if err != nil {
					return err
				}
				kept, dropped := dropSeen(td, &seen)
				st.spansDeduped += int64(dropped)
				if n := countSpans(kept); n > 0 {
					if size >= maxBytes {
						st.spansTooLarge += int64(n)
						kept.ResourceSpans = nil
					} else if size+proto.Size(kept) > maxBytes {
						st.spansTooLarge += int64(cutTrace(kept, maxBytes-size))
					}
					size += proto.Size(kept)
				}
				if countSpans(kept) > 0 {
					if err := out.add(id, kept, true); err != nil {
						return err
					}
				}
			}
			more, err := e.src.more()
			if err != nil {
				return err
			}
			if !more {
				break
			}
			if !e.src.next() {
				return nextErr(e.src)
			}
		}
	}
	if maxBytes > 0 && size >= maxBytes {
		st.cutTraces++
	}
	st.combined++
	return nil
}

// addNewSpans appends the spans of the current row of a further copy in
// combineStreaming that are not written yet (their keys join seen), without
// decoding the row: it is dropped when every span is written (a replica),
// copied as it is when none is (late spans), and filtered span by span
// otherwise.
func addNewSpans(out sink, src source, seen *combine.SpanSet, st *mergeStats) error {
	var keep []bool
	kept := 0
	src.spanKeys(func(sid []byte, kind int32) {
		isNew := seen.Add(sid, kind)
		if isNew {
			kept++
		}
		keep = append(keep, isNew)
	})
	st.spansDeduped += int64(len(keep) - kept)
	switch kept {
	case 0:
		return nil
	case len(keep):
		return out.addCopy(src, true)
	}
	return out.addFiltered(src, keep)
}

// filterSpans keeps the spans of td for which keep is true, in order, and
// removes scope and resource groups left empty; it returns how many spans it
// dropped. keep learns whether sp would open its scope group (newScope) and
// its resource group (newResource) in the result, for size accounting.
func filterSpans(td *tracev1.TracesData, keep func(rs *tracev1.ResourceSpans, ss *tracev1.ScopeSpans, sp *tracev1.Span, newScope, newResource bool) bool) int {
	dropped := 0
	rsOut := td.ResourceSpans[:0]
	for _, rs := range td.ResourceSpans {
		ssOut := rs.ScopeSpans[:0]
		for _, ss := range rs.ScopeSpans {
			spOut := ss.Spans[:0]
			for _, sp := range ss.Spans {
				if !keep(rs, ss, sp, len(spOut) == 0, len(spOut) == 0 && len(ssOut) == 0) {
					dropped++
					continue
				}
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

// dropSeen removes from td the spans whose key is in seen and adds the
// keys of the others; it returns what is left (empty groups removed) and
// how many spans it dropped.
func dropSeen(td *tracev1.TracesData, seen *combine.SpanSet) (*tracev1.TracesData, int) {
	dropped := filterSpans(td, func(_ *tracev1.ResourceSpans, _ *tracev1.ScopeSpans, sp *tracev1.Span, _, _ bool) bool {
		return seen.Add(sp.GetSpanId(), int32(sp.GetKind()))
	})
	return td, dropped
}

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
	size := 0
	full := false
	return filterSpans(td, func(rs *tracev1.ResourceSpans, ss *tracev1.ScopeSpans, sp *tracev1.Span, newScope, newResource bool) bool {
		if full {
			return false
		}
		extra := proto.Size(sp) + 8
		if newScope {
			extra += proto.Size(&tracev1.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}) + 8
		}
		if newResource {
			extra += proto.Size(&tracev1.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}) + 8
		}
		if size+extra > maxBytes && size > 0 {
			full = true
			return false
		}
		size += extra
		return true
	})
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
