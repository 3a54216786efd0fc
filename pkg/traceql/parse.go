package traceql

import (
	"math"
	"regexp"
	"strconv"
	"strings"
)

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxDepth = 200

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
	// negated: the next literal is the operand of unary minus (only then
	// is 9223372036854775808 in range)
	negated bool
}

// Parse parses a TraceQL search query. Syntax and type errors are
// *ParseError; valid TraceQL that Rubato does not evaluate (metrics
// functions, hints, parent scope...) is *UnsupportedError.
func Parse(q string) (*Query, error) {
	toks, err := lex(q)
	if err != nil {
		return nil, err
	}
	p := &parser{src: q, toks: toks}
	pipe, err := p.parsePipeline()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tIdent && t.s == "with" {
			return nil, &UnsupportedError{Feature: "query hints with(...)"}
		}
		return nil, p.errAt(t, "unexpected "+t.describe())
	}
	return compile(pipe)
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}

func (p *parser) take() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errAt(t token, msg string) error { return newParseError(p.src, t.pos, msg) }

func (p *parser) expect(k tokKind) (token, error) {
	t := p.peek()
	if t.kind != k {
		return t, p.errAt(t, "expected "+strconv.Quote(tokText[k])+", found "+t.describe())
	}
	return p.take(), nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.errAt(p.peek(), "query nested too deeply")
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

var metricsFuncs = map[string]bool{
	"rate": true, "count_over_time": true, "sum_over_time": true, "avg_over_time": true,
	"min_over_time": true, "max_over_time": true, "quantile_over_time": true,
	"histogram_over_time": true, "compare": true, "topk": true, "bottomk": true,
}

var aggFuncs = map[string]aggKind{"count": aggCount, "avg": aggAvg, "min": aggMin, "max": aggMax, "sum": aggSum}

func (p *parser) parsePipeline() (*pipeline, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	pipe := &pipeline{}
	first := true
	for {
		st, err := p.parseStage(first)
		if err != nil {
			return nil, err
		}
		pipe.stages = append(pipe.stages, st)
		first = false
		if p.peek().kind != tPipe {
			return pipe, nil
		}
		p.take()
	}
}

func (p *parser) parseStage(first bool) (*stage, error) {
	t := p.peek()
	if t.kind == tIdent {
		name := t.s
		if metricsFuncs[name] {
			return nil, &UnsupportedError{Feature: "metrics function " + name + "()"}
		}
		if ak, ok := aggFuncs[name]; ok {
			return p.parseScalarFilter(ak)
		}
		switch name {
		case "by":
			p.take()
			fields, err := p.parseFieldList(1)
			if err != nil {
				return nil, err
			}
			if len(fields) != 1 {
				return nil, p.errAt(t, "by() takes exactly one field")
			}
			if !referencesSpan(fields[0]) {
				return nil, newParseError(p.src, fields[0].pos, "by() needs a field of the span, found "+fields[0].String())
			}
			return &stage{kind: stBy, pos: t.pos, fields: fields}, nil
		case "select":
			p.take()
			fields, err := p.parseFieldList(1)
			if err != nil {
				return nil, err
			}
			for _, f := range fields {
				if !f.isField() {
					return nil, newParseError(p.src, f.pos, "select() takes attributes and intrinsics, found "+f.String())
				}
			}
			return &stage{kind: stSelect, pos: t.pos, fields: fields}, nil
		case "coalesce":
			if first {
				return nil, p.errAt(t, "a pipeline cannot start with coalesce()")
			}
			p.take()
			if _, err := p.expect(tLParen); err != nil {
				return nil, err
			}
			if _, err := p.expect(tRParen); err != nil {
				return nil, err
			}
			return &stage{kind: stCoalesce, pos: t.pos}, nil
		}
		return nil, p.errAt(t, "unknown function or keyword "+strconv.Quote(name))
	}
	ss, err := p.parseSpansetExpr(0)
	if err != nil {
		return nil, err
	}
	return &stage{kind: stSpanset, pos: t.pos, ss: ss}, nil
}

// parseFieldList parses "(" field {"," field} ")".
func (p *parser) parseFieldList(min int) ([]*expr, error) {
	if _, err := p.expect(tLParen); err != nil {
		return nil, err
	}
	var out []*expr
	if p.peek().kind == tRParen && min == 0 {
		p.take()
		return out, nil
	}
	for {
		e, err := p.parseFieldExpr(0)
		if err != nil {
			return nil, err
		}
		if e.kind == eLit {
			return nil, newParseError(p.src, e.pos, "expected a field, found literal "+e.lit.String())
		}
		out = append(out, e)
		t := p.take()
		switch t.kind {
		case tComma:
			continue
		case tRParen:
			return out, nil
		}
		return nil, p.errAt(t, "expected \",\" or \")\", found "+t.describe())
	}
}

func (p *parser) parseScalarFilter(ak aggKind) (*stage, error) {
	t := p.take()
	st := &stage{kind: stScalar, pos: t.pos, agg: ak}
	if _, err := p.expect(tLParen); err != nil {
		return nil, err
	}
	if ak != aggCount {
		f, err := p.parseFieldExpr(0)
		if err != nil {
			return nil, err
		}
		if !(f.t == vAttr || f.t.numeric()) {
			return nil, newParseError(p.src, f.pos, aggNames[ak]+"() needs a numeric field, found "+f.String())
		}
		if !referencesSpan(f) {
			return nil, newParseError(p.src, f.pos, aggNames[ak]+"() needs a field of the span, found "+f.String())
		}
		st.field = f
	}
	if _, err := p.expect(tRParen); err != nil {
		return nil, err
	}
	op := p.take()
	switch op.kind {
	case tEq, tNe, tGt, tGe, tLt, tLe:
	case tAdd, tSub, tMul, tDiv, tMod, tPow:
		return nil, &UnsupportedError{Feature: "arithmetic on aggregates"}
	default:
		if op.kind == tRParen {
			return nil, &UnsupportedError{Feature: "scalar pipeline expressions (an aggregate compared outside its pipeline)"}
		}
		if op.kind == tEOF || op.kind == tPipe {
			return nil, p.errAt(op, aggNames[ak]+"() must be compared with = != > >= < <=")
		}
		return nil, p.errAt(op, "expected a comparison after "+aggNames[ak]+"(), found "+op.describe())
	}
	st.cmp = op.kind
	vt := p.peek()
	neg := false
	if vt.kind == tSub {
		p.take()
		neg = true
	}
	v := p.take()
	switch {
	case v.kind == tInt && (neg || v.i != math.MinInt64):
		st.val = Static{Type: TypeInt, I: v.i}
		if neg {
			st.val.I = -st.val.I
		}
	case v.kind == tFloat:
		st.val = Static{Type: TypeFloat, F: v.f}
		if neg {
			st.val.F = -st.val.F
		}
	case v.kind == tDuration:
		st.val = Static{Type: TypeDuration, D: v.d}
		if neg {
			st.val.D = -st.val.D
		}
	case v.kind == tIdent && (v.s == "minInt" || v.s == "maxInt") && !neg:
		st.val = Static{Type: TypeInt, I: math.MinInt64}
		if v.s == "maxInt" {
			st.val.I = math.MaxInt64
		}
	case v.kind == tIdent && isAggName(v.s):
		return nil, &UnsupportedError{Feature: "comparing two aggregates"}
	default:
		return nil, p.errAt(vt, "an aggregate must be compared with a number or duration, found "+v.describe())
	}
	switch p.peek().kind {
	case tAdd, tSub, tMul, tDiv, tMod, tPow:
		return nil, &UnsupportedError{Feature: "arithmetic in scalar filters"}
	}
	return st, nil
}

func (t Type) numericStatic() bool { return t == TypeInt || t == TypeFloat || t == TypeDuration }

// Spanset operator precedence, as Tempo's grammar: && and || share the
// lowest level (left associative, so `{a} || {b} && {c}` is
// `({a} || {b}) && {c}`), structural operators bind tighter.
func ssPrec(k tokKind) int {
	switch k {
	case tOr, tAnd:
		return 1
	case tGt, tLt, tDesc, tAnce, tTilde, tNotChild, tNotDesc, tNotParent, tNotAnce, tNre,
		tUChild, tUDesc, tUParent, tUAnce, tUSibl:
		return 2
	}
	return 0
}

func (p *parser) parseSpansetExpr(minPrec int) (*ssExpr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	lhs, err := p.parseSpansetPrimary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		prec := ssPrec(t.kind)
		if prec == 0 || prec <= minPrec {
			return lhs, nil
		}
		p.take()
		rhs, err := p.parseSpansetExpr(prec)
		if err != nil {
			return nil, err
		}
		op := t.kind
		if op == tNre {
			op = tNotSibl
		}
		lhs = &ssExpr{kind: ssBinary, pos: t.pos, op: op, l: lhs, r: rhs}
	}
}

