package block

import (
	"sync"

	"github.com/rubatodb/rubato/pkg/block/pq"
)

// Walking a row's searchable values straight from its cells (pq.Cell),
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
func walkCells(cells []pq.Cell, v *cellVisitor) {
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
	if v.span != nil && cells[sc.spanName].Page != nil {
		walkSpans(cells, sc, v)
	}
	if v.roots != nil && cells[sc.rootName].Page != nil {
		n, s := cells[sc.rootName], cells[sc.rootSvc]
		ni, _ := n.Page.Values(n.Row)
		si, _ := s.Page.Values(s.Row)
		v.roots(n.Page.BytesAt(ni), s.Page.BytesAt(si))
	}
}

func walkDedicated(cells []pq.Cell, d dedCol, sc TagScope, v *cellVisitor) {
	if cells[d.val].Page == nil {
		return
	}
	vals, poss := pq.NewCursor(cells[d.val]), pq.NewCursor(cells[d.pos])
	for {
		vi, def, ok := vals.Next()
		pi, _, _ := poss.Next()
		if !ok {
			return
		}
		if !def || poss.Page.Int32At(pi) <= 0 {
			continue
		}
		if d.isInt {
			v.attr(sc, d.keyBytes, kindInt, nil, vals.Page.Int64At(vi), 0, false)
		} else {
			v.attr(sc, d.keyBytes, kindString, vals.Page.BytesAt(vi), 0, 0, false)
		}
	}
}

// walkAttrs visits an Attrs group: Key, Kind, Str, Int, Double from c on.
func walkAttrs(cells []pq.Cell, c int, sc TagScope, v *cellVisitor) {
	if cells[c].Page == nil {
		return
	}
	keys, kinds := pq.NewCursor(cells[c]), pq.NewCursor(cells[c+1])
	strs, ints, dbls := pq.NewCursor(cells[c+2]), pq.NewCursor(cells[c+3]), pq.NewCursor(cells[c+4])
	for {
		ki, def, ok := keys.Next()
		kk, _, _ := kinds.Next()
		si, sdef, _ := strs.Next()
		ii, idef, _ := ints.Next()
		di, ddef, _ := dbls.Next()
		if !ok {
			return
		}
		if !def {
			continue
		}
		kind := kinds.Page.Int32At(kk)
		var (
			s []byte
			i int64
			f float64
		)
		switch kind {
		case kindString:
			if sdef && strs.Page != nil {
				s = strs.Page.BytesAt(si)
			}
		case kindInt, kindBool:
			if idef && ints.Page != nil {
				i = ints.Page.Int64At(ii)
			}
		case kindDouble:
			if ddef && dbls.Page != nil {
				f = dbls.Page.Float64At(di)
			}
		}
		v.attr(sc, keys.Page.BytesAt(ki), kind, s, i, f, true)
	}
}

// walkSpans visits the spans of a row.
func walkSpans(cells []pq.Cell, sc *searchColumns, v *cellVisitor) {
	// The service.name of each ResourceSpans, in order (nil: none).
	var svcs [][]byte
	svc, pos := pq.NewCursor(cells[sc.resDed[0].val]), pq.NewCursor(cells[sc.resDed[0].pos])
	for {
		vi, def, ok := svc.Next()
		pi, _, _ := pos.Next()
		if !ok {
			break
		}
		if !def {
			continue
		}
		var name []byte
		if pos.Page.Int32At(pi) > 0 {
			name = svc.Page.BytesAt(vi)
		}
		svcs = append(svcs, name)
	}
	names, kinds, durs := pq.NewCursor(cells[sc.spanName]), pq.NewCursor(cells[sc.spanKind]), pq.NewCursor(cells[sc.spanDur])
	codes, msgs := pq.NewCursor(cells[sc.statusCode]), pq.NewCursor(cells[sc.statusMsg])
	pidx, pids := pq.NewCursor(cells[sc.parentIdx]), pq.NewCursor(cells[sc.parentID])
	rs := -1
	for {
		nv, rep, dl, ok := names.NextLevels()
		def := ok && dl == names.Page.MaxDef()
		kv, _, _ := kinds.Next()
		dv, _, _ := durs.Next()
		cv, _, _ := codes.Next()
		mv, mdef, _ := msgs.Next()
		iv, _, _ := pidx.Next()
		sv, _, _ := pids.Next()
		if !ok {
			break
		}
		if rep <= lvlRS {
			rs++ // entries of a new ResourceSpans
		}
		if !def {
			continue // a ResourceSpans or ScopeSpans without spans
		}
		var msg []byte
		if mdef {
			msg = msgs.Page.BytesAt(mv)
		}
		root := pidx.Page.Int32At(iv) == 0 && len(pids.Page.BytesAt(sv)) == 0
		var service []byte
		if root && rs >= 0 && rs < len(svcs) {
			service = svcs[rs]
		}
		v.span(names.Page.BytesAt(nv), kinds.Page.Int32At(kv), codes.Page.Int32At(cv), msg, uint64(durs.Page.Int64At(dv)), root, service)
	}
}
