package block

import (
	"fmt"
	"math"
	"regexp"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Search predicates: the block's view of a query's conditions (pkg/search
// converts TraceQL into them; this package knows nothing of TraceQL). A
// predicate is checked conservatively everywhere: against the search index,
// against column values and against decoded traces it answers "may some
// span (with its resource, scope, events and links) of the trace satisfy
// it?", and answers yes whenever it is unsure.

// PredScope says where a predicate's Key is looked up.
type PredScope int

// Predicate scopes.
const (
	_                   PredScope = iota
	PredResource                  // resource attribute
	PredSpan                      // span attribute
	PredUnscoped                  // span or resource attribute
	PredEvent                     // span event attribute
	PredLink                      // span link attribute
	PredInstrumentation           // instrumentation scope attribute
	// PredSpanIntrinsic: Key is one of name, status, kind, duration,
	// statusMessage. Other keys are never pruned on.
	PredSpanIntrinsic
	// PredTraceIntrinsic: Key is one of rootName, rootServiceName,
	// traceDuration. Other keys are never pruned on.
	PredTraceIntrinsic
)

// PredOp is a predicate's comparison.
type PredOp int

// Predicate operators. PredNe and PredNotRegex need the attribute to be
// present (TraceQL: a span lacking the attribute does not match `!=`);
// PredExists is `!= nil`. Regexes are RE2.
const (
	_ PredOp = iota
	PredEq
	PredNe
	PredLt
	PredLe
	PredGt
	PredGe
	PredRegex
	PredNotRegex
	PredExists
)

// ValType is the type of a predicate's literal.
type ValType int

// Literal types. ValDuration, ValStatus and ValKind keep their value in
// PredValue.Int: nanoseconds, the OTLP status code (0 unset, 1 ok, 2
// error) and the OTLP span kind (0 unspecified, 1 internal, 2 server, 3
// client, 4 producer, 5 consumer).
const (
	_ ValType = iota
	ValString
	ValInt
	ValFloat
	ValBool
	ValDuration
	ValStatus
	ValKind
)

// PredValue is a predicate's literal (unused for PredExists).
type PredValue struct {
	Type  ValType
	Str   string
	Int   int64
	Float float64
	Bool  bool
}

// Predicate is one condition of a search.
type Predicate struct {
	Scope PredScope
	Key   string
	Op    PredOp
	Value PredValue
}

// Span intrinsic names (PredSpanIntrinsic) and trace intrinsic names
// (PredTraceIntrinsic) this package prunes on.
const (
	IntrinsicName            = "name"
	IntrinsicStatus          = "status"
	IntrinsicKind            = "kind"
	IntrinsicDuration        = "duration"
	IntrinsicStatusMessage   = "statusMessage"
	IntrinsicRootName        = "rootName"
	IntrinsicRootServiceName = "rootServiceName"
	IntrinsicTraceDuration   = "traceDuration"
)

func (p Predicate) String() string {
	return fmt.Sprintf("{scope %d %q op %d %+v}", p.Scope, p.Key, p.Op, p.Value)
}

// pred is a compiled predicate.
type pred struct {
	Predicate
	re     *regexp.Regexp // PredRegex: unanchored (matches a superset of anchored)
	reFull *regexp.Regexp // PredNotRegex: anchored (its non-matches are a superset)
	// intrinsic is the intrinsic's index, or -1 for attributes and
	// intrinsics this package does not know (which always may match).
	intrinsic int
}

// Intrinsic indexes (pred.intrinsic).
const (
	inName = iota
	inStatus
	inKind
	inDuration
	inStatusMessage
	inRootName
	inRootServiceName
	inTraceDuration
	numIntrinsics
)

var intrinsicNames = [numIntrinsics]string{
	IntrinsicName, IntrinsicStatus, IntrinsicKind, IntrinsicDuration, IntrinsicStatusMessage,
	IntrinsicRootName, IntrinsicRootServiceName, IntrinsicTraceDuration,
}

// compilePreds validates and compiles ps.
func compilePreds(ps []Predicate) ([]pred, error) {
	out := make([]pred, len(ps))
	for i, p := range ps {
		c := pred{Predicate: p, intrinsic: -1}
		if p.Scope < PredResource || p.Scope > PredTraceIntrinsic {
			return nil, fmt.Errorf("search predicate %d: unknown scope %d", i, p.Scope)
		}
		if p.Op < PredEq || p.Op > PredExists {
			return nil, fmt.Errorf("search predicate %d: unknown operator %d", i, p.Op)
		}
		if p.Op != PredExists && (p.Value.Type < ValString || p.Value.Type > ValKind) {
			return nil, fmt.Errorf("search predicate %d: unknown value type %d", i, p.Value.Type)
		}
		switch p.Op {
		case PredRegex, PredNotRegex:
			if p.Value.Type != ValString {
				return nil, fmt.Errorf("search predicate %d: regex needs a string", i)
			}
			re, err := regexp.Compile(p.Value.Str)
			if err != nil {
				return nil, fmt.Errorf("search predicate %d: %w", i, err)
			}
			full, err := regexp.Compile("^(?:" + p.Value.Str + ")$")
			if err != nil {
				return nil, fmt.Errorf("search predicate %d: %w", i, err)
			}
			c.re, c.reFull = re, full
		}
		if p.Scope == PredSpanIntrinsic || p.Scope == PredTraceIntrinsic {
			for j, n := range intrinsicNames {
				if n == p.Key && (j >= inRootName) == (p.Scope == PredTraceIntrinsic) {
					c.intrinsic = j
				}
			}
		}
		out[i] = c
	}
	return out, nil
}

// isAttr tells whether the predicate is about attributes of scope s
// (PredResource, PredSpan, PredEvent, PredLink or PredInstrumentation).
func (p *pred) isAttr(s PredScope) bool {
	return p.Scope == s || (p.Scope == PredUnscoped && (s == PredResource || s == PredSpan))
}

// numeric returns the literal as a number, if it is one.
func (p *pred) numeric() (i int64, f float64, isInt, ok bool) {
	switch p.Value.Type {
	case ValInt, ValDuration, ValStatus, ValKind:
		return p.Value.Int, float64(p.Value.Int), true, true
	case ValFloat:
		return 0, p.Value.Float, false, true
	}
	return 0, 0, false, false
}

func cmpOp[T int64 | float64 | string](op PredOp, a, b T) bool {
	switch op {
	case PredEq:
		return a == b
	case PredNe:
		return a != b
	case PredLt:
		return a < b
	case PredLe:
		return a <= b
	case PredGt:
		return a > b
	case PredGe:
		return a >= b
	}
	return true
}

// matchStr tells whether a string value may satisfy p.
func (p *pred) matchStr(s string) bool {
	switch p.Op {
	case PredExists:
		return true
	case PredRegex:
		return p.re.MatchString(s)
	case PredNotRegex:
		return !p.reFull.MatchString(s)
	}
	switch p.Value.Type {
	case ValString:
		return cmpOp(p.Op, s, p.Value.Str)
	case ValStatus, ValKind:
		return true // not a TraceQL comparison this package knows: keep
	}
	return false
}

// matchInt tells whether an int value may satisfy p.
func (p *pred) matchInt(v int64) bool {
	switch p.Op {
	case PredExists, PredRegex, PredNotRegex:
		return true
	}
	i, f, isInt, ok := p.numeric()
	switch {
	case !ok:
		return false
	case isInt:
		return cmpOp(p.Op, v, i)
	}
	return cmpFloat(p.Op, float64(v), f)
}

// matchFloat tells whether a float value may satisfy p.
func (p *pred) matchFloat(v float64) bool {
	switch p.Op {
	case PredExists, PredRegex, PredNotRegex:
		return true
	}
	_, f, _, ok := p.numeric()
	if !ok {
		return false
	}
	return cmpFloat(p.Op, v, f)
}

// cmpFloat compares floats; a NaN may satisfy anything (kept).
func cmpFloat(op PredOp, a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return true
	}
	return cmpOp(op, a, b)
}

// matchBool tells whether a bool value may satisfy p.
func (p *pred) matchBool(v bool) bool {
	switch p.Op {
	case PredExists, PredRegex, PredNotRegex:
		return true
	}
	if p.Value.Type != ValBool {
		return p.Value.Type == ValStatus || p.Value.Type == ValKind
	}
	switch p.Op {
	case PredEq:
		return v == p.Value.Bool
	case PredNe:
		return v != p.Value.Bool
	}
	return true
}

// matchAny tells whether an OTLP attribute value may satisfy p. Values of
// other types (bytes, arrays, maps, none) may match anything.
func (p *pred) matchAny(v *commonv1.AnyValue) bool {
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		return p.matchStr(x.StringValue)
	case *commonv1.AnyValue_IntValue:
		return p.matchInt(x.IntValue)
	case *commonv1.AnyValue_DoubleValue:
		return p.matchFloat(x.DoubleValue)
	case *commonv1.AnyValue_BoolValue:
		return p.matchBool(x.BoolValue)
	}
	return true
}

