package traceql

import (
	"encoding/hex"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	"regexp"
	"strings"
	"sync"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Query is a parsed, compiled TraceQL query. It is safe for concurrent use.
type Query struct {
	pipe   *pipeline
	str    string
	report []reportField
	pool   sync.Pool // *state
	// compiled predicates and fields, by node
	preds  map[*expr]predFn
	fields map[*expr]fieldFn
	// shared result values for statuses and kinds
	statusAV, kindAV []*commonv1.AnyValue
}

type fieldFn func(st *state, i int32) value
type predFn func(st *state, i int32) bool

type reportField struct {
	key string
	fn  fieldFn
}

// String returns the query in canonical form; it parses to an equal query.
func (q *Query) String() string { return q.str }

// IsMatchAll reports whether the query is `{ }` or `{ true }` with no pipeline.
func (q *Query) IsMatchAll() bool {
	return len(q.pipe.stages) == 1 && q.pipe.stages[0].kind == stSpanset &&
		q.pipe.stages[0].ss.kind == ssFilter && q.pipe.stages[0].ss.filter == nil
}

func compile(pipe *pipeline) (*Query, error) {
	var b strings.Builder
	pipe.write(&b)
	q := &Query{pipe: pipe, str: b.String(), preds: map[*expr]predFn{}, fields: map[*expr]fieldFn{}}
	c := &compiler{q: q, seen: map[string]bool{}}
	if err := c.pipeline(pipe); err != nil {
		return nil, err
	}
	q.pool.New = func() any { return &state{} }
	for _, n := range statusNames {
		q.statusAV = append(q.statusAV, value{t: vString, s: n}.anyValue())
	}
	for _, n := range kindNames {
		q.kindAV = append(q.kindAV, value{t: vString, s: n}.anyValue())
	}
	return q, nil
}

type compiler struct {
	q    *Query
	seen map[string]bool
}

// noteAll records every field of e for reporting.
func (c *compiler) noteAll(e *expr) {
	if e == nil {
		return
	}
	if e.isField() {
		c.noteReport(e)
		return
	}
	c.noteAll(e.l)
	c.noteAll(e.r)
}

func (c *compiler) pipeline(p *pipeline) error {
	for _, st := range p.stages {
		c.noteAll(st.field)
		for _, f := range st.fields {
			c.noteAll(f)
		}
		switch st.kind {
		case stSpanset:
			if err := c.ss(st.ss); err != nil {
				return err
			}
		case stScalar:
			if st.field != nil {
				c.q.fields[st.field] = c.field(st.field)
			}
		case stBy, stSelect:
			for _, f := range st.fields {
				c.q.fields[f] = c.field(f)
			}
		}
	}
	return nil
}

func (c *compiler) ss(s *ssExpr) error {
	switch s.kind {
	case ssFilter:
		if s.filter != nil {
			c.noteAll(s.filter)
			c.q.preds[s.filter] = c.pred(s.filter)
		}
	case ssBinary:
		if err := c.ss(s.l); err != nil {
			return err
		}
		return c.ss(s.r)
	case ssPipe:
		return c.pipeline(s.pipe)
	}
	return nil
}

// noteReport records a field whose values search results carry on spans.
func (c *compiler) noteReport(e *expr) {
	add := func(id, key string, fn fieldFn) {
		if !c.seen[id] {
			c.seen[id] = true
			c.q.report = append(c.q.report, reportField{key: key, fn: fn})
		}
	}
	switch e.kind {
	case eAttr:
		name := e.name
		switch e.scope {
		case ScopeSpan, ScopeUnscoped:
			add("span."+name, name, func(st *state, i int32) value { return findAttr(st.spans[i].sp.Attributes, name) })
		}
		switch e.scope {
		case ScopeResource, ScopeUnscoped:
			add("resource."+name, name, func(st *state, i int32) value {
				return findAttr(st.spans[i].rs.GetResource().GetAttributes(), name)
			})
		case ScopeInstrumentation:
			add("instrumentation."+name, name, func(st *state, i int32) value {
				return findAttr(st.spans[i].ss.GetScope().GetAttributes(), name)
			})
		}
	case eIntr:
		info := intrinsicInfos[e.intr]
		if info.report {
			add("intrinsic:"+info.canon, info.key, intrinsicField(e.intr))
		}
	}
}

// usesScope reports whether e reads event (or link) fields.
func usesScope(e *expr, event bool) bool {
	if e == nil {
		return false
	}
	switch e.kind {
	case eAttr:
		if event {
			return e.scope == ScopeEvent
		}
		return e.scope == ScopeLink
	case eIntr:
		if event {
			return intrinsicInfos[e.intr].event
		}
		return intrinsicInfos[e.intr].link
	}
	return usesScope(e.l, event) || usesScope(e.r, event)
}

// wrap makes a leaf predicate over event or link fields existential: it
// holds if it holds for some event (link) of the span. A span without
// events is evaluated once with every event field nil.
func wrap(e *expr, p predFn) predFn {
	if usesScope(e, true) {
		inner := p
		p = func(st *state, i int32) bool {
			evs := st.spans[i].sp.Events
			defer func() { st.ev = nil }()
			if len(evs) == 0 {
				st.ev = nil
				return inner(st, i)
			}
			for _, ev := range evs {
				st.ev = ev
				if inner(st, i) {
					return true
				}
			}
			return false
		}
	}
	if usesScope(e, false) {
		inner := p
		p = func(st *state, i int32) bool {
			ls := st.spans[i].sp.Links
			defer func() { st.link = nil }()
			if len(ls) == 0 {
				st.link = nil
				return inner(st, i)
			}
			for _, l := range ls {
				st.link = l
				if inner(st, i) {
					return true
				}
			}
			return false
		}
	}
	return p
}

func (c *compiler) pred(e *expr) predFn {
	switch e.kind {
	case eLit:
		b := e.lit.Type == TypeBool && e.lit.B
		return func(*state, int32) bool { return b }
	case eBin:
		switch e.op {
		case tAnd:
			l, r := c.pred(e.l), c.pred(e.r)
			return func(st *state, i int32) bool { return l(st, i) && r(st, i) }
		case tOr:
			l, r := c.pred(e.l), c.pred(e.r)
			return func(st *state, i int32) bool { return l(st, i) || r(st, i) }
		}
		if isComparison(e.op) {
			return wrap(e, c.comparison(e))
		}
	case eNot:
		if e.l.t == vBool {
			inner := c.pred(e.l)
			return func(st *state, i int32) bool { return !inner(st, i) }
		}
		// `!attr`: true only for a boolean false (Tempo fails on non-booleans)
		f := c.field(e.l)
		return wrap(e.l, func(st *state, i int32) bool { v := f(st, i); return v.t == vBool && v.n == 0 })
	case eExists, eNotExists:
		f := c.field(e.l)
		want := e.kind == eExists
		return wrap(e.l, func(st *state, i int32) bool { return (f(st, i).t != vNil) == want })
	}
	// a field used as a condition: `{ span.cache.hit }` means `= true`
	f := c.field(e)
	t := boolValue(true)
	return wrap(e, func(st *state, i int32) bool { return compare(tEq, f(st, i), t) })
}

func isIDIntrinsic(e *expr) (int, bool) {
	if e.kind != eIntr {
		return 0, false
	}
	switch e.intr {
	case inTraceID, inLinkTraceID:
		return 32, true
	case inSpanID, inParentID, inLinkSpanID:
		return 16, true
	}
	return 0, false
}

// normalizeID pads a hex ID literal with leading zeros to its full width
// and lowercases it, so `trace:id = "abc"` finds trace 000…0abc.
func normalizeID(s string, width int) string {
	if len(s) > width || len(s) == 0 {
		return s
	}
	if _, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2)); err != nil {
		return s
	}
	return strings.Repeat("0", width-len(s)) + strings.ToLower(s)
}

