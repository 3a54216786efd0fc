package block

import (
	"unsafe"

	"github.com/parquet-go/parquet-go"
)

// Hand-written record shredding: traceRow -> parquet.Row, the Dremel
// repetition/definition levels of every leaf value computed directly instead
// of through parquet-go's reflection. It produces exactly the row
// schemaV1.Deconstruct would (TestShredMatchesDeconstruct), several times
// faster, which is most of what makes Writer.Add cheap.
//
// Leaf column indexes of the v1 schema, in schema (struct field) order;
// TestColumnLayout checks them against parquet.SchemaOf(traceRow).
const (
	colTraceID           = 0
	colStartTimeUnixNano = 1
	colEndTimeUnixNano   = 2
	colDurationNano      = 3
	colRootServiceName   = 4
	colRootSpanName      = 5
	colSpanCount         = 6

	colResource      = 7  // rs.Resource.Present, first leaf under rs
	colResourceAttrs = 19 // rs.Resource.Attrs.Key
	colRsSchemaURL   = 25
	colScope         = 26 // rs.ss.Scope.Present, first leaf under ss
	colScopeAttrs    = 30
	colSsSchemaURL   = 36
	colSpan          = 37 // rs.ss.Spans.SpanID, first leaf under Spans
	colSpanAttrs     = 65
	colEvent         = 71
	colEventAttrs    = 74
	colLink          = 80
	colLinkAttrs     = 85
	numColumns       = 91

	attrColumns = 6 // Key, Kind, Str, Int, Double, Bytes
)

// Repetition levels of the repeated groups; a required leaf directly under
// a group has the same definition level.
const (
	lvlRS     = 1
	lvlSS     = 2
	lvlRAttr  = 2
	lvlSpan   = 3
	lvlSAttr  = 3
	lvlSpAttr = 4
	lvlEvent  = 4
	lvlLink   = 4
	lvlEAttr  = 5
)

// columns holds one row's values split by leaf column.
type columns [numColumns][]parquet.Value

// row concatenates the columns into a parquet.Row.
func (c *columns) row(dst parquet.Row) parquet.Row {
	dst = dst[:0]
	for i := range c {
		dst = append(dst, c[i]...)
	}
	return dst
}

// split points each column at its values in row, which must have passed
// Row.check (values grouped by column, every column present).
func (c *columns) split(row parquet.Row) {
	start := 0
	for i := 1; i <= len(row); i++ {
		if i == len(row) || row[i].Column() != row[start].Column() {
			c[row[start].Column()] = row[start:i:i]
			start = i
		}
	}
}

// shredder turns traceRows into column values, reusing its buffers.
type shredder struct {
	cols columns
}

// shred returns the values of r by column. They alias r's strings and byte
// slices and the shredder's buffers: they are valid until the next call or
// until r changes.
func (s *shredder) shred(r *traceRow) *columns {
	for c := range s.cols {
		s.cols[c] = s.cols[c][:0]
	}
	s.put(colTraceID, parquet.FixedLenByteArrayValue(r.TraceID[:]), 0, 0)
	s.put(colStartTimeUnixNano, parquet.Int64Value(int64(r.StartTimeUnixNano)), 0, 0)
	s.put(colEndTimeUnixNano, parquet.Int64Value(int64(r.EndTimeUnixNano)), 0, 0)
	s.put(colDurationNano, parquet.Int64Value(int64(r.DurationNano)), 0, 0)
	s.str(colRootServiceName, r.RootServiceName, 0, 0)
	s.str(colRootSpanName, r.RootSpanName, 0, 0)
	s.put(colSpanCount, parquet.Int32Value(r.SpanCount), 0, 0)
	if len(r.ResourceSpans) == 0 {
		s.nulls(colResource, numColumns, 0, 0)
	}
	for i := range r.ResourceSpans {
		s.resourceSpans(&r.ResourceSpans[i], rep(i, 0, lvlRS))
	}
	return &s.cols
}

// rep is the repetition level of element i of a list whose first element
// continues the parent at level parent.
func rep(i, parent, level int) int {
	if i == 0 {
		return parent
	}
	return level
}

