package block

import (
	"encoding/binary"
	"math"
	"sync"
)

// Walking a row's searchable values straight from its cells (colreader.go),
// without decoding it: attributes by scope (dedicated columns and Attrs
// alike, in the semantics of the OTLP attribute list), span intrinsics and
// the trace's root names. The writer feeds the search index from it for
// rows it copies (AddRow), and Search checks predicates with it on rows
// of which it read only some columns: a group whose first column's cell is
// missing (nil page) is skipped.

// searchColumns are the leaf columns the walker reads, looked up by name.
type searchColumns struct {
	resDed  []dedCol          // resource dedicated columns
	spanDed []dedCol          // span dedicated columns
	attrs   [numTagScopes]int // Attrs.Key column of each scope; Kind, Str, Int, Double follow
	// Span intrinsics.
	spanName, spanKind, spanDur, statusCode, statusMsg int
	parentIdx, parentID                                int
	rootName, rootSvc                                  int
}

// spanCols are the columns walkCells reads for span intrinsics.
func (sc *searchColumns) spanCols() []int {
	return []int{sc.spanName, sc.spanKind, sc.spanDur, sc.statusCode, sc.statusMsg, sc.parentIdx, sc.parentID,
		sc.resDed[0].val, sc.resDed[0].pos}
}

// dedCol is a dedicated attribute's value column and its Pos column.
type dedCol struct {
	key      string
	keyBytes []byte
	val, pos int
	isInt    bool
}

var searchCols = sync.OnceValue(func() *searchColumns {
	s := schemaV1()
	col := func(path ...string) int {
		leaf, ok := s.Lookup(path...)
		if !ok {
			panic("block: v1 schema has no column " + path[len(path)-1])
		}
		return leaf.ColumnIndex
	}
	sc := &searchColumns{
		spanName:   col("rs", "ss", "Spans", "Name"),
		spanKind:   col("rs", "ss", "Spans", "Kind"),
		spanDur:    col("rs", "ss", "Spans", "DurationNano"),
		statusCode: col("rs", "ss", "Spans", "StatusCode"),
		statusMsg:  col("rs", "ss", "Spans", "StatusMessage"),
		parentIdx:  col("rs", "ss", "Spans", "ParentIdx"),
		parentID:   col("rs", "ss", "Spans", "ParentSpanID"),
		rootName:   col("RootSpanName"),
		rootSvc:    col("RootServiceName"),
	}
	sc.attrs[TagResource] = col("rs", "Resource", "Attrs", "Key")
	sc.attrs[TagInstrumentation] = col("rs", "ss", "Scope", "Attrs", "Key")
	sc.attrs[TagSpan] = col("rs", "ss", "Spans", "Attrs", "Key")
	sc.attrs[TagEvent] = col("rs", "ss", "Spans", "Events", "Attrs", "Key")
	sc.attrs[TagLink] = col("rs", "ss", "Spans", "Links", "Attrs", "Key")
	for _, d := range []struct{ key, name string }{
		{"service.name", "ServiceName"}, {"k8s.cluster.name", "K8sClusterName"},
		{"k8s.namespace.name", "K8sNamespaceName"}, {"k8s.pod.name", "K8sPodName"},
		{"k8s.container.name", "K8sContainerName"},
	} {
		sc.resDed = append(sc.resDed, dedCol{key: d.key, keyBytes: []byte(d.key), val: col("rs", "Resource", d.name), pos: col("rs", "Resource", d.name+"Pos")})
	}
	for _, d := range []struct {
		key, name string
		isInt     bool
	}{
		{"http.method", "HttpMethod", false}, {"http.request.method", "HttpRequestMethod", false},
		{"http.url", "HttpUrl", false}, {"url.full", "UrlFull", false},
		{"http.status_code", "HttpStatusCode", true}, {"http.response.status_code", "HttpResponseStatusCode", true},
	} {
		sc.spanDed = append(sc.spanDed, dedCol{key: d.key, keyBytes: []byte(d.key), val: col("rs", "ss", "Spans", d.name), pos: col("rs", "ss", "Spans", d.name+"Pos"), isInt: d.isInt})
	}
	return sc
})

// cursor walks the level entries of one cell, keeping the index of the
// next defined value.
type cursor struct {
	pg     *colPage
	i, end int
	v      int
}

func newCursor(x cell) cursor {
	if x.pg == nil {
		return cursor{}
	}
	ls, le := x.pg.levels(x.row)
	v, _ := x.pg.values(x.row)
	return cursor{pg: x.pg, i: ls, end: le, v: v}
}

// next moves to the next entry: ok false at the end; def tells whether
// the entry holds a value (at the column's maximum definition level), and
// then v is its value index.
func (c *cursor) next() (v int, def, ok bool) {
	if c.pg == nil || c.i >= c.end {
		return 0, false, false
	}
	d := c.pg.leaf.maxDef
	if c.pg.def != nil {
		d = c.pg.def[c.i]
	}
	c.i++
	if d == c.pg.leaf.maxDef {
		c.v++
		return c.v - 1, true, true
	}
	return 0, false, true
}

// int64At and friends read value i of a page of that kind.
func (p *colPage) int64At(i int) int64 {
	if p.dict != nil {
		return int64(binary.LittleEndian.Uint64(p.dict.data[8*p.idx[i]:]))
	}
	return int64(binary.LittleEndian.Uint64(p.data[8*i:]))
}

func (p *colPage) int32At(i int) int32 {
	if p.dict != nil {
		return int32(binary.LittleEndian.Uint32(p.dict.data[4*p.idx[i]:]))
	}
	return int32(binary.LittleEndian.Uint32(p.data[4*i:]))
}

