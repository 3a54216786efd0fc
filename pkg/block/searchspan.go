package block

import (
	"github.com/rubatodb/rubato/pkg/block/pq"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Span-level checks, for SearchRequest.SameSpan: a row is a candidate only
// if one of its spans satisfies every predicate together, with its own
// resource, scope, events and links. Trace-level predicates (root names,
// traceDuration, unknown intrinsics) are left to the trace-level check and
// count as satisfied here. Like every check of Search, this one answers
// "may match" when unsure (a row whose columns disagree on its shape).

// spanLevel holds one row's per-container predicate masks.
type spanLevel struct {
	res, scope, span []predMask
	spanRS, spanSS   []int32 // the ResourceSpans and ScopeSpans of each span
	base             predMask
}

// grow returns s resized to n zero masks.
func growMasks(s []predMask, n int) []predMask {
	if cap(s) < n {
		return make([]predMask, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// rowSpanOK tells whether some span of the row (its cells) may satisfy
// every predicate at once.
func (sc *scan) rowSpanOK(cells []pq.Cell) bool {
	cols := searchCols()
	sl := &sc.sl
	sl.spanRS, sl.spanSS = sl.spanRS[:0], sl.spanSS[:0]
	if cells[cols.statusCode].Page == nil {
		return true
	}
	rs, ss := -1, -1
	st := pq.NewCursor(cells[cols.statusCode])
	for {
		_, r, d, ok := st.NextLevels()
		if !ok {
			break
		}
		if r <= lvlRS && d >= lvlRS {
			rs++
		}
		if r <= lvlSS && d >= lvlSS {
			ss++
		}
		if d >= lvlSpan {
			sl.spanRS = append(sl.spanRS, int32(rs))
			sl.spanSS = append(sl.spanSS, int32(ss))
		}
	}
	if len(sl.spanRS) == 0 {
		return false // no span can satisfy anything
	}
	sl.res = growMasks(sl.res, rs+1)
	sl.scope = growMasks(sl.scope, ss+1)
	sl.span = growMasks(sl.span, len(sl.spanRS))
	bad := false
	set := func(ms []predMask, k int, m predMask) {
		if k < 0 || k >= len(ms) {
			bad = true
			return
		}
		ms[k] |= m
	}
	for _, d := range cols.resDed {
		walkDedicatedIn(cells, d, lvlRS, func(k int, kind int32, s []byte, i int64) {
			set(sl.res, k, sc.attrMatch(0, TagResource, d.keyBytes, kind, s, i, 0))
		})
	}
	for _, d := range cols.spanDed {
		walkDedicatedIn(cells, d, lvlSpan, func(k int, kind int32, s []byte, i int64) {
			set(sl.span, k, sc.attrMatch(0, TagSpan, d.keyBytes, kind, s, i, 0))
		})
	}
	for t, c := range cols.attrs {
		var ms []predMask
		lvl := byte(lvlSpan)
		switch TagScope(t) {
		case TagResource:
			ms, lvl = sl.res, lvlRS
		case TagInstrumentation:
			ms, lvl = sl.scope, lvlSS
		default:
			ms = sl.span
		}
		walkAttrsIn(cells, c, lvl, func(k int, key []byte, kind int32, s []byte, i int64, f float64) {
			set(ms, k, sc.attrMatch(0, TagScope(t), key, kind, s, i, f))
		})
	}
	if sc.spans && cells[cols.spanName].Page != nil {
		names, kinds, durs := pq.NewCursor(cells[cols.spanName]), pq.NewCursor(cells[cols.spanKind]), pq.NewCursor(cells[cols.spanDur])
		codes, msgs := pq.NewCursor(cells[cols.statusCode]), pq.NewCursor(cells[cols.statusMsg])
		k := 0
		for {
			nv, def, ok := names.Next()
			kv, _, _ := kinds.Next()
			dv, _, _ := durs.Next()
			cv, _, _ := codes.Next()
			mv, mdef, _ := msgs.Next()
			if !ok {
				break
			}
			if !def {
				continue
			}
			var msg []byte
			if mdef {
				msg = msgs.Page.BytesAt(mv)
			}
			set(sl.span, k, sc.spanMatch(0, names.Page.BytesAt(nv), kinds.Page.Int32At(kv), codes.Page.Int32At(cv), msg, uint64(durs.Page.Int64At(dv)), false, nil))
			k++
		}
	}
	if bad {
		return true
	}
	n := len(sc.s.preds)
	for k := range sl.span {
		r, s := sl.spanRS[k], sl.spanSS[k]
		if r < 0 || s < 0 {
			return true
		}
		if satisfies(sl.base|sl.span[k]|sl.res[r]|sl.scope[s], n, true) {
			return true
		}
	}
	return false
}

// walkDedicatedIn visits a dedicated column's values with the ordinal in
// the row of their container (lvl: lvlRS for resource columns, lvlSpan
// for span columns).
func walkDedicatedIn(cells []pq.Cell, d dedCol, lvl byte, fn func(k int, kind int32, s []byte, i int64)) {
	if cells[d.val].Page == nil {
		return
	}
	vals, poss := pq.NewCursor(cells[d.val]), pq.NewCursor(cells[d.pos])
	k := -1
	for {
		vi, r, dl, ok := vals.NextLevels()
		pi, _, _ := poss.Next()
		if !ok {
			return
		}
		if r <= lvl && dl >= lvl {
			k++
		}
		if dl != vals.Page.MaxDef() || poss.Page.Int32At(pi) <= 0 {
			continue
		}
		if d.isInt {
			fn(k, kindInt, nil, vals.Page.Int64At(vi))
		} else {
			fn(k, kindString, vals.Page.BytesAt(vi), 0)
		}
	}
}

// walkAttrsIn is walkAttrs with the ordinal in the row of each
// attribute's container: the group of repetition and definition level
// lvl (lvlRS: resource, lvlSS: scope, lvlSpan: span, for the attributes of
// a span's events and links too).
func walkAttrsIn(cells []pq.Cell, c int, lvl byte, fn func(k int, key []byte, kind int32, s []byte, i int64, f float64)) {
	if cells[c].Page == nil {
		return
	}
	keys, kinds := pq.NewCursor(cells[c]), pq.NewCursor(cells[c+1])
	strs, ints, dbls := pq.NewCursor(cells[c+2]), pq.NewCursor(cells[c+3]), pq.NewCursor(cells[c+4])
	k := -1
	for {
		ki, r, dl, ok := keys.NextLevels()
		kk, _, _ := kinds.Next()
		si, sdef, _ := strs.Next()
		ii, idef, _ := ints.Next()
		di, ddef, _ := dbls.Next()
		if !ok {
			return
		}
		if r <= lvl && dl >= lvl {
			k++
		}
		if dl != keys.Page.MaxDef() {
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
		fn(k, keys.Page.BytesAt(ki), kind, s, i, f)
	}
}

// spanMatchOTLP is rowSpanOK on a decoded trace.
func spanMatchOTLP(ps []pred, base predMask, td *tracev1.TracesData) bool {
	n := len(ps)
	for _, rs := range td.GetResourceSpans() {
		var rm predMask
		for j := range ps {
			if j < maxPrunePreds && ps[j].isAttr(PredResource) && ps[j].matchAttrs(rs.GetResource().GetAttributes()) {
				rm |= 1 << j
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			sm := rm
			for j := range ps {
				if j < maxPrunePreds && ps[j].Scope == PredInstrumentation && ps[j].matchAttrs(ss.GetScope().GetAttributes()) {
					sm |= 1 << j
				}
			}
			for _, sp := range ss.GetSpans() {
				m := base | sm
				for j := range ps {
					if j < maxPrunePreds && m&(1<<j) == 0 && ps[j].Scope != PredTraceIntrinsic && ps[j].matchSpan(sp) {
						m |= 1 << j
					}
				}
				if satisfies(m, n, true) {
					return true
				}
			}
		}
	}
	return false
}
