package traceql

import (
	"errors"
	"strings"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// ErrSpansetOperationMultiple is returned, as by Tempo, when a structural
// operator meets more than one spanset on a side (after by()).
var ErrSpansetOperationMultiple = errors.New("spanset operators are not supported for multiple spansets per trace. consider using coalesce()")

// sset is a spanset during evaluation: span indices into state.spans.
type sset struct {
	spans []int32
	attrs []sattr
}

type sattr struct {
	key string
	v   value
}

func (s *sset) withSpans(spans []int32) *sset {
	return &sset{spans: spans, attrs: s.attrs}
}

// Eval evaluates the query over one whole trace. nil, nil = no match.
// The returned spansets point into td; td must not change while they are used.
func (q *Query) Eval(td *tracev1.TracesData) ([]Spanset, error) {
	st := q.pool.Get().(*state)
	defer func() {
		st.td = nil
		clear(st.spans)
		st.spans = st.spans[:0]
		q.pool.Put(st)
	}()
	st.reset(td)
	if len(st.spans) == 0 {
		return nil, nil
	}
	// the first stage sees one spanset with every span; its storage is
	// reused across Evals (results are exported before the state is
	// returned to the pool)
	st.all = grow(st.all, len(st.spans))
	for i := range st.all {
		st.all[i] = int32(i)
	}
	st.top = sset{spans: st.all}
	st.topIn[0] = &st.top
	out, err := q.evalPipeline(st, q.pipe, st.topIn[:])
	if err != nil {
		return nil, err
	}
	var res []Spanset
	for _, s := range out {
		if len(s.spans) == 0 {
			continue
		}
		res = append(res, q.export(st, s))
	}
	return res, nil
}

func (q *Query) export(st *state, s *sset) Spanset {
	out := Spanset{Spans: make([]MatchedSpan, len(s.spans))}
	for j, i := range s.spans {
		r := st.spans[i]
		ms := MatchedSpan{Resource: r.rs, Scope: r.ss, Span: r.sp}
		for _, rf := range q.report {
			v := rf.fn(st, i)
			var av *commonv1.AnyValue
			switch {
			case v.t == vNil:
				continue
			case v.av != nil:
				av = v.av
			case v.t == vStatus && v.n >= 0 && int(v.n) < len(q.statusAV):
				av = q.statusAV[v.n]
			case v.t == vKind && v.n >= 0 && int(v.n) < len(q.kindAV):
				av = q.kindAV[v.n]
			default:
				av = v.anyValue()
			}
			if ms.Attributes == nil {
				ms.Attributes = make([]*commonv1.KeyValue, 0, len(q.report))
			}
			ms.Attributes = append(ms.Attributes, &commonv1.KeyValue{Key: rf.key, Value: av})
		}
		out.Spans[j] = ms
	}
	for _, a := range s.attrs {
		out.Attributes = append(out.Attributes, &commonv1.KeyValue{Key: a.key, Value: a.v.anyValue()})
	}
	return out
}

func (q *Query) evalPipeline(st *state, p *pipeline, in []*sset) ([]*sset, error) {
	var err error
	for _, stg := range p.stages {
		switch stg.kind {
		case stSpanset:
			var out []*sset
			for _, s := range in {
				var r []*sset
				r, err = q.evalSS(st, stg.ss, s)
				if err != nil {
					return nil, err
				}
				out = append(out, r...)
			}
			in = out
		case stScalar:
			in = q.evalScalar(st, stg, in)
		case stBy:
			in = q.evalBy(st, stg, in)
		case stSelect:
			// selected fields are reported on every result span
		case stCoalesce:
			var spans []int32
			for _, s := range in {
				spans = append(spans, s.spans...)
			}
			in = []*sset{{spans: spans}}
		}
		if len(in) == 0 {
			return nil, nil
		}
	}
	return in, nil
}

func (q *Query) evalSS(st *state, e *ssExpr, in *sset) ([]*sset, error) {
	switch e.kind {
	case ssFilter:
		if e.filter == nil {
			if len(in.spans) == 0 {
				return nil, nil
			}
			return []*sset{in.withSpans(in.spans)}, nil
		}
		p := q.preds[e.filter]
		var spans []int32
		for _, i := range in.spans {
			if p(st, i) {
				spans = append(spans, i)
			}
		}
		if len(spans) == 0 {
			return nil, nil
		}
		return []*sset{in.withSpans(spans)}, nil
	case ssPipe:
		return q.evalPipeline(st, e.pipe, []*sset{in})
	}
	lhs, err := q.evalSS(st, e.l, in)
	if err != nil {
		return nil, err
	}
	rhs, err := q.evalSS(st, e.r, in)
	if err != nil {
		return nil, err
	}
	switch e.op {
	case tAnd, tOr:
		if (e.op == tAnd && len(lhs) > 0 && len(rhs) > 0) || (e.op == tOr && (len(lhs) > 0 || len(rhs) > 0)) {
			return []*sset{in.withSpans(st.union(lhs, rhs))}, nil
		}
		return nil, nil
	}
	if len(rhs) == 0 {
		return nil, nil
	}
	if len(lhs) > 1 || len(rhs) > 1 {
		return nil, ErrSpansetOperationMultiple
	}
	var l []int32
	if len(lhs) == 1 {
		l = lhs[0].spans
	}
	spans := st.structural(e.op, l, rhs[0].spans)
	if len(spans) == 0 {
		return nil, nil
	}
	return []*sset{in.withSpans(spans)}, nil
}

// union returns the spans of all spansets, each once, in trace order.
func (st *state) union(a, b []*sset) []int32 {
	st.markA = growBool(st.markA, len(st.spans))
	n := 0
	for _, side := range [2][]*sset{a, b} {
		for _, s := range side {
			for _, i := range s.spans {
				if !st.markA[i] {
					st.markA[i] = true
					n++
				}
			}
		}
	}
	out := make([]int32, 0, n)
	for i, m := range st.markA {
		if m {
			out = append(out, int32(i))
		}
	}
	return out
}

// structural evaluates `l op r` and returns the matching spans of r (and,
// for the union operators, of l too), in trace order. Disconnected spans
// (see index) take no part on either side and are never returned, not even
// by the negated operators.
func (st *state) structural(op tokKind, l, r []int32) []int32 {
	st.index()
	n := len(st.spans)
	conn := st.conn
	inL := growBool(st.markA, n)
	st.markA = inL
	lc := st.lconn[:0]
	for _, i := range l {
		if conn[i] {
			inL[i] = true
			lc = append(lc, i)
		}
	}
	st.lconn = lc
	rc := st.rconn[:0]
	for _, i := range r {
		if conn[i] {
			rc = append(rc, i)
		}
	}
	st.rconn = rc
	l, r = lc, rc
	keep := growBool(st.markB, n)
	st.markB = keep
	var unionL []int32 // l spans to add for union operators
	switch op {
	case tGt, tNotChild, tUChild: // r is a child of some l
		for _, i := range r {
			p := st.spans[i].parent
			rel := p >= 0 && inL[p]
			keep[i] = rel == (op != tNotChild)
			if rel && op == tUChild {
				unionL = append(unionL, p)
			}
		}
	case tLt, tNotParent, tUParent: // r is the parent of some l
		isParentOfL := growBool(nil, n)
		for _, i := range l {
			if p := st.spans[i].parent; p >= 0 {
				isParentOfL[p] = true
			}
		}
		inR := growBool(nil, n)
		for _, i := range r {
			inR[i] = true
			keep[i] = isParentOfL[i] == (op != tNotParent)
		}
		if op == tUParent {
			for _, i := range l {
				if p := st.spans[i].parent; p >= 0 && inR[p] {
					unionL = append(unionL, i)
				}
			}
		}
	case tDesc, tNotDesc, tUDesc: // r is a descendant of some l
		for _, i := range r {
			rel := false
			for p := st.spans[i].parent; p >= 0; p = st.spans[p].parent {
				if inL[p] {
					rel = true
					if op != tUDesc {
						break
					}
					unionL = append(unionL, p)
				}
			}
			keep[i] = rel == (op != tNotDesc)
		}
	case tAnce, tNotAnce, tUAnce: // r is an ancestor of some l
		isAnc := growBool(nil, n)
		for _, i := range l {
			for p := st.spans[i].parent; p >= 0 && !isAnc[p]; p = st.spans[p].parent {
				isAnc[p] = true
			}
		}
		inR := growBool(nil, n)
		for _, i := range r {
			inR[i] = true
			keep[i] = isAnc[i] == (op != tNotAnce)
		}
		if op == tUAnce {
			for _, i := range l {
				for p := st.spans[i].parent; p >= 0; p = st.spans[p].parent {
					if inR[p] {
						unionL = append(unionL, i)
						break
					}
				}
			}
		}
	case tTilde, tNotSibl, tUSibl: // r has a sibling (same parent, or both roots) in l
		// roots share the virtual parent n
		par := func(i int32) int32 {
			if p := st.spans[i].parent; p >= 0 {
				return p
			}
			return int32(n)
		}
		cnt := grow(st.cnt, n+1)
		st.cnt = cnt
		for _, i := range l {
			cnt[par(i)]++
		}
		for _, i := range r {
			c := cnt[par(i)]
			if inL[i] {
				c--
			}
			keep[i] = (c > 0) == (op != tNotSibl)
		}
		if op == tUSibl {
			// l spans that are siblings of a kept r span
			kept := grow(nil, n+1)
			for _, i := range r {
				if keep[i] {
					kept[par(i)]++
				}
			}
			for _, i := range l {
				c := kept[par(i)]
				if keep[i] {
					c--
				}
				if c > 0 {
					unionL = append(unionL, i)
				}
			}
		}
	}
	for _, i := range unionL {
		keep[i] = true
	}
	var out []int32
	for i, k := range keep {
		if k {
			out = append(out, int32(i))
		}
	}
	return out
}

func (q *Query) evalScalar(st *state, stg *stage, in []*sset) []*sset {
	var out []*sset
	lit := staticValue(stg.val)
	key := stg.aggString()
	for _, s := range in {
		v, ok := q.aggregate(st, stg, s)
		if !ok || !compare(stg.cmp, v, lit) {
			continue
		}
		ns := &sset{spans: s.spans, attrs: append(append([]sattr(nil), s.attrs...), sattr{key: key, v: v})}
		out = append(out, ns)
	}
	return out
}

// aggregate computes count/avg/min/max/sum over a spanset as Tempo does:
// nil values are skipped and a spanset with no value left has no result (it
// is dropped). sum and avg take the type of the first value and add the
// later values of that same type only (others are ignored, but avg still
// counts them); avg of ints is a float, of durations a duration (integer
// division). min and max compare numbers as numbers and values of other
// types by Tempo's type order.
func (q *Query) aggregate(st *state, stg *stage, s *sset) (value, bool) {
	if stg.agg == aggCount {
		return value{t: vInt, n: int64(len(s.spans))}, true
	}
	f := q.fields[stg.field]
	var acc value
	count := 0
	for _, i := range s.spans {
		v := f(st, i)
		if v.t == vNil {
			continue
		}
		v.av = nil
		count++
		if count == 1 {
			acc = v
			continue
		}
		switch stg.agg {
		case aggMin:
			if aggCompare(v, acc) < 0 {
				acc = v
			}
		case aggMax:
			if aggCompare(v, acc) > 0 {
				acc = v
			}
		default:
			if v.t == acc.t {
				switch v.t {
				case vInt, vDuration:
					acc.n += v.n
				case vFloat:
					acc.f += v.f
				}
			}
		}
	}
	if count == 0 {
		return nilValue, false
	}
	if stg.agg == aggAvg {
		switch acc.t {
		case vInt:
			return value{t: vFloat, f: float64(acc.n) / float64(count)}, true
		case vDuration:
			return value{t: vDuration, n: acc.n / int64(count)}, true
		case vFloat:
			return value{t: vFloat, f: acc.f / float64(count)}, true
		}
	}
	return acc, true
}

// tempoTypeOrder ranks types as Tempo's StaticType enum does.
func tempoTypeOrder(t vtype) int {
	switch t {
	case vInt:
		return 3
	case vFloat:
		return 4
	case vString:
		return 5
	case vBool:
		return 6
	case vDuration:
		return 7
	case vStatus:
		return 8
	case vKind:
		return 9
	case vIntArray:
		return 10
	case vFloatArray:
		return 11
	case vStringArray:
		return 12
	case vBoolArray:
		return 13
	}
	return 0
}

// tempoStatus and tempoKind map OTLP codes to Tempo's enum order.
var (
	tempoStatus = [...]int64{2, 1, 0}          // unset, ok, error
	tempoKind   = [...]int64{0, 1, 3, 2, 4, 5} // unspecified, internal, server, client, producer, consumer
)

func aggCompare(a, b value) int {
	if a.t != b.t {
		if a.t.numeric() && b.t.numeric() {
			return cmpFloat(a.float(), b.float())
		}
		return cmpInt(int64(tempoTypeOrder(a.t)), int64(tempoTypeOrder(b.t)))
	}
	switch a.t {
	case vString:
		return strings.Compare(a.s, b.s)
	case vFloat:
		return cmpFloat(a.f, b.f)
	case vStatus:
		if a.n >= 0 && a.n < 3 && b.n >= 0 && b.n < 3 {
			return cmpInt(tempoStatus[a.n], tempoStatus[b.n])
		}
	case vKind:
		if a.n >= 0 && a.n < 6 && b.n >= 0 && b.n < 6 {
			return cmpInt(tempoKind[a.n], tempoKind[b.n])
		}
	case vStringArray, vIntArray, vFloatArray, vBoolArray:
		return 0
	}
	return cmpInt(a.n, b.n)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (q *Query) evalBy(st *state, stg *stage, in []*sset) []*sset {
	f := q.fields[stg.fields[0]]
	key := stg.byKey()
	var out []*sset
	for _, s := range in {
		var groups []*sset
		var vals []value
	spans:
		for _, i := range s.spans {
			v := f(st, i)
			for g, gv := range vals {
				if sameGroup(gv, v) {
					groups[g].spans = append(groups[g].spans, i)
					continue spans
				}
			}
			vals = append(vals, v)
			attrs := append(append([]sattr(nil), s.attrs...), sattr{key: key, v: v})
			groups = append(groups, &sset{spans: []int32{i}, attrs: attrs})
		}
		out = append(out, groups...)
	}
	return out
}

// sameGroup reports whether two by() values fall in the same group: same
// type and value.
func sameGroup(a, b value) bool {
	if a.t != b.t {
		return false
	}
	switch a.t {
	case vString:
		return a.s == b.s
	case vFloat:
		return a.f == b.f || (a.f != a.f && b.f != b.f)
	case vStringArray, vIntArray, vFloatArray, vBoolArray:
		return a.arr == b.arr
	}
	return a.n == b.n
}