func (p *pred) matchAttrs(kvs []*commonv1.KeyValue) bool {
	for _, kv := range kvs {
		if kv.GetKey() == p.Key && p.matchAny(kv.GetValue()) {
			return true
		}
	}
	return false
}

// matchDuration tells whether a duration of end-start may satisfy p; a
// span ending before it starts may match anything.
func (p *pred) matchDuration(start, end uint64) bool {
	if end < start || end-start > math.MaxInt64 {
		return true
	}
	return p.matchInt(int64(end - start))
}

// matchTrace tells whether the decoded trace may satisfy p.
func (p *pred) matchTrace(td *tracev1.TracesData) bool {
	if p.Scope == PredTraceIntrinsic {
		return p.matchTraceIntrinsic(td)
	}
	for _, rs := range td.GetResourceSpans() {
		if p.isAttr(PredResource) && p.matchAttrs(rs.GetResource().GetAttributes()) {
			return true
		}
		for _, ss := range rs.GetScopeSpans() {
			if p.isAttr(PredInstrumentation) && p.matchAttrs(ss.GetScope().GetAttributes()) {
				return true
			}
			for _, sp := range ss.GetSpans() {
				if p.matchSpan(sp) {
					return true
				}
			}
		}
	}
	return false
}

func (p *pred) matchSpan(sp *tracev1.Span) bool {
	switch {
	case p.isAttr(PredSpan):
		return p.matchAttrs(sp.GetAttributes())
	case p.Scope == PredEvent:
		for _, e := range sp.GetEvents() {
			if p.matchAttrs(e.GetAttributes()) {
				return true
			}
		}
	case p.Scope == PredLink:
		for _, l := range sp.GetLinks() {
			if p.matchAttrs(l.GetAttributes()) {
				return true
			}
		}
	case p.Scope == PredSpanIntrinsic:
		switch p.intrinsic {
		case inName:
			return p.matchStr(sp.GetName())
		case inStatus:
			return p.matchInt(int64(sp.GetStatus().GetCode()))
		case inKind:
			return p.matchInt(int64(sp.GetKind()))
		case inDuration:
			return p.matchDuration(sp.GetStartTimeUnixNano(), sp.GetEndTimeUnixNano())
		case inStatusMessage:
			return p.matchStr(sp.GetStatus().GetMessage())
		}
		return true
	}
	return false
}

