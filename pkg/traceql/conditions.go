package traceql

import "regexp"

// A cform is a boolean formula over conditions, derived from the query,
// that every matching trace satisfies (each leaf: "some span satisfies
// this condition"). fTrue carries no information.
type cform struct {
	kind int // fTrue, fLeaf, fAnd, fOr
	leaf Condition
	kids []cform
}

const (
	fTrue = iota
	fLeaf
	fAnd
	fOr
)

func and(a, b cform) cform {
	var kids []cform
	for _, f := range []cform{a, b} {
		switch f.kind {
		case fTrue:
		case fAnd:
			kids = append(kids, f.kids...)
		default:
			kids = append(kids, f)
		}
	}
	switch len(kids) {
	case 0:
		return cform{}
	case 1:
		return kids[0]
	}
	return cform{kind: fAnd, kids: kids}
}

func or(a, b cform) cform {
	if a.kind == fTrue || b.kind == fTrue {
		return cform{}
	}
	if m, ok := mergeRegex(a, b); ok {
		return m
	}
	var kids []cform
	for _, f := range []cform{a, b} {
		if f.kind == fOr {
			kids = append(kids, f.kids...)
		} else {
			kids = append(kids, f)
		}
	}
	return cform{kind: fOr, kids: kids}
}

// Conditions summarises the query for pushdown. It is conservative: every
// trace that Eval matches satisfies the result (see Conditions). Parts it
// cannot summarise exactly (negation, arithmetic, field-to-field
// comparisons, `= nil`, IDs, events' intrinsics) contribute nothing.
func (q *Query) Conditions() Conditions {
	f := pipeForm(q.pipe)
	same := oneFilter(q.pipe)
	switch f.kind {
	case fLeaf:
		return Conditions{All: true, Conds: []Condition{f.leaf}, SameSpan: same}
	case fAnd:
		var cs []Condition
		for _, k := range f.kids {
			if k.kind == fLeaf {
				cs = append(cs, k.leaf)
			}
		}
		if len(cs) > 0 {
			// The leaves of a top-level && of one filter hold on the
			// span the filter selects.
			return Conditions{All: true, Conds: cs, SameSpan: same}
		}
		for _, k := range f.kids {
			if r := reps(k); len(r) > 0 {
				return Conditions{All: len(r) == 1, Conds: r}
			}
		}
	case fOr:
		if r := reps(f); len(r) > 0 {
			return Conditions{All: len(r) == 1, Conds: r}
		}
	}
	return Conditions{}
}

// reps returns conditions at least one of which holds whenever f holds,
// or nil if there is no such set.
func reps(f cform) []Condition {
	switch f.kind {
	case fLeaf:
		return []Condition{f.leaf}
	case fAnd:
		for _, k := range f.kids {
			if k.kind == fLeaf {
				return []Condition{k.leaf}
			}
		}
		for _, k := range f.kids {
			if r := reps(k); len(r) > 0 {
				return r
			}
		}
	case fOr:
		var out []Condition
		for _, k := range f.kids {
			r := reps(k)
			if len(r) == 0 {
				return nil
			}
			out = append(out, r...)
		}
		return out
	}
	return nil
}

// oneFilter tells whether the pipeline's only spanset stage is a single
// filter `{ ... }`: then every span it yields satisfies the filter's
// top-level && conditions together (later stages only drop, group or
// annotate spans).
func oneFilter(p *pipeline) bool {
	n := 0
	for _, st := range p.stages {
		if st.kind == stSpanset {
			n++
			if st.ss == nil || st.ss.kind != ssFilter {
				return false
			}
		}
	}
	return n == 1
}

func pipeForm(p *pipeline) cform {
	var f cform
	for _, st := range p.stages {
		if st.kind == stSpanset {
			f = and(f, ssForm(st.ss))
		}
	}
	return f
}

func ssForm(s *ssExpr) cform {
	switch s.kind {
	case ssFilter:
		if s.filter == nil {
			return cform{}
		}
		return exprForm(s.filter)
	case ssPipe:
		return pipeForm(s.pipe)
	}
	switch s.op {
	case tOr:
		return or(ssForm(s.l), ssForm(s.r))
	case tNotChild, tNotParent, tNotDesc, tNotAnce, tNotSibl:
		// the left side may be empty
		return ssForm(s.r)
	}
	return and(ssForm(s.l), ssForm(s.r))
}

func exprForm(e *expr) cform {
	switch e.kind {
	case eBin:
		switch e.op {
		case tAnd:
			return and(exprForm(e.l), exprForm(e.r))
		case tOr:
			return or(exprForm(e.l), exprForm(e.r))
		}
		if !isComparison(e.op) {
			return cform{}
		}
		field, lit, op := e.l, e.r, e.op
		if field.kind == eLit {
			field, lit, op = e.r, e.l, flipOp(e.op)
		}
		if lit.kind != eLit || lit.lit.Type == TypeNil || (op == tRe || op == tNre) && field != e.l {
			return cform{}
		}
		sc, name, ok := condField(field)
		if !ok {
			return cform{}
		}
		return cform{kind: fLeaf, leaf: Condition{Scope: sc, Name: name, Op: condOp(op), Value: lit.lit}}
	case eExists:
		sc, name, ok := condField(e.l)
		if !ok || sc == ScopeIntrinsic {
			return cform{}
		}
		return cform{kind: fLeaf, leaf: Condition{Scope: sc, Name: name, Op: OpExists}}
	case eAttr:
		// a bare attribute is `= true`
		return cform{kind: fLeaf, leaf: Condition{Scope: e.scope, Name: e.name, Op: OpEq, Value: Static{Type: TypeBool, B: true}}}
	}
	return cform{}
}

func condField(e *expr) (Scope, string, bool) {
	switch e.kind {
	case eAttr:
		return e.scope, e.name, true
	case eIntr:
		if c := intrinsicInfos[e.intr].cond; c != "" {
			return ScopeIntrinsic, c, true
		}
	}
	return 0, "", false
}

func flipOp(op tokKind) tokKind {
	switch op {
	case tLt:
		return tGt
	case tLe:
		return tGe
	case tGt:
		return tLt
	case tGe:
		return tLe
	}
	return op
}

func condOp(op tokKind) Op {
	switch op {
	case tEq:
		return OpEq
	case tNe:
		return OpNe
	case tLt:
		return OpLt
	case tLe:
		return OpLe
	case tGt:
		return OpGt
	case tGe:
		return OpGe
	case tRe:
		return OpRegex
	}
	return OpNotRegex
}

// mergeRegex turns `f = "a" || f = "b"` (or =~ on the same field) into the
// single equivalent condition `f =~ "a|b"`, which a block can check at
// once: Grafana's query builder writes multi-value filters that way.
func mergeRegex(a, b cform) (cform, bool) {
	pa, oka := regexOf(a)
	pb, okb := regexOf(b)
	if !oka || !okb || a.leaf.Scope != b.leaf.Scope || a.leaf.Name != b.leaf.Name {
		return cform{}, false
	}
	c := a.leaf
	c.Op = OpRegex
	c.Value = Static{Type: TypeString, S: pa + "|" + pb}
	return cform{kind: fLeaf, leaf: c}, true
}

// regexOf returns a regular expression matching exactly what a string
// equality or regex leaf matches.
func regexOf(f cform) (string, bool) {
	if f.kind != fLeaf || f.leaf.Value.Type != TypeString {
		return "", false
	}
	switch f.leaf.Op {
	case OpEq:
		return regexp.QuoteMeta(f.leaf.Value.S), true
	case OpRegex:
		return "(?:" + f.leaf.Value.S + ")", true
	}
	return "", false
}