func (p *parser) parseSpansetPrimary() (*ssExpr, error) {
	t := p.peek()
	switch t.kind {
	case tLBrace:
		p.take()
		if p.peek().kind == tRBrace {
			p.take()
			return &ssExpr{kind: ssFilter, pos: t.pos}, nil
		}
		e, err := p.parseFieldExpr(0)
		if err != nil {
			return nil, err
		}
		if !(e.t == vBool || e.t == vAttr) {
			return nil, newParseError(p.src, e.pos, "a spanset filter must be a boolean expression, found "+e.String())
		}
		if _, err := p.expect(tRBrace); err != nil {
			return nil, err
		}
		if e.kind == eLit && e.lit.Type == TypeBool && e.lit.B {
			e = nil // { true } is { }
		}
		return &ssExpr{kind: ssFilter, pos: t.pos, filter: e}, nil
	case tLParen:
		p.take()
		pipe, err := p.parsePipeline()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen); err != nil {
			return nil, err
		}
		if len(pipe.stages) == 1 && pipe.stages[0].kind == stSpanset {
			return pipe.stages[0].ss, nil
		}
		return &ssExpr{kind: ssPipe, pos: t.pos, pipe: pipe}, nil
	}
	if t.kind == tIdent && metricsFuncs[t.s] {
		return nil, &UnsupportedError{Feature: "metrics function " + t.s + "()"}
	}
	return nil, p.errAt(t, "expected a spanset filter \"{ ... }\", found "+t.describe())
}

