package block

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block/pq"
)

// How Search runs (policy in search.go, Parquet mechanics here):
//
//  1. the block's time range (meta) and, for v2, its search index: a
//     block that cannot hold a match is skipped without reading
//     data.parquet; so is a row group whose rows are all outside the time
//     range (unless a trace crosses its boundary);
//  2. each remaining row group: only the columns the predicates need (plus
//     TraceID and the row times) are fetched, in as few ranged GETs as
//     adjacent chunks allow, and checked row by row from their cells
//     (cellwalk.go) without decoding rows; the parts of a multi-row trace
//     are combined (a predicate holds if it holds in some part);
//  3. the candidate traces' rows are decoded from the row group (fetched
//     whole, one ranged GET, seeking to each row with the page index),
//     joined, checked once more on OTLP, and handed to fn.

// searchIndex returns the block's search index (cached), or nil for v1.
func (r *Reader) searchIndex(ctx context.Context) (*searchIndex, error) {
	if r.meta.Version != VersionV2 {
		return nil, nil
	}
	key := SearchIndexKey(r.meta.TenantID, r.meta.BlockID)
	if v, ok := r.cache.get(key); ok {
		return v.(*searchIndex), nil
	}
	data, err := backend.ReadAll(ctx, r.be, key)
	if err != nil {
		return nil, fmt.Errorf("read search index %s: %w", key, err)
	}
	if int64(len(data)) != r.meta.SearchIndexSize {
		return nil, &CorruptError{Key: key, Err: fmt.Errorf("%d bytes, meta says %d", len(data), r.meta.SearchIndexSize)}
	}
	x, err := decodeSearchIndex(data)
	if err != nil {
		return nil, &CorruptError{Key: key, Err: err}
	}
	if len(x.rowGroups) != r.meta.RowGroups {
		return nil, &CorruptError{Key: key, Err: fmt.Errorf("%d row groups, meta says %d", len(x.rowGroups), r.meta.RowGroups)}
	}
	r.cache.put(key, x, 8*int64(len(data))+1024)
	return x, nil
}