func (p *colPage) float64At(i int) float64 {
	return math.Float64frombits(uint64(p.int64At(i)))
}

// cellVisitor receives a row's values. Byte slices alias the pages.
type cellVisitor struct {
	// attr gets every attribute; generic tells one stored in Attrs from one
	// in a dedicated column.
	attr func(sc TagScope, key []byte, kind int32, s []byte, i int64, f float64, generic bool)
	// span gets every span's intrinsics; root tells a span without a
	// parent, svc is its resource's service.name (root spans only).
	span  func(name []byte, kind, status int32, msg []byte, dur uint64, root bool, svc []byte) // nil: spans not walked
	roots func(name, svc []byte)                                                               // nil: not walked
}

// walkCells visits the values of a row's cells (indexed by column).
func walkCells(cells []cell, v *cellVisitor) {
	sc := searchCols()
	if v.attr != nil {
		for _, d := range sc.resDed {
			walkDedicated(cells, d, TagResource, v)
		}
		for _, d := range sc.spanDed {
			walkDedicated(cells, d, TagSpan, v)
		}
		for s, c := range sc.attrs {
			walkAttrs(cells, c, TagScope(s), v)
		}
	}
	if v.span != nil && cells[sc.spanName].pg != nil {
		walkSpans(cells, sc, v)
	}
	if v.roots != nil && cells[sc.rootName].pg != nil {
		n, s := cells[sc.rootName], cells[sc.rootSvc]
		ni, _ := n.pg.values(n.row)
		si, _ := s.pg.values(s.row)
		v.roots(n.pg.bytesAt(ni), s.pg.bytesAt(si))
	}
}

func walkDedicated(cells []cell, d dedCol, sc TagScope, v *cellVisitor) {
	if cells[d.val].pg == nil {
		return
	}
	vals, poss := newCursor(cells[d.val]), newCursor(cells[d.pos])
	for {
		vi, def, ok := vals.next()
		pi, _, _ := poss.next()
		if !ok {
			return
		}
		if !def || poss.pg.int32At(pi) <= 0 {
			continue
		}
		if d.isInt {
			v.attr(sc, d.keyBytes, kindInt, nil, vals.pg.int64At(vi), 0, false)
		} else {
			v.attr(sc, d.keyBytes, kindString, vals.pg.bytesAt(vi), 0, 0, false)
		}
	}
}

// walkAttrs visits an Attrs group: Key, Kind, Str, Int, Double from c on.
func walkAttrs(cells []cell, c int, sc TagScope, v *cellVisitor) {
	if cells[c].pg == nil {
		return
	}
	keys, kinds := newCursor(cells[c]), newCursor(cells[c+1])
	strs, ints, dbls := newCursor(cells[c+2]), newCursor(cells[c+3]), newCursor(cells[c+4])
	for {
		ki, def, ok := keys.next()
		kk, _, _ := kinds.next()
		si, sdef, _ := strs.next()
		ii, idef, _ := ints.next()
		di, ddef, _ := dbls.next()
		if !ok {
			return
		}
		if !def {
			continue
		}
		kind := kinds.pg.int32At(kk)
		var (
			s []byte
			i int64
			f float64
		)
		switch kind {
		case kindString:
			if sdef && strs.pg != nil {
				s = strs.pg.bytesAt(si)
			}
		case kindInt, kindBool:
			if idef && ints.pg != nil {
				i = ints.pg.int64At(ii)
			}
		case kindDouble:
			if ddef && dbls.pg != nil {
				f = dbls.pg.float64At(di)
			}
		}
		v.attr(sc, keys.pg.bytesAt(ki), kind, s, i, f, true)
	}
}

// walkSpans visits the spans of a row.
func walkSpans(cells []cell, sc *searchColumns, v *cellVisitor) {
	// The service.name of each ResourceSpans, in order (nil: none).
	var svcs [][]byte
	svc, pos := newCursor(cells[sc.resDed[0].val]), newCursor(cells[sc.resDed[0].pos])
	for {
		vi, def, ok := svc.next()
		pi, _, _ := pos.next()
		if !ok {
			break
		}
		if !def {
			continue
		}
		var name []byte
		if pos.pg.int32At(pi) > 0 {
			name = svc.pg.bytesAt(vi)
		}
		svcs = append(svcs, name)
	}
	names, kinds, durs := newCursor(cells[sc.spanName]), newCursor(cells[sc.spanKind]), newCursor(cells[sc.spanDur])
	codes, msgs := newCursor(cells[sc.statusCode]), newCursor(cells[sc.statusMsg])
	pidx, pids := newCursor(cells[sc.parentIdx]), newCursor(cells[sc.parentID])
	rs := -1
	for {
		lvl := names.i
		nv, def, ok := names.next()
		kv, _, _ := kinds.next()
		dv, _, _ := durs.next()
		cv, _, _ := codes.next()
		mv, mdef, _ := msgs.next()
		iv, _, _ := pidx.next()
		sv, _, _ := pids.next()
		if !ok {
			break
		}
		if names.pg.rep == nil || names.pg.rep[lvl] <= lvlRS {
			rs++ // entries of a new ResourceSpans
		}
		if !def {
			continue // a ResourceSpans or ScopeSpans without spans
		}
		var msg []byte
		if mdef {
			msg = msgs.pg.bytesAt(mv)
		}
		root := pidx.pg.int32At(iv) == 0 && len(pids.pg.bytesAt(sv)) == 0
		var service []byte
		if root && rs >= 0 && rs < len(svcs) {
			service = svcs[rs]
		}
		v.span(names.pg.bytesAt(nv), kinds.pg.int32At(kv), codes.pg.int32At(cv), msg, uint64(durs.pg.int64At(dv)), root, service)
	}
}