// Field expression precedence levels, as Tempo's grammar: && and || share
// the lowest level; then comparisons; + -; unary ! and - (whose operand
// absorbs * / % ^, so -2^2 is -(2^2)); * / %; ^ (right associative).
const (
	precLogic = iota + 1
	precCmp
	precAdd
	precMul
	precPow
)

func fieldPrec(k tokKind) int {
	switch k {
	case tOr, tAnd:
		return precLogic
	case tEq, tNe, tRe, tNre, tGt, tGe, tLt, tLe:
		return precCmp
	case tAdd, tSub:
		return precAdd
	case tMul, tDiv, tMod:
		return precMul
	case tPow:
		return precPow
	}
	return 0
}

// parseFieldExpr parses a field expression whose binary operators bind
// tighter than minPrec.
func (p *parser) parseFieldExpr(minPrec int) (*expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	lhs, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		prec := fieldPrec(t.kind)
		if prec == 0 || prec <= minPrec {
			return lhs, nil
		}
		p.take()
		next := prec
		if t.kind == tPow {
			next = prec - 1 // right associative
		}
		rhs, err := p.parseFieldExpr(next)
		if err != nil {
			return nil, err
		}
		lhs, err = p.binary(t, lhs, rhs)
		if err != nil {
			return nil, err
		}
	}
}

func (p *parser) binary(t token, l, r *expr) (*expr, error) {
	op := t.kind
	lnil := l.kind == eLit && l.lit.Type == TypeNil
	rnil := r.kind == eLit && r.lit.Type == TypeNil
	if lnil && rnil && (op == tEq || op == tNe) {
		return lit(t.pos, Static{Type: TypeBool}), nil // Tempo: nil = nil and nil != nil are false
	}
	// `x = nil` / `x != nil`: existence tests
	if (op == tEq || op == tNe) && lnil != rnil {
		f := l
		if lnil {
			f = r
		}
		k := eExists
		if op == tEq {
			k = eNotExists
		}
		return &expr{kind: k, pos: t.pos, l: f, t: vBool}, nil
	}
	if !matching(l.t, r.t) {
		return nil, p.errAt(t, "binary operations must operate on the same type: "+l.String()+" "+tokText[op]+" "+r.String())
	}
	if !opValid(op, l.t) || !opValid(op, r.t) {
		return nil, p.errAt(t, "illegal operation for the given types: "+l.String()+" "+tokText[op]+" "+r.String())
	}
	e := &expr{kind: eBin, pos: t.pos, op: op, l: l, r: r}
	switch {
	case isComparison(op) || op == tAnd || op == tOr:
		e.t = vBool
	case l.t != vAttr:
		// Tempo: arithmetic takes its left operand's type, or the right
		// one's when the left is an attribute
		e.t = l.t
	default:
		e.t = r.t
	}
	if (op == tRe || op == tNre) && r.kind == eLit {
		if _, err := regexp.Compile(anchor(r.lit.S)); err != nil {
			return nil, newParseError(p.src, r.pos, "invalid regular expression "+strconv.Quote(r.lit.S)+": "+err.Error())
		}
	}
	if (op == tRe || op == tNre) && r.kind != eLit {
		return nil, &UnsupportedError{Feature: "regular expression that is not a string literal"}
	}
	return e, nil
}

