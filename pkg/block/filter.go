package block

import (
	"errors"
	"fmt"

	"github.com/parquet-go/parquet-go"
	"github.com/rubatodb/rubato/pkg/block/pq"
)

// Dropping spans from a row read by a RowReader without converting it to
// OTLP: the compactor's way to append the spans of a further copy of a big
// trace that it has not written yet. The result is the row Writer.AddPart
// would write for the trace with those spans removed, as filterSpans in the
// compactor removes them: a ScopeSpans left without spans is dropped, and
// a ResourceSpans left without ScopeSpans (both also when they were empty
// to begin with).
//
// Columns are filtered by nesting depth (1: under rs, 2: under ss, 3: under
// Spans). In a column at depth L an entry with repetition level <= L starts
// a new slot at that depth: a container when its definition level is >= L,
// else a placeholder for an empty parent (dropped: its parent has no
// spans). Every entry up to the next slot belongs to it. Dropping a slot
// moves its repetition level onto the next kept slot (the smaller of the
// two), which is how Dremel encoding deletes a subtree. Derived columns
// are computed again for the spans kept: the trace's times, root names
// and span count, each span's start offset from the new trace start, and
// parent ordinals (a parent dropped becomes an explicit parent span ID).

// Span columns the filter reads or rewrites (checked by TestColumnLayout).
const (
	colResourceServiceName = colResource + 2
	colSpanParentIdx       = colSpan + 1
	colSpanParentSpanID    = colSpan + 2
	colSpanName            = colSpan + 5
	colSpanKind            = colSpan + 6
	colSpanStartOffset     = colSpan + 8
	colSpanDuration        = colSpan + 9
)

// depthOf is the nesting depth of a leaf column: 0 top level, 1 under rs,
// 2 under ss, 3 under Spans.
func depthOf(c int) int {
	switch {
	case c < colResource:
		return 0
	case c < colScope:
		return 1
	case c < colSpan:
		return 2
	}
	return 3
}

// AddPartRowSpans appends row, a row from a RowReader, as a further part of
// the trace written last (same ID, ErrOutOfOrder otherwise), keeping only
// the spans whose keep is true: keep has one entry per span of the row, in
// the order SpanKeys lists them, and at least one is true. An error about
// the row's shape aborts the Writer (the row is half written).
func (w *Writer) AddPartRowSpans(row Row, keep []bool) error {
	if row.cells == nil {
		return errors.New("add row spans: row not read by a RowReader")
	}
	id := row.TraceID()
	if err := w.checkID(id, true); err != nil {
		return err
	}
	f, err := newSpanFilter(row.cells, keep)
	if err != nil {
		return fmt.Errorf("add row spans %x: %w", id, err)
	}
	w.idx.addCells(row.cells) // a superset: the dropped spans' values too
	if err := writeFiltered(w.pw, row.cells, f); err != nil {
		w.Abort()
		return fmt.Errorf("add row spans %x: %w", id, err)
	}
	w.addStats(id, f.start, f.end, f.spans)
	return w.endRow()
}

// spanFilter is what one row's filtering needs, computed from its span
// columns.
type spanFilter struct {
	keep [4][]bool // by depth 1..3: keep flag of each rs, ss, span slot that exists

	// Derived values for the spans kept.
	start, end        uint64
	spans             int32
	rootSvc, rootName []byte
	spanLevels        []byte // repetition levels of the kept spans in a span-depth column
	parentIdx         []int32
	parentSpanID      [][]byte
	startOffset       []int64
	spanDef           byte // definition level of a span that exists
}