func (s *shredder) put(c int, v parquet.Value, rep, def int) {
	v.SetRepetitionLevel(rep)
	v.SetDefinitionLevel(def)
	v.SetColumnIndex(c)
	s.cols[c] = append(s.cols[c], v)
}

func (s *shredder) str(c int, v string, rep, def int) {
	s.put(c, parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(v), len(v))), rep, def)
}

func (s *shredder) i32(c int, v int32, rep, def int) { s.put(c, parquet.Int32Value(v), rep, def) }

// nulls writes the null that stands for an empty list into every leaf in
// [from, to).
func (s *shredder) nulls(from, to, rep, def int) {
	for c := from; c < to; c++ {
		s.put(c, parquet.Value{}, rep, def)
	}
}

func (s *shredder) resourceSpans(rr *resourceSpansRow, r int) {
	const d = lvlRS
	res := &rr.Resource
	s.put(colResource, parquet.BooleanValue(res.Present), r, d)
	s.i32(colResource+1, int32(res.DroppedAttributesCount), r, d)
	s.str(colResource+2, res.ServiceName, r, d)
	s.i32(colResource+3, res.ServiceNamePos, r, d)
	s.str(colResource+4, res.K8sClusterName, r, d)
	s.i32(colResource+5, res.K8sClusterNamePos, r, d)
	s.str(colResource+6, res.K8sNamespaceName, r, d)
	s.i32(colResource+7, res.K8sNamespaceNamePos, r, d)
	s.str(colResource+8, res.K8sPodName, r, d)
	s.i32(colResource+9, res.K8sPodNamePos, r, d)
	s.str(colResource+10, res.K8sContainerName, r, d)
	s.i32(colResource+11, res.K8sContainerNamePos, r, d)
	s.attrs(colResourceAttrs, res.Attrs, r, lvlRAttr)
	s.str(colRsSchemaURL, rr.SchemaURL, r, d)
	if len(rr.ScopeSpans) == 0 {
		s.nulls(colScope, numColumns, r, d)
	}
	for i := range rr.ScopeSpans {
		s.scopeSpans(&rr.ScopeSpans[i], rep(i, r, lvlSS))
	}
}

func (s *shredder) scopeSpans(sr *scopeSpansRow, r int) {
	const d = lvlSS
	sc := &sr.Scope
	s.put(colScope, parquet.BooleanValue(sc.Present), r, d)
	s.str(colScope+1, sc.Name, r, d)
	s.str(colScope+2, sc.Version, r, d)
	s.i32(colScope+3, int32(sc.DroppedAttributesCount), r, d)
	s.attrs(colScopeAttrs, sc.Attrs, r, lvlSAttr)
	s.str(colSsSchemaURL, sr.SchemaURL, r, d)
	if len(sr.Spans) == 0 {
		s.nulls(colSpan, numColumns, r, d)
	}
	for i := range sr.Spans {
		s.span(&sr.Spans[i], rep(i, r, lvlSpan))
	}
}

