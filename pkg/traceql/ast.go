package traceql

import (
	"math"
	"strings"
)

// vtype is the static (parse-time) or dynamic (run-time) type of a value.
type vtype uint8

const (
	vNil vtype = iota
	vString
	vInt
	vFloat
	vBool
	vDuration
	vStatus
	vKind
	vAttr // parse time only: decided by the attribute's value
	// run time only: attribute arrays
	vStringArray
	vIntArray
	vFloatArray
	vBoolArray
)

func (t vtype) numeric() bool { return t == vInt || t == vFloat || t == vDuration }

// matching reports whether two types may meet in a binary operation
// (Tempo: same type, or both numeric; attributes match anything).
func matching(a, b vtype) bool {
	return a == vAttr || b == vAttr || a == b || (a.numeric() && b.numeric())
}

// opValid reports whether op applies to operands of type t.
func opValid(op tokKind, t vtype) bool {
	switch t {
	case vAttr:
		return true
	case vBool:
		return op == tAnd || op == tOr || op == tEq || op == tNe
	case vInt, vFloat, vDuration:
		switch op {
		case tAdd, tSub, tMul, tDiv, tMod, tPow, tEq, tNe, tGt, tGe, tLt, tLe:
			return true
		}
	case vString:
		switch op {
		case tEq, tNe, tRe, tNre, tGt, tGe, tLt, tLe:
			return true
		}
	case vNil, vStatus, vKind:
		return op == tEq || op == tNe
	}
	return false
}

func isComparison(op tokKind) bool {
	switch op {
	case tEq, tNe, tRe, tNre, tGt, tGe, tLt, tLe:
		return true
	}
	return false
}

func isArith(op tokKind) bool {
	switch op {
	case tAdd, tSub, tMul, tDiv, tMod, tPow:
		return true
	}
	return false
}

type exprKind uint8

const (
	eLit exprKind = iota
	eAttr
	eIntr
	eBin
	eNot    // !x
	eNeg    // -x (non-literal)
	eExists // x != nil
	eNotExists
)

// expr is a field expression inside a spanset filter.
type expr struct {
	kind  exprKind
	pos   int
	op    tokKind // eBin
	l, r  *expr   // eBin: both; eNot/eNeg/eExists/eNotExists: l
	lit   Static
	scope Scope // eAttr
	name  string
	intr  intrinsic
	t     vtype
}

func (e *expr) isField() bool { return e.kind == eAttr || e.kind == eIntr }

func (e *expr) String() string {
	var b strings.Builder
	e.write(&b, true)
	return b.String()
}

func (e *expr) write(b *strings.Builder, top bool) {
	switch e.kind {
	case eLit:
		b.WriteString(e.lit.String())
	case eAttr:
		b.WriteString(attrString(e.scope, e.name))
	case eIntr:
		b.WriteString(intrinsicInfos[e.intr].canon)
	case eBin:
		if !top {
			b.WriteByte('(')
		}
		// a unary operator on the left would absorb a following * / % ^
		if e.l.kind == eNeg || e.l.kind == eNot || (e.l.kind == eLit && e.l.lit.negative()) {
			b.WriteByte('(')
			e.l.write(b, false)
			b.WriteByte(')')
		} else {
			e.l.write(b, false)
		}
		b.WriteByte(' ')
		b.WriteString(tokText[e.op])
		b.WriteByte(' ')
		e.r.write(b, false)
		if !top {
			b.WriteByte(')')
		}
	case eNot:
		b.WriteByte('!')
		e.l.write(b, false)
	case eNeg:
		b.WriteByte('-')
		e.l.write(b, false)
	case eExists, eNotExists:
		if !top {
			b.WriteByte('(')
		}
		e.l.write(b, false)
		if e.kind == eExists {
			b.WriteString(" != nil")
		} else {
			b.WriteString(" = nil")
		}
		if !top {
			b.WriteByte(')')
		}
	}
}

func attrString(scope Scope, name string) string {
	prefix := "."
	if scope != ScopeUnscoped {
		prefix = scope.String() + "."
	}
	need := false
	for _, r := range name {
		if !isAttrRune(r) || r == '\\' {
			need = true
			break
		}
	}
	if !need {
		return prefix + name
	}
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('"')
	for i := 0; i < len(name); i++ {
		if name[i] == '"' || name[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(name[i])
	}
	b.WriteByte('"')
	return b.String()
}

type ssKind uint8

const (
	ssFilter ssKind = iota
	ssBinary
	ssPipe // a parenthesised pipeline used as an operand
)

// ssExpr is a spanset expression: a filter, a spanset operation, or a
// wrapped pipeline.
type ssExpr struct {
	kind   ssKind
	pos    int
	filter *expr // ssFilter; nil means `{ }`
	op     tokKind
	l, r   *ssExpr
	pipe   *pipeline
}

func (s *ssExpr) write(b *strings.Builder, top bool) {
	switch s.kind {
	case ssFilter:
		if s.filter == nil {
			b.WriteString("{ true }")
			return
		}
		b.WriteString("{ ")
		s.filter.write(b, true)
		b.WriteString(" }")
	case ssBinary:
		if !top {
			b.WriteByte('(')
		}
		s.l.write(b, false)
		b.WriteByte(' ')
		b.WriteString(tokText[s.op])
		b.WriteByte(' ')
		s.r.write(b, false)
		if !top {
			b.WriteByte(')')
		}
	case ssPipe:
		b.WriteByte('(')
		s.pipe.write(b)
		b.WriteByte(')')
	}
}

type stageKind uint8

const (
	stSpanset stageKind = iota
	stScalar
	stBy
	stSelect
	stCoalesce
)

type aggKind uint8

const (
	aggCount aggKind = iota
	aggAvg
	aggMin
	aggMax
	aggSum
)

var aggNames = [...]string{"count", "avg", "min", "max", "sum"}

type stage struct {
	kind   stageKind
	pos    int
	ss     *ssExpr
	agg    aggKind
	field  *expr // aggregate argument (not for count)
	cmp    tokKind
	val    Static
	fields []*expr // by: one; select: one or more
}

func (st *stage) aggString() string {
	if st.agg == aggCount {
		return "count()"
	}
	return aggNames[st.agg] + "(" + st.field.String() + ")"
}

func (st *stage) write(b *strings.Builder) {
	switch st.kind {
	case stSpanset:
		st.ss.write(b, true)
	case stScalar:
		b.WriteString(st.aggString())
		b.WriteByte(' ')
		b.WriteString(tokText[st.cmp])
		b.WriteByte(' ')
		b.WriteString(st.val.String())
	case stBy:
		b.WriteString("by(")
		b.WriteString(st.fields[0].String())
		b.WriteByte(')')
	case stSelect:
		b.WriteString("select(")
		for i, f := range st.fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(f.String())
		}
		b.WriteByte(')')
	case stCoalesce:
		b.WriteString("coalesce()")
	}
}

// byKey is the spanset attribute key Tempo gives a by() value.
func (st *stage) byKey() string { return "by(" + st.fields[0].String() + ")" }

type pipeline struct {
	stages []*stage
}

func (p *pipeline) write(b *strings.Builder) {
	for i, st := range p.stages {
		if i > 0 {
			b.WriteString(" | ")
		}
		st.write(b)
	}
}

// negative reports whether the literal prints with a leading minus sign.
func (s Static) negative() bool {
	switch s.Type {
	case TypeInt:
		return s.I < 0 && s.I != math.MinInt64
	case TypeFloat:
		return math.Signbit(s.F)
	case TypeDuration:
		return s.D < 0
	}
	return false
}