func (c *compiler) comparison(e *expr) predFn {
	l, r := e.l, e.r
	// normalise ID literals
	if w, ok := isIDIntrinsic(l); ok && r.kind == eLit && r.lit.Type == TypeString && (e.op == tEq || e.op == tNe) {
		r = lit(r.pos, Static{Type: TypeString, S: normalizeID(r.lit.S, w)})
	}
	if w, ok := isIDIntrinsic(r); ok && l.kind == eLit && l.lit.Type == TypeString && (e.op == tEq || e.op == tNe) {
		l = lit(l.pos, Static{Type: TypeString, S: normalizeID(l.lit.S, w)})
	}
	lf, rf := c.field(l), c.field(r)
	op := e.op
	if op == tRe || op == tNre {
		re := regexp.MustCompile(anchor(r.lit.S)) // validated by the parser
		match := re.MatchString
		want := op == tRe
		return func(st *state, i int32) bool {
			v := lf(st, i)
			if v.t == vString {
				return match(v.s) == want
			}
			if v.t == vStringArray {
				return compareArray(op, v, nilValue, match)
			}
			return false
		}
	}
	if r.kind == eLit {
		rv := staticValue(r.lit)
		return func(st *state, i int32) bool { return compare(op, lf(st, i), rv) }
	}
	return func(st *state, i int32) bool { return compare(op, lf(st, i), rf(st, i)) }
}

func (c *compiler) field(e *expr) fieldFn {
	switch e.kind {
	case eLit:
		v := staticValue(e.lit)
		return func(*state, int32) value { return v }
	case eAttr:
		return attrField(e.scope, e.name)
	case eIntr:
		return intrinsicField(e.intr)
	case eNeg:
		f := c.field(e.l)
		return func(st *state, i int32) value {
			v := f(st, i)
			switch v.t {
			case vInt, vDuration:
				v.n = -v.n
				return v
			case vFloat:
				v.f = -v.f
				return v
			}
			return nilValue
		}
	case eBin:
		if isArith(e.op) {
			l, r := c.field(e.l), c.field(e.r)
			op := e.op
			return func(st *state, i int32) value { return arith(op, l(st, i), r(st, i)) }
		}
	}
	p := c.pred(e)
	return func(st *state, i int32) value { return boolValue(p(st, i)) }
}