func (s *shredder) span(sp *spanRow, r int) {
	const d = lvlSpan
	c := colSpan
	s.put(c, parquet.ByteArrayValue(sp.SpanID), r, d)
	s.i32(c+1, sp.ParentIdx, r, d)
	s.put(c+2, parquet.ByteArrayValue(sp.ParentSpanID), r, d)
	s.put(c+3, parquet.ByteArrayValue(sp.OtherTraceID), r, d)
	s.str(c+4, sp.TraceState, r, d)
	s.str(c+5, sp.Name, r, d)
	s.i32(c+6, sp.Kind, r, d)
	s.i32(c+7, int32(sp.Flags), r, d)
	s.put(c+8, parquet.Int64Value(int64(sp.StartOffsetNano)), r, d)
	s.put(c+9, parquet.Int64Value(int64(sp.DurationNano)), r, d)
	s.put(c+10, parquet.BooleanValue(sp.StatusPresent), r, d)
	s.i32(c+11, sp.StatusCode, r, d)
	if sp.StatusMessage == "" {
		s.put(c+12, parquet.Value{}, r, d)
	} else {
		s.str(c+12, sp.StatusMessage, r, d+1)
	}
	s.i32(c+13, int32(sp.DroppedAttributesCount), r, d)
	s.i32(c+14, int32(sp.DroppedEventsCount), r, d)
	s.i32(c+15, int32(sp.DroppedLinksCount), r, d)
	s.str(c+16, sp.HTTPMethod, r, d)
	s.i32(c+17, sp.HTTPMethodPos, r, d)
	s.str(c+18, sp.HTTPRequestMethod, r, d)
	s.i32(c+19, sp.HTTPRequestMethodPos, r, d)
	s.str(c+20, sp.HTTPURL, r, d)
	s.i32(c+21, sp.HTTPURLPos, r, d)
	s.str(c+22, sp.URLFull, r, d)
	s.i32(c+23, sp.URLFullPos, r, d)
	s.put(c+24, parquet.Int64Value(sp.HTTPStatusCode), r, d)
	s.i32(c+25, sp.HTTPStatusCodePos, r, d)
	s.put(c+26, parquet.Int64Value(sp.HTTPResponseStatusCode), r, d)
	s.i32(c+27, sp.HTTPResponseStatusCodePos, r, d)
	s.attrs(colSpanAttrs, sp.Attrs, r, lvlSpAttr)

	if len(sp.Events) == 0 {
		s.nulls(colEvent, colLink, r, d)
	}
	for i := range sp.Events {
		e := &sp.Events[i]
		er := rep(i, r, lvlEvent)
		s.put(colEvent, parquet.Int64Value(int64(e.TimeSinceStartNano)), er, lvlEvent)
		s.str(colEvent+1, e.Name, er, lvlEvent)
		s.i32(colEvent+2, int32(e.DroppedAttributesCount), er, lvlEvent)
		s.attrs(colEventAttrs, e.Attrs, er, lvlEAttr)
	}
	if len(sp.Links) == 0 {
		s.nulls(colLink, numColumns, r, d)
	}
	for i := range sp.Links {
		l := &sp.Links[i]
		lr := rep(i, r, lvlLink)
		s.put(colLink, parquet.ByteArrayValue(l.TraceID), lr, lvlLink)
		s.put(colLink+1, parquet.ByteArrayValue(l.SpanID), lr, lvlLink)
		s.str(colLink+2, l.TraceState, lr, lvlLink)
		s.i32(colLink+3, int32(l.Flags), lr, lvlLink)
		s.i32(colLink+4, int32(l.DroppedAttributesCount), lr, lvlLink)
		s.attrs(colLinkAttrs, l.Attrs, lr, lvlEAttr)
	}
}

// attrs writes an Attrs list whose leaves start at column base; level is
// the list's repetition level (= definition level of its required leaves).
func (s *shredder) attrs(base int, attrs []attrRow, r, level int) {
	if len(attrs) == 0 {
		s.nulls(base, base+attrColumns, r, level-1)
		return
	}
	for i := range attrs {
		a := &attrs[i]
		ar := rep(i, r, level)
		s.str(base, a.Key, ar, level)
		s.i32(base+1, a.Kind, ar, level)
		if a.Str == "" {
			s.put(base+2, parquet.Value{}, ar, level)
		} else {
			s.str(base+2, a.Str, ar, level+1)
		}
		if a.Int == 0 {
			s.put(base+3, parquet.Value{}, ar, level)
		} else {
			s.put(base+3, parquet.Int64Value(a.Int), ar, level+1)
		}
		if a.Double == 0 {
			s.put(base+4, parquet.Value{}, ar, level)
		} else {
			s.put(base+4, parquet.DoubleValue(a.Double), ar, level+1)
		}
		if len(a.Bytes) == 0 {
			s.put(base+5, parquet.Value{}, ar, level)
		} else {
			s.put(base+5, parquet.ByteArrayValue(a.Bytes), ar, level+1)
		}
	}
}