func newSpanFilter(cells []pq.Cell, keep []bool) (*spanFilter, error) {
	f := &spanFilter{spanDef: lvlSpan}
	var (
		rsOfSpan, ssOfSpan []int32 // the rs and ss each span is in
		spanIDs            []parquet.Value
	)
	// Containers from the SpanID column: rs and ss slots that exist, and
	// which ss and rs each span is in.
	ids := cells[colSpan].AppendValues(nil, colSpan)
	rs, ss := -1, -1
	for _, v := range ids {
		r, d := v.RepetitionLevel(), v.DefinitionLevel()
		if r <= lvlRS && d >= lvlRS {
			rs++
		}
		if r <= lvlSS && d >= lvlSS {
			ss++
		}
		if d >= lvlSpan {
			rsOfSpan = append(rsOfSpan, int32(rs))
			ssOfSpan = append(ssOfSpan, int32(ss))
			spanIDs = append(spanIDs, v)
		}
	}
	n := len(spanIDs)
	if len(keep) != n {
		return nil, fmt.Errorf("%d keep flags for %d spans", len(keep), n)
	}
	f.keep[3] = keep
	f.keep[2] = make([]bool, ss+1)
	f.keep[1] = make([]bool, rs+1)
	for k, ok := range keep {
		if ok {
			f.keep[2][ssOfSpan[k]] = true
			f.keep[1][rsOfSpan[k]] = true
			f.spans++
		}
	}
	if f.spans == 0 {
		return nil, errors.New("no span kept")
	}

	// Span values the derived columns come from.
	parentIdx := cells[colSpanParentIdx].AppendValues(nil, colSpanParentIdx)
	parentID := cells[colSpanParentSpanID].AppendValues(nil, colSpanParentSpanID)
	offs := cells[colSpanStartOffset].AppendValues(nil, colSpanStartOffset)
	durs := cells[colSpanDuration].AppendValues(nil, colSpanDuration)
	names := cells[colSpanName].AppendValues(nil, colSpanName)
	svcs := cells[colResourceServiceName].AppendValues(nil, colResourceServiceName)
	parentIdx, parentID, offs, durs, names = defined(parentIdx), defined(parentID), defined(offs), defined(durs), defined(names)
	svcs = defined(svcs)
	for _, vs := range [][]parquet.Value{parentIdx, parentID, offs, durs, names} {
		if len(vs) != n {
			return nil, errors.New("span columns disagree on the number of spans")
		}
	}
	if len(svcs) != rs+1 {
		return nil, errors.New("resource columns disagree on the number of resources")
	}

	oldStart := uint64(cells[colStartTimeUnixNano].Int64())
	newOrd := make([]int32, n) // 1-based ordinal among the kept spans
	rootFound := false
	for k := range n {
		if !keep[k] {
			continue
		}
		newOrd[k] = int32(len(f.parentIdx)) + 1
		start := oldStart + uint64(offs[k].Int64())
		end := start + uint64(durs[k].Int64())
		if start != 0 && (f.start == 0 || start < f.start) {
			f.start = start
		}
		f.end = max(f.end, end)
		if !rootFound && parentIdx[k].Int32() == 0 && len(parentID[k].ByteArray()) == 0 {
			rootFound = true
			f.rootName = names[k].ByteArray()
			f.rootSvc = svcs[rsOfSpan[k]].ByteArray()
		}
		f.parentIdx = append(f.parentIdx, 0) // set below, once ordinals are known
	}
	i := 0
	for k := range n {
		if !keep[k] {
			continue
		}
		start := oldStart + uint64(offs[k].Int64())
		f.startOffset = append(f.startOffset, int64(start-f.start))
		pid := parentID[k].ByteArray()
		if p := parentIdx[k].Int32(); p != 0 {
			if p < 1 || int(p) > n {
				return nil, fmt.Errorf("span %d: parent ordinal %d of %d spans", k, p, n)
			}
			if keep[p-1] {
				f.parentIdx[i] = newOrd[p-1]
				pid = nil
			} else {
				pid = spanIDs[p-1].ByteArray() // the parent is gone: name it
			}
		}
		f.parentSpanID = append(f.parentSpanID, pid)
		i++
	}
	return f, nil
}

// defined keeps the values at the column's maximum definition level (a
// required leaf: the values of the slots that exist).
func defined(vs []parquet.Value) []parquet.Value {
	out := vs[:0]
	for _, v := range vs {
		if !v.IsNull() {
			out = append(out, v)
		}
	}
	return out
}

// writeFiltered appends one row through f.
func writeFiltered(fw *pq.FileWriter, cells []pq.Cell, f *spanFilter) error {
	var dur uint64
	if f.end > f.start {
		dur = f.end - f.start
	}
	top := [colSpanCount + 1]parquet.Value{
		colTraceID:           parquet.FixedLenByteArrayValue(cells[colTraceID].Fixed()),
		colStartTimeUnixNano: parquet.Int64Value(int64(f.start)),
		colEndTimeUnixNano:   parquet.Int64Value(int64(f.end)),
		colDurationNano:      parquet.Int64Value(int64(dur)),
		colRootServiceName:   parquet.ByteArrayValue(f.rootSvc),
		colRootSpanName:      parquet.ByteArrayValue(f.rootName),
		colSpanCount:         parquet.Int32Value(f.spans),
	}
	var vals []parquet.Value
	return fw.WriteColumns(func(c int, col *pq.ColWriter) error {
		switch c {
		case colSpanParentIdx, colSpanParentSpanID, colSpanStartOffset:
			var err error
			vals, err = f.spanValues(vals[:0], c, cells[colSpan], col.MaxDef())
			if err != nil {
				return err
			}
			return col.AppendValues(vals)
		default:
			if c <= colSpanCount {
				return col.AppendValues([]parquet.Value{top[c].Level(0, 0, c)})
			}
			return col.AppendFiltered(cells[c], depthOf(c), f.keep[depthOf(c)])
		}
	})
}

// spanValues returns the new values of a rewritten span column, with the
// levels the kept spans have in the SpanID column ids.
func (f *spanFilter) spanValues(dst []parquet.Value, c int, ids pq.Cell, maxDef byte) ([]parquet.Value, error) {
	if maxDef != f.spanDef {
		return nil, fmt.Errorf("span column %d has maximum definition level %d", c, maxDef)
	}
	if f.spanLevels == nil {
		var err error
		if f.spanLevels, err = pq.FilteredLevels(ids, lvlSpan, f.keep[lvlSpan]); err != nil {
			return nil, err
		}
	}
	if len(f.spanLevels) != len(f.parentIdx) {
		return nil, errors.New("span levels disagree with the spans kept")
	}
	for i, r := range f.spanLevels {
		var v parquet.Value
		switch c {
		case colSpanParentIdx:
			v = parquet.Int32Value(f.parentIdx[i])
		case colSpanParentSpanID:
			v = parquet.ByteArrayValue(f.parentSpanID[i])
		default:
			v = parquet.Int64Value(f.startOffset[i])
		}
		dst = append(dst, v.Level(int(r), int(f.spanDef), c))
	}
	return dst, nil
}