// matchTraceIntrinsic checks a trace-level intrinsic. Every span without a
// parent counts as a root; a trace without one may match anything.
func (p *pred) matchTraceIntrinsic(td *tracev1.TracesData) bool {
	switch p.intrinsic {
	case inRootName, inRootServiceName:
		roots := 0
		for _, rs := range td.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					if len(sp.GetParentSpanId()) != 0 {
						continue
					}
					roots++
					if p.intrinsic == inRootName && p.matchStr(sp.GetName()) {
						return true
					}
					if p.intrinsic == inRootServiceName && p.matchStr(serviceName(rs.GetResource().GetAttributes())) {
						return true
					}
				}
			}
		}
		return roots == 0
	case inTraceDuration:
		var start, end uint64
		for _, rs := range td.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				for _, sp := range ss.GetSpans() {
					if s := sp.GetStartTimeUnixNano(); s != 0 && (start == 0 || s < start) {
						start = s
					}
					end = max(end, sp.GetEndTimeUnixNano())
				}
			}
		}
		return p.matchTraceDuration(start, end)
	}
	return true
}

// matchTraceDuration checks traceDuration over a trace spanning
// [start, end] (start: earliest non-zero span start). The duration is
// end-start, 0 when negative.
func (p *pred) matchTraceDuration(start, end uint64) bool {
	if end <= start {
		return p.matchInt(0)
	}
	return p.matchDuration(start, end)
}

// serviceName returns the first string service.name attribute, or "".
func serviceName(kvs []*commonv1.KeyValue) string {
	for _, kv := range kvs {
		if kv.GetKey() == "service.name" {
			if s, ok := kv.GetValue().GetValue().(*commonv1.AnyValue_StringValue); ok {
				return s.StringValue
			}
		}
	}
	return ""
}

// predMask is a set of predicates by index (searches have at most 64
// predicates that prune; the rest are treated as always satisfiable).
type predMask uint64

// maxPrunePreds is how many predicates of a search are used to prune.
const maxPrunePreds = 64

// want returns the mask a trace must cover: with all, every predicate;
// else any one.
func wantMask(n int) predMask {
	if n >= maxPrunePreds {
		return ^predMask(0)
	}
	return predMask(1)<<n - 1
}

// satisfies tells whether the set m of predicates that may be satisfied
// makes a trace a candidate.
func satisfies(m predMask, n int, all bool) bool {
	if n == 0 {
		return true
	}
	if all {
		return m&wantMask(n) == wantMask(n)
	}
	return m&wantMask(n) != 0
}

// traceMask evaluates ps over a decoded trace.
func traceMask(ps []pred, td *tracev1.TracesData) predMask {
	var m predMask
	for i := range ps {
		if i >= maxPrunePreds || ps[i].matchTrace(td) {
			m |= 1 << min(i, maxPrunePreds-1)
		}
	}
	return m
}