func anchor(re string) string { return "^(?:" + re + ")$" }

func (p *parser) parseUnary() (*expr, error) {
	t := p.peek()
	switch t.kind {
	case tNot:
		p.take()
		x, err := p.parseFieldExpr(precAdd)
		if err != nil {
			return nil, err
		}
		if !(x.t == vBool || x.t == vAttr) {
			return nil, p.errAt(t, "! needs a boolean operand, found "+x.String())
		}
		return &expr{kind: eNot, pos: t.pos, l: x, t: vBool}, nil
	case tSub:
		p.take()
		p.negated = true
		x, err := p.parseFieldExpr(precAdd)
		p.negated = false
		if err != nil {
			return nil, err
		}
		if x.kind == eLit {
			switch x.lit.Type {
			case TypeInt:
				x.lit.I = -x.lit.I
				x.pos = t.pos
				return x, nil
			case TypeFloat:
				x.lit.F = -x.lit.F
				x.pos = t.pos
				return x, nil
			case TypeDuration:
				x.lit.D = -x.lit.D
				x.pos = t.pos
				return x, nil
			}
		}
		if !(x.t == vAttr || x.t.numeric()) {
			return nil, p.errAt(t, "unary - needs a numeric operand, found "+x.String())
		}
		return &expr{kind: eNeg, pos: t.pos, l: x, t: x.t}, nil
	}
	neg := p.negated
	p.negated = false
	return p.parsePrimary(neg)
}

func (p *parser) parsePrimary(negated bool) (*expr, error) {
	t := p.take()
	switch t.kind {
	case tLParen:
		e, err := p.parseFieldExpr(0)
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen); err != nil {
			return nil, err
		}
		return e, nil
	case tString:
		return lit(t.pos, Static{Type: TypeString, S: t.s}), nil
	case tInt:
		if t.i == math.MinInt64 && !negated {
			return nil, p.errAt(t, "integer out of range "+t.text)
		}
		return lit(t.pos, Static{Type: TypeInt, I: t.i}), nil
	case tFloat:
		return lit(t.pos, Static{Type: TypeFloat, F: t.f}), nil
	case tDuration:
		return lit(t.pos, Static{Type: TypeDuration, D: t.d}), nil
	case tAttr:
		return &expr{kind: eAttr, pos: t.pos, scope: t.scope, name: t.s, t: vAttr}, nil
	case tIntrinsic:
		return &expr{kind: eIntr, pos: t.pos, intr: t.intr, t: intrinsicInfos[t.intr].typ}, nil
	case tIdent:
		switch t.s {
		case "true", "false":
			return lit(t.pos, Static{Type: TypeBool, B: t.s == "true"}), nil
		case "nil":
			return lit(t.pos, Static{Type: TypeNil}), nil
		case "minInt":
			return lit(t.pos, Static{Type: TypeInt, I: math.MinInt64}), nil
		case "maxInt":
			return lit(t.pos, Static{Type: TypeInt, I: math.MaxInt64}), nil
		}
		for i, n := range statusNames {
			if n == t.s {
				return lit(t.pos, Static{Type: TypeStatus, Status: Status(i)}), nil
			}
		}
		for i, n := range kindNames {
			if n == t.s {
				return lit(t.pos, Static{Type: TypeKind, Kind: Kind(i)}), nil
			}
		}
		if t.s == "parent" {
			return nil, &UnsupportedError{Feature: "intrinsic parent"}
		}
		if strings.HasPrefix(t.s, "nestedSet") {
			return nil, &UnsupportedError{Feature: "intrinsic " + t.s}
		}
		return nil, p.errAt(t, "unknown identifier "+strconv.Quote(t.s)+" (attributes need a scope: .name, span.name, resource.name)")
	}
	return nil, p.errAt(t, "expected a field or value, found "+t.describe())
}

func lit(pos int, s Static) *expr {
	return &expr{kind: eLit, pos: pos, lit: s, t: staticVType(s.Type)}
}

func staticVType(t Type) vtype {
	switch t {
	case TypeString:
		return vString
	case TypeInt:
		return vInt
	case TypeFloat:
		return vFloat
	case TypeBool:
		return vBool
	case TypeDuration:
		return vDuration
	case TypeStatus:
		return vStatus
	case TypeKind:
		return vKind
	}
	return vNil
}

// referencesSpan reports whether e reads an attribute or intrinsic.
func referencesSpan(e *expr) bool {
	if e == nil {
		return false
	}
	return e.isField() || referencesSpan(e.l) || referencesSpan(e.r)
}

func isAggName(s string) bool {
	_, ok := aggFuncs[s]
	return ok
}