func attrField(scope Scope, name string) fieldFn {
	switch scope {
	case ScopeSpan:
		return func(st *state, i int32) value { return findAttr(st.spans[i].sp.Attributes, name) }
	case ScopeResource:
		return func(st *state, i int32) value { return findAttr(st.spans[i].rs.GetResource().GetAttributes(), name) }
	case ScopeUnscoped:
		return func(st *state, i int32) value {
			if v := findAttr(st.spans[i].sp.Attributes, name); v.t != vNil {
				return v
			}
			return findAttr(st.spans[i].rs.GetResource().GetAttributes(), name)
		}
	case ScopeEvent:
		return func(st *state, _ int32) value {
			if st.ev == nil {
				return nilValue
			}
			return findAttr(st.ev.Attributes, name)
		}
	case ScopeLink:
		return func(st *state, _ int32) value {
			if st.link == nil {
				return nilValue
			}
			return findAttr(st.link.Attributes, name)
		}
	case ScopeInstrumentation:
		return func(st *state, i int32) value { return findAttr(st.spans[i].ss.GetScope().GetAttributes(), name) }
	}
	return func(*state, int32) value { return nilValue }
}

func spanDuration(sp *tracev1.Span) int64 {
	if sp.EndTimeUnixNano < sp.StartTimeUnixNano {
		return 0
	}
	return int64(sp.EndTimeUnixNano - sp.StartTimeUnixNano)
}

func hexValue(b []byte) value {
	if len(b) == 0 {
		return nilValue
	}
	return value{t: vString, s: hex.EncodeToString(b)}
}

func intrinsicField(in intrinsic) fieldFn {
	switch in {
	case inName:
		return func(st *state, i int32) value { return value{t: vString, s: st.spans[i].sp.Name} }
	case inStatus:
		return func(st *state, i int32) value {
			return value{t: vStatus, n: int64(st.spans[i].sp.GetStatus().GetCode())}
		}
	case inStatusMessage:
		return func(st *state, i int32) value {
			return value{t: vString, s: st.spans[i].sp.GetStatus().GetMessage()}
		}
	case inKind:
		return func(st *state, i int32) value { return value{t: vKind, n: int64(st.spans[i].sp.Kind)} }
	case inDuration:
		return func(st *state, i int32) value { return value{t: vDuration, n: spanDuration(st.spans[i].sp)} }
	case inChildCount:
		return func(st *state, i int32) value {
			st.index()
			return value{t: vInt, n: int64(st.children[i])}
		}
	case inSpanID:
		return func(st *state, i int32) value { return hexValue(st.spans[i].sp.SpanId) }
	case inParentID:
		return func(st *state, i int32) value { return hexValue(st.spans[i].sp.ParentSpanId) }
	case inTraceID:
		return func(st *state, i int32) value {
			if s := st.traceID(); s != "" {
				return value{t: vString, s: s}
			}
			return nilValue
		}
	case inRootName:
		// Tempo keeps the root name and service in non-null trace-level
		// columns: a trace without a root has "" for both.
		return func(st *state, _ int32) value {
			if st.root < 0 {
				return value{t: vString}
			}
			return value{t: vString, s: st.spans[st.root].sp.Name}
		}
	case inRootService:
		return func(st *state, _ int32) value {
			if st.root < 0 {
				return value{t: vString}
			}
			// Tempo: the string value of the root resource's first service.name
			for _, kv := range st.spans[st.root].rs.GetResource().GetAttributes() {
				if kv.GetKey() == "service.name" {
					return value{t: vString, s: kv.GetValue().GetStringValue()}
				}
			}
			return value{t: vString}
		}
	case inTraceDuration:
		return func(st *state, _ int32) value {
			return value{t: vDuration, n: int64(st.traceEnd - st.traceStart)}
		}
	case inEventName:
		return func(st *state, _ int32) value {
			if st.ev == nil {
				return nilValue
			}
			return value{t: vString, s: st.ev.Name}
		}
	case inEventTimeSinceStart:
		return func(st *state, i int32) value {
			if st.ev == nil {
				return nilValue
			}
			return value{t: vDuration, n: int64(st.ev.TimeUnixNano - st.spans[i].sp.StartTimeUnixNano)}
		}
	case inLinkTraceID:
		return func(st *state, _ int32) value {
			if st.link == nil {
				return nilValue
			}
			return hexValue(st.link.TraceId)
		}
	case inLinkSpanID:
		return func(st *state, _ int32) value {
			if st.link == nil {
				return nilValue
			}
			return hexValue(st.link.SpanId)
		}
	case inInstrName:
		return func(st *state, i int32) value { return value{t: vString, s: st.spans[i].ss.GetScope().GetName()} }
	case inInstrVersion:
		return func(st *state, i int32) value { return value{t: vString, s: st.spans[i].ss.GetScope().GetVersion()} }
	}
	return func(*state, int32) value { return nilValue }
}
