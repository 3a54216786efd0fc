package block

import (
	"slices"

	"github.com/parquet-go/parquet-go"
	"github.com/rubatodb/rubato/pkg/block/pq"
)

// Projection: a search whose caller says what it reads of each candidate
// (SearchRequest.Fields) decodes only those column groups, which is most
// of a selective search's cost. A group is left out only where that cannot
// change what the caller reads:
//
//   - a scope's generic attributes (Attrs) when every key read in it, and
//     for the resource service.name (read for the root service and service
//     stats), is one of its dedicated columns and, by the block's search
//     index, never stored in Attrs in this block (so the key's first
//     occurrence, the one TraceQL reads, is the dedicated one); the
//     dedicated attributes are kept, packed in their original order;
//   - scope attributes when none is read; events when none is read;
//   - links are always decoded (TraceQL reads their attributes to find
//     child-of links).
//
// The parts of a multi-row trace may then join into fewer ResourceSpans
// or ScopeSpans (parts.go merges equal headers, and headers that differed
// only in what was left out look equal); every span keeps the values read
// (TestSearchFieldsKeepWhatIsRead compares span by span).
//
// v1 blocks have no index: only scope attributes and events are left out.

// SearchFields says what a search's caller reads of each candidate trace
// besides its spans' IDs, parents, times, names, kinds, statuses, scopes'
// names and versions, links, and the resources' service.name.
type SearchFields struct {
	ResourceKeys, SpanKeys []string // attribute keys read (an unscoped key in both)
	ScopeAttrs             bool     // instrumentation scope attributes read
	Events                 bool     // events read
}

// Column groups a projection can leave out, and the column whose levels
// give the shape of the null each row gets instead.
var projGroups = []struct {
	from, to, shape int
	def             byte
}{
	{colResourceAttrs, colResourceAttrs + attrColumns, colResource, lvlRS},
	{colScopeAttrs, colScopeAttrs + attrColumns, colScope, lvlSS},
	{colSpanAttrs, colSpanAttrs + attrColumns, colSpan, lvlSpan},
	{colEvent, colLink, colSpan, lvlSpan},
}

const (
	projResource = iota
	projScope
	projSpan
	projEvents
)

// dedShapes are the shapes of the dedicated columns a projection leaves
// out (group len(projGroups)+dedResource or +dedSpan): one zero value per
// resource or span, as a dedicated attribute that is absent is stored.
var dedShapes = []struct{ shape, def int }{
	{colResource, lvlRS},
	{colSpan, lvlSpan},
}

const (
	dedResource = iota
	dedSpan
)

// dropCol is a dedicated column left out: its shape (dedShapes) and the
// zero value it is read as.
type dropCol struct {
	shape int
	zero  parquet.Value
}

// projection returns which groups of projGroups the search leaves out, and
// the dedicated columns (value and position) it leaves out with them: in a
// scope whose generic attributes are left out, every key read is a
// dedicated one, so the other dedicated keys are not read either.
func (sc *scan) projection() (omit [4]bool, dropped map[int]dropCol) {
	f := sc.s.req.Fields
	if f == nil {
		return omit, nil
	}
	res, span := slices.Clone(f.ResourceKeys), slices.Clone(f.SpanKeys)
	res = append(res, "service.name")
	scopeAttrs, events := f.ScopeAttrs, f.Events
	for i := range sc.s.preds {
		p := &sc.s.preds[i]
		switch {
		case p.isAttr(PredResource) || p.isAttr(PredSpan):
			if p.isAttr(PredResource) {
				res = append(res, p.Key)
			}
			if p.isAttr(PredSpan) {
				span = append(span, p.Key)
			}
		case p.Scope == PredInstrumentation:
			scopeAttrs = true
		case p.Scope == PredEvent:
			events = true
		}
	}
	omit[projScope], omit[projEvents] = !scopeAttrs, !events
	cols := searchCols()
	onlyDedicated := func(t TagScope, keys []string, ded []dedCol) bool {
		if sc.idx == nil || sc.idx.scopes[t].overflow {
			return false
		}
		for _, k := range keys {
			if !slices.ContainsFunc(ded, func(d dedCol) bool { return d.key == k }) {
				return false
			}
			if ki := sc.idx.scopes[t].keys[k]; ki != nil && ki.kinds&seenGeneric != 0 {
				return false
			}
		}
		return true
	}
	omit[projResource] = onlyDedicated(TagResource, res, cols.resDed)
	omit[projSpan] = onlyDedicated(TagSpan, span, cols.spanDed)
	dropped = map[int]dropCol{}
	drop := func(keys []string, ded []dedCol, shape int) {
		for _, d := range ded {
			if slices.Contains(keys, d.key) {
				continue
			}
			val := parquet.ByteArrayValue(nil)
			if d.isInt {
				val = parquet.Int64Value(0)
			}
			dropped[d.val] = dropCol{shape, val}
			dropped[d.pos] = dropCol{shape, parquet.Int32Value(0)} // position 0: absent
		}
	}
	if omit[projResource] {
		drop(res, cols.resDed, dedResource)
	}
	if omit[projSpan] {
		drop(span, cols.spanDed, dedSpan)
	}
	return omit, dropped
}

// projected appends the values of row's column c when its group is left
// out: one zero per entry of the shape column, at the group's parent
// level (for a list, a null there is an empty list, as the writer stores
// one), and a null below it.
func projected(out parquet.Row, shape pq.Cell, c int, def byte, zero parquet.Value) parquet.Row {
	ls, le := shape.Page.Levels(shape.Row)
	for i := ls; i < le; i++ {
		var r byte
		d := shape.Page.MaxDef()
		if shape.Page.Rep() != nil {
			r = shape.Page.Rep()[i]
		}
		if shape.Page.Def() != nil {
			d = shape.Page.Def()[i]
		}
		if d >= def {
			out = append(out, zero.Level(int(r), int(def), c))
			continue
		}
		out = append(out, parquet.Value{}.Level(int(r), int(d), c))
	}
	return out
}

// packPos renumbers the dedicated positions of r 1..n in their order, for
// an attribute list whose generic part was left out.
func packPos[R any](cols []dedicated[R], r *R) {
	var ps [8]int32
	n := 0
	for i := range cols {
		if p := *cols[i].pos(r); p > 0 && n < len(ps) {
			ps[n] = p
			n++
		}
	}
	slices.Sort(ps[:n])
	for i := range cols {
		if p := cols[i].pos(r); *p > 0 {
			*p = int32(slices.Index(ps[:n], *p) + 1)
		}
	}
}

// packRow packs the dedicated positions of the scopes left out.
func packRow(tr *traceRow, omit [4]bool) {
	for i := range tr.ResourceSpans {
		rr := &tr.ResourceSpans[i]
		if omit[projResource] {
			packPos(resourceDedicated, &rr.Resource)
		}
		if !omit[projSpan] {
			continue
		}
		for j := range rr.ScopeSpans {
			for k := range rr.ScopeSpans[j].Spans {
				packPos(spanDedicated, &rr.ScopeSpans[j].Spans[k])
			}
		}
	}
}