// search runs s over the block.
func (r *Reader) search(ctx context.Context, s *searcher, fn func(id [16]byte, td *tracev1.TracesData) bool, st *SearchStats) error {
	if timeBound(r.meta.EndTime, 0) < s.start {
		return nil
	}
	idx, err := r.searchIndex(ctx)
	if err != nil {
		return err
	}
	if idx != nil {
		var m predMask
		for i := range s.preds {
			if idx.mayHold(&s.preds[i]) {
				m |= 1 << i
			}
		}
		if !s.ok(m) {
			return nil
		}
	}
	ft, err := r.footer(ctx)
	if err != nil {
		return err
	}
	sc := &scan{r: r, s: s, ft: ft, st: st, fn: fn, idx: idx}
	sc.plan()
	defer sc.closeDecoder()
	for i := range ft.rgs {
		if err := ctx.Err(); err != nil {
			return err
		}
		crosses := (i > 0 && ft.rgs[i-1].max == ft.rgs[i].min) || (i+1 < len(ft.rgs) && ft.rgs[i].max == ft.rgs[i+1].min)
		if idx != nil && !crosses && !s.overlaps(idx.rowGroups[i].start, idx.rowGroups[i].end) {
			continue
		}
		if err := sc.rowGroup(ctx, i); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// scan is one search's pass over the row groups.
type scan struct {
	r    *Reader
	s    *searcher
	ft   *footer
	st   *SearchStats
	fn   func(id [16]byte, td *tracev1.TracesData) bool
	need []int // columns to read, ascending
	// always: predicates that hold in every trace (unknown intrinsics);
	// traceDur: traceDuration predicates, checked per trace.
	always, traceDur predMask
	spans            bool // walk span intrinsics

	cols  []pq.ColReader
	cells []pq.Cell
	refs  []*pq.Page

	// The trace being gathered: its rows so far, maybe in earlier row
	// groups.
	cur     [TraceIDSize]byte
	curRows []rowRef
	curMask predMask
	curS    uint64
	curE    uint64
	active  bool
	// rootPreds: root name predicates; rowRoot: the row has a root span;
	// curRoot: the trace has one.
	rootPreds        predMask
	rowRoot, curRoot bool

	idx *searchIndex // nil for v1
	v   cellVisitor  // sets m
	m   predMask

	// sameSpan: SearchRequest.SameSpan with All; curSpan: some row of the
	// trace has a span that may satisfy every predicate.
	sameSpan bool
	sl       spanLevel
	curSpan  bool

	// omit: column groups (projGroups) candidates are decoded without;
	// group: each column's group, -1 for none.
	omit  [4]bool
	group []int8
	zero  []parquet.Value // the value a left-out dedicated column is read as

	// visit, if set, is given every row instead (tag scans).
	visit *cellVisitor
	stop  *bool

	// Decoding: the fetched row group and its row reader.
	decRG    int
	dec      []pq.SeekReader
	decCells []pq.Cell
	tr       traceRow
}

type rowRef struct {
	rg  int
	row int64
}

// plan picks the columns the predicates need.
func (sc *scan) plan() {
	cols := searchCols()
	need := map[int]bool{colTraceID: true, colStartTimeUnixNano: true, colEndTimeUnixNano: true}
	for i := range sc.s.preds {
		p := &sc.s.preds[i]
		switch p.Scope {
		case PredSpanIntrinsic:
			if p.intrinsic < 0 {
				sc.always |= 1 << i
				continue
			}
			sc.spans = true
			for _, c := range cols.spanCols() {
				need[c] = true
			}
		case PredTraceIntrinsic:
			switch p.intrinsic {
			case inTraceDuration:
				sc.traceDur |= 1 << i
			case inRootName, inRootServiceName:
				sc.rootPreds |= 1 << i
				sc.spans = true
				for _, c := range cols.spanCols() {
					need[c] = true
				}
			default:
				sc.always |= 1 << i
			}
		default:
			for t, ps := range tagPredScopes {
				if !p.isAttr(ps) {
					continue
				}
				ded := cols.spanDed
				if ps == PredResource {
					ded = cols.resDed
				}
				dedicated := false
				if ps == PredResource || ps == PredSpan {
					for _, d := range ded {
						if d.key == p.Key {
							need[d.val], need[d.pos] = true, true
							dedicated = true
						}
					}
				}
				// A dedicated key the index never saw in Attrs needs only
				// its dedicated columns.
				if dedicated && sc.idx != nil && !sc.idx.scopes[t].overflow {
					if k := sc.idx.scopes[t].keys[p.Key]; k == nil || k.kinds&seenGeneric == 0 {
						continue
					}
				}
				for c := range attrColumns - 1 { // not Bytes: such values are kind 6/7 and may match anything
					need[cols.attrs[t]+c] = true
				}
			}
		}
	}
	if sc.sameSpan = sc.s.req.All && sc.s.req.SameSpan && len(sc.s.preds) > 1; sc.sameSpan {
		need[cols.statusCode] = true // the row's shape: which span is in which ResourceSpans and ScopeSpans
		sc.sl.base = sc.always | sc.traceDur | sc.rootPreds
	}
	for c := range need {
		sc.need = append(sc.need, c)
	}
	slices.Sort(sc.need)
	sc.cols = make([]pq.ColReader, numColumns)
	sc.decRG = -1
	sc.v = sc.visitor()
	var dropped map[int]dropCol
	sc.omit, dropped = sc.projection()
	sc.group = make([]int8, numColumns)
	for c := range sc.group {
		sc.group[c] = -1
		if d, ok := dropped[c]; ok {
			sc.group[c] = int8(len(projGroups) + d.shape)
			if sc.zero == nil {
				sc.zero = make([]parquet.Value, numColumns)
			}
			sc.zero[c] = d.zero
		}
	}
	for g, pg := range projGroups {
		if sc.omit[g] {
			for c := pg.from; c < pg.to; c++ {
				sc.group[c] = int8(g)
			}
		}
	}
}

// rowMask evaluates the predicates over one row's cells.
func (sc *scan) rowMask(cells []pq.Cell) predMask {
	sc.m = sc.always
	walkCells(cells, &sc.v)
	return sc.m
}

// visitor returns the cell visitor that sets sc.m.
func (sc *scan) visitor() cellVisitor {
	v := cellVisitor{}
	v.attr = func(t TagScope, key []byte, kind int32, s []byte, i int64, f float64, _ bool) {
		sc.m |= sc.attrMatch(sc.m, t, key, kind, s, i, f)
	}
	if sc.spans {
		v.span = func(name []byte, kind, status int32, msg []byte, dur uint64, root bool, svc []byte) {
			if root {
				sc.rowRoot = true
			}
			sc.m |= sc.spanMatch(sc.m, name, kind, status, msg, dur, root, svc)
		}
	}
	return v
}

// attrMatch returns the predicates not in have that an attribute of scope
// t satisfies.
func (sc *scan) attrMatch(have predMask, t TagScope, key []byte, kind int32, s []byte, i int64, f float64) predMask {
	ps := sc.s.preds
	var m predMask
	for j := range ps {
		p := &ps[j]
		if have&(1<<j) != 0 || !p.isAttr(tagPredScopes[t]) || p.Key != unsafeString(key) {
			continue
		}
		var ok bool
		switch kind {
		case kindString:
			ok = p.matchStr(unsafeString(s))
		case kindInt:
			ok = p.matchInt(i)
		case kindDouble:
			ok = p.matchFloat(f)
		case kindBool:
			ok = p.matchBool(i != 0)
		default:
			ok = true
		}
		if ok {
			m |= 1 << j
		}
	}
	return m
}

// spanMatch returns the predicates not in have that a span's intrinsics
// satisfy, and for a root span (svc: its resource's service.name) the root
// name predicates.
func (sc *scan) spanMatch(have predMask, name []byte, kind, status int32, msg []byte, dur uint64, root bool, svc []byte) predMask {
	ps := sc.s.preds
	var m predMask
	for j := range ps {
		p := &ps[j]
		if have&(1<<j) != 0 || (p.Scope != PredSpanIntrinsic && !root) {
			continue
		}
		var ok bool
		switch p.intrinsic {
		case inRootName:
			ok = p.matchStr(unsafeString(name))
		case inRootServiceName:
			ok = p.matchStr(unsafeString(svc))
		case inName:
			ok = p.matchStr(unsafeString(name))
		case inStatus:
			ok = p.matchInt(int64(status))
		case inKind:
			ok = p.matchInt(int64(kind))
		case inDuration:
			ok = dur > math.MaxInt64 || p.matchInt(int64(dur))
		case inStatusMessage:
			ok = p.matchStr(unsafeString(msg))
		}
		if ok {
			m |= 1 << j
		}
	}
	return m
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// rowGroup scans row group i.
func (sc *scan) rowGroup(ctx context.Context, i int) error {
	ra, err := sc.fetchColumns(ctx, i)
	if err != nil {
		return err
	}
	defer sc.closeColumns()
	chunks := sc.ft.file.RowGroups()[i].ColumnChunks()
	lay, err := v1Layout()
	if err != nil {
		return err
	}
	for _, c := range sc.need {
		sc.cols[c] = pq.ColReader{}
		sc.cols[c].Open(lay.Leaf(c), chunks[c].(*parquet.FileColumnChunk).PagesFrom(ra))
	}
	rows := sc.ft.rgs[i].rows
	if cap(sc.cells) < numColumns {
		sc.cells = make([]pq.Cell, numColumns)
	}
	cells := sc.cells[:numColumns]
	var row int64
	for row = 0; row < rows; row++ {
		err := sc.r.guard(func() error {
			for _, c := range sc.need {
				sc.refs = sc.refs[:0]
				var err error
				if sc.refs, err = sc.cols[c].ReadRows(1, c, cells, sc.refs); err != nil {
					if errors.Is(err, io.EOF) {
						return fmt.Errorf("row group %d column %d has fewer rows than its row group", i, c)
					}
					return err
				}
				for _, p := range sc.refs {
					p.Release()
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		sc.st.InspectedTraces++
		id := [TraceIDSize]byte(cells[colTraceID].Fixed())
		start, end := uint64(cells[colStartTimeUnixNano].Int64()), uint64(cells[colEndTimeUnixNano].Int64())
		if sc.visit != nil {
			if err := sc.r.guard(func() error { walkCells(cells, sc.visit); return nil }); err != nil {
				return err
			}
			if sc.stop != nil && *sc.stop {
				return errTagStop
			}
			continue
		}
		var m predMask
		rowSpan := true
		sc.rowRoot = false
		if err := sc.r.guard(func() error {
			m = sc.rowMask(cells)
			if sc.sameSpan {
				// A span satisfies no more than its row does.
				rowSpan = satisfies(m|sc.sl.base, len(sc.s.preds), true) && sc.rowSpanOK(cells)
			}
			return nil
		}); err != nil {
			return err
		}
		if sc.active && id == sc.cur {
			sc.curSpan = sc.curSpan || rowSpan
			sc.curRoot = sc.curRoot || sc.rowRoot
			sc.curMask |= m
			if start != 0 && (sc.curS == 0 || start < sc.curS) {
				sc.curS = start
			}
			sc.curE = max(sc.curE, end)
		} else {
			if sc.active && bytes.Compare(id[:], sc.cur[:]) < 0 {
				return &CorruptError{Key: sc.r.dataKey, Err: fmt.Errorf("trace id %x after %x", id, sc.cur)}
			}
			if err := sc.finishTrace(ctx); err != nil {
				return err
			}
			sc.cur, sc.curMask, sc.curS, sc.curE, sc.active = id, m, start, end, true
			sc.curRoot = sc.rowRoot
			sc.curSpan = rowSpan
			sc.curRows = sc.curRows[:0]
		}
		sc.curRows = append(sc.curRows, rowRef{rg: i, row: row})
	}
	if sc.visit != nil {
		return nil
	}
	// A trace that goes on in the next row group is finished there.
	if i+1 < len(sc.ft.rgs) && sc.ft.rgs[i+1].min == sc.cur {
		return nil
	}
	return sc.finishTrace(ctx)
}

// finishTrace decides on the trace gathered and hands it to fn.
func (sc *scan) finishTrace(ctx context.Context) error {
	if !sc.active {
		return nil
	}
	sc.active = false
	s := sc.s
	if !s.overlaps(sc.curS, sc.curE) {
		return nil
	}
	m := sc.curMask
	if !sc.curRoot {
		m |= sc.rootPreds // a trace without a root span may match them
	}
	for j := range s.preds {
		if sc.traceDur&(1<<j) != 0 && s.preds[j].matchTraceDuration(sc.curS, sc.curE) {
			m |= 1 << j
		}
	}
	if !s.ok(m) || (sc.sameSpan && !sc.curSpan) {
		return nil
	}
	var td *tracev1.TracesData
	for _, ref := range sc.curRows {
		part, spans, err := sc.decode(ctx, ref)
		if err != nil {
			return err
		}
		sc.st.InspectedSpans += uint64(spans)
		if td == nil {
			td = part
		} else {
			joinPart(td, part)
		}
	}
	// The OTLP check is finer than the cells' (it sees which attribute
	// belongs to which span, for predicates on several columns).
	if len(s.preds) > 0 && !s.ok(traceMask(s.preds, td)|sc.always) {
		return nil
	}
	if sc.sameSpan && !spanMatchOTLP(s.preds, sc.sl.base, td) {
		return nil
	}
	if !sc.fn(sc.cur, td) {
		return errStop
	}
	return nil
}

// decode reads one row from its row group (fetched whole, one ranged GET,
// the first time), column by column: each column reader moves forward to
// the row, so a row group's pages are decoded at most once per search.
func (sc *scan) decode(ctx context.Context, ref rowRef) (*tracev1.TracesData, int, error) {
	if sc.decRG != ref.rg {
		sc.closeDecoder()
		ra, err := sc.r.fetchRowGroup(ctx, sc.ft, ref.rg)
		if err != nil {
			return nil, 0, err
		}
		lay, err := v1Layout()
		if err != nil {
			return nil, 0, err
		}
		chunks := sc.ft.file.RowGroups()[ref.rg].ColumnChunks()
		if len(chunks) != numColumns {
			return nil, 0, &CorruptError{Key: sc.r.dataKey, Err: fmt.Errorf("row group %d has %d columns", ref.rg, len(chunks))}
		}
		if sc.dec == nil {
			sc.dec = make([]pq.SeekReader, numColumns)
			sc.decCells = make([]pq.Cell, numColumns)
		}
		for c, chunk := range chunks {
			if sc.group[c] >= 0 {
				sc.dec[c] = pq.SeekReader{} // left out: never read
				continue
			}
			fc := chunk.(*parquet.FileColumnChunk)
			var oi parquet.OffsetIndex
			if o, err := fc.OffsetIndex(); err == nil && o.NumPages() > 0 && o.FirstRowIndex(0) == 0 {
				oi = o
			}
			sc.dec[c] = pq.SeekReader{}
			sc.dec[c].Open(lay.Leaf(c), fc.PagesFrom(ra), oi)
		}
		sc.decRG = ref.rg
	}
	var td *tracev1.TracesData
	spans := 0
	err := sc.r.guard(func() error {
		for c := range sc.dec {
			if sc.group[c] >= 0 {
				continue
			}
			x, err := sc.dec[c].At(ref.row)
			if err != nil {
				return fmt.Errorf("row %d of row group %d column %d: %w", ref.row, ref.rg, c, err)
			}
			sc.decCells[c] = x
		}
		row := Row{cells: sc.decCells}
		spans = row.SpanCount()
		flat := row.flat
		if sc.omit != [4]bool{} {
			flat = sc.projectedRow
		}
		if err := reconstruct(&sc.tr, flat()); err != nil {
			return err
		}
		packRow(&sc.tr, sc.omit)
		var err error
		td, err = sc.tr.toOTLP()
		return err
	})
	return td, spans, err
}

// projectedRow is Row.flat of the decoder's cells with the groups left
// out as empty lists and the dedicated columns left out as absent.
func (sc *scan) projectedRow() parquet.Row {
	var out parquet.Row
	for c, x := range sc.decCells {
		g := int(sc.group[c])
		switch {
		case g >= len(projGroups):
			d := dedShapes[g-len(projGroups)]
			out = projected(out, sc.decCells[d.shape], c, byte(d.def), sc.zero[c])
			continue
		case g >= 0:
			pg := projGroups[g]
			out = projected(out, sc.decCells[pg.shape], c, pg.def, parquet.Value{})
			continue
		}
		out = x.AppendValues(out, c)
	}
	return out
}

func (sc *scan) closeDecoder() {
	for c := range sc.dec {
		sc.dec[c].Close()
	}
	sc.decRG = -1
}

// fetchColumns fetches the needed column chunks of row group i, merging
// chunks less than 64 KiB apart into one ranged GET.
func (sc *scan) fetchColumns(ctx context.Context, i int) (io.ReaderAt, error) {
	md := &sc.ft.file.Metadata().RowGroups[i]
	var secs []pq.Section
	var lo, hi int64 = -1, -1
	flush := func() error {
		if lo < 0 {
			return nil
		}
		data, err := sc.r.be.GetRange(ctx, sc.r.dataKey, lo, hi-lo)
		if err != nil {
			return fmt.Errorf("read row group %d of %s: %w", i, sc.r.dataKey, err)
		}
		if int64(len(data)) != hi-lo {
			return fmt.Errorf("read row group %d of %s: got %d of %d bytes", i, sc.r.dataKey, len(data), hi-lo)
		}
		secs = append(secs, pq.Section{Off: lo, Data: data})
		return nil
	}
	for _, c := range sc.need {
		if c >= len(md.Columns) {
			return nil, &CorruptError{Key: sc.r.dataKey, Err: fmt.Errorf("row group %d has %d columns", i, len(md.Columns))}
		}
		cm := &md.Columns[c].MetaData
		start, end := pq.ChunkStart(cm), pq.ChunkStart(cm)+cm.TotalCompressedSize
		if lo >= 0 && start >= hi && start-hi < 64<<10 {
			hi = max(hi, end)
			continue
		}
		if err := flush(); err != nil {
			return nil, err
		}
		lo, hi = start, end
	}
	if err := flush(); err != nil {
		return nil, err
	}
	secs = append(secs, sc.ft.tail)
	return pq.NewObjectReaderAt(ctx, sc.r.be, sc.r.dataKey, sc.r.meta.Size, secs), nil
}

func (sc *scan) closeColumns() {
	for _, c := range sc.need {
		sc.cols[c].Close()
	}
}

// scanAttrs walks the attributes of every row from the columns of scope
// (-1: all scopes) and the dedicated columns of name ("" with scope -1:
// all), for the tag calls of a block without a search index. The walk ends
// (errTagStop) after a row in which fn set *stop.
func (r *Reader) scanAttrs(ctx context.Context, scope TagScope, name string, stop *bool, fn func(TagScope, []byte, int32, []byte, int64, float64, bool)) error {
	ft, err := r.footer(ctx)
	if err != nil {
		return err
	}
	sc := &scan{r: r, s: &searcher{}, ft: ft, st: &SearchStats{}, visit: &cellVisitor{attr: fn}, stop: stop}
	cols := searchCols()
	need := map[int]bool{colTraceID: true, colStartTimeUnixNano: true, colEndTimeUnixNano: true}
	for t := range cols.attrs {
		if scope >= 0 && TagScope(t) != scope {
			continue
		}
		for c := range attrColumns - 1 {
			need[cols.attrs[t]+c] = true
		}
		for _, d := range append(append([]dedCol(nil), cols.resDed...), cols.spanDed...) {
			isRes := d.val < cols.attrs[TagResource]
			if (isRes && TagScope(t) == TagResource || !isRes && TagScope(t) == TagSpan) && (name == "" || d.key == name) {
				need[d.val], need[d.pos] = true, true
			}
		}
	}
	for c := range need {
		sc.need = append(sc.need, c)
	}
	slices.Sort(sc.need)
	sc.cols = make([]pq.ColReader, numColumns)
	sc.decRG = -1
	for i := range ft.rgs {
		if err := sc.rowGroup(ctx, i); err != nil {
			return err
		}
	}
	return nil
}
