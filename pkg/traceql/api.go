package traceql

import (
	"fmt"
	"math"
	"strconv"
	"time"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// ParseError is a syntax or type error in a query. Pos is the byte offset of
// the offending token in the query; Line and Col are 1-based (Col counts
// bytes).
type ParseError struct {
	Pos, Line, Col int
	Msg            string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("parse error at line %d, col %d: %s", e.Line, e.Col, e.Msg)
}

// UnsupportedError reports valid TraceQL that Rubato does not evaluate, such
// as metrics queries. Feature names what is missing.
type UnsupportedError struct {
	Feature string
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("unsupported TraceQL feature: %s", e.Feature)
}

// Spanset is one result of a query for one trace.
type Spanset struct {
	Spans []MatchedSpan
	// Attributes holds by() values and aggregate results, keyed as Tempo
	// keys them: "by(resource.service.name)", "count()", "avg(duration)".
	Attributes []*commonv1.KeyValue
}

// MatchedSpan is a span of a spanset with the parts of the trace it belongs to.
type MatchedSpan struct {
	Resource *tracev1.ResourceSpans
	Scope    *tracev1.ScopeSpans
	Span     *tracev1.Span
	// Attributes are the span's values of the fields the query names
	// (filters, by(), aggregates and select()), keyed by attribute name
	// without its scope, as Tempo returns them in search results.
	Attributes []*commonv1.KeyValue
}

// Scope is where a condition's attribute lives.
type Scope int

const (
	ScopeUnscoped Scope = iota // `.key`: the span's attribute, else the resource's
	ScopeResource
	ScopeSpan
	ScopeEvent
	ScopeLink
	ScopeInstrumentation
	ScopeIntrinsic
)

var scopeNames = [...]string{"", "resource", "span", "event", "link", "instrumentation", "intrinsic"}

func (s Scope) String() string {
	if int(s) < len(scopeNames) {
		if s == ScopeUnscoped {
			return "unscoped"
		}
		return scopeNames[s]
	}
	return "scope(" + strconv.Itoa(int(s)) + ")"
}

// Op is a comparison operator of a Condition.
type Op int

const (
	OpEq Op = iota
	OpNe
	OpLt
	OpLe
	OpGt
	OpGe
	OpRegex
	OpNotRegex
	OpExists // `!= nil`
)

var opNames = [...]string{"=", "!=", "<", "<=", ">", ">=", "=~", "!~", "!= nil"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return "op(" + strconv.Itoa(int(o)) + ")"
}

// Type is the type of a Static.
type Type int

const (
	TypeNil Type = iota
	TypeString
	TypeInt
	TypeFloat
	TypeBool
	TypeDuration
	TypeStatus
	TypeKind
)

var typeNames = [...]string{"nil", "string", "int", "float", "bool", "duration", "status", "kind"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Status is a span status as TraceQL spells it.
type Status int

const (
	StatusUnset Status = iota
	StatusOk
	StatusError
)

// Status values follow OTLP's numbering (STATUS_CODE_UNSET=0, OK=1, ERROR=2).
var statusNames = [...]string{"unset", "ok", "error"}

func (s Status) String() string {
	if int(s) >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Kind is a span kind as TraceQL spells it; values follow OTLP's numbering.
type Kind int

const (
	KindUnspecified Kind = iota
	KindInternal
	KindServer
	KindClient
	KindProducer
	KindConsumer
)

var kindNames = [...]string{"unspecified", "internal", "server", "client", "producer", "consumer"}

func (k Kind) String() string {
	if int(k) >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Static is a typed literal.
type Static struct {
	Type   Type
	S      string
	I      int64
	F      float64
	B      bool
	D      time.Duration
	Status Status
	Kind   Kind
}

// String renders the literal as TraceQL source.
func (s Static) String() string {
	switch s.Type {
	case TypeString:
		return strconv.Quote(s.S)
	case TypeInt:
		if s.I == math.MinInt64 {
			return "minInt"
		}
		return strconv.FormatInt(s.I, 10)
	case TypeFloat:
		return formatFloat(s.F)
	case TypeBool:
		return strconv.FormatBool(s.B)
	case TypeDuration:
		if s.D == math.MinInt64 {
			// not producible by the parser; keep String total
			return "-9223372036ns"
		}
		return s.D.String()
	case TypeStatus:
		return s.Status.String()
	case TypeKind:
		return s.Kind.String()
	}
	return "nil"
}

func formatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '.', 'e', 'E', 'I', 'N':
			return s
		}
	}
	return s + ".0"
}

// Conditions summarises a query for pushdown, conservatively.
type Conditions struct {
	// All: every matching trace has, for each Cond, some span (with its
	// resource/scope/events/links) satisfying it. !All: a matching trace
	// satisfies at least one Cond. Empty Conds: nothing can be pruned.
	All   bool
	Conds []Condition
	// SameSpan (with All): every matching trace has one span satisfying
	// every Cond at once (with its own resource, scope, events and links).
	// It holds when the query's only spanset stage is one filter whose
	// Conds are joined by && at its top level, as in
	// `{ resource.service.name = "a" && span.x = 1 }`.
	SameSpan bool
}

// Condition is one comparison `<field> <op> <literal>` on one span (with its
// resource, scope, events and links). For ScopeEvent and ScopeLink it is
// satisfied when some event (link) of the span satisfies it. For an
// attribute holding an array, =, =~, <, <=, >, >= hold when some element
// satisfies them, != and !~ when every element does.
type Condition struct {
	Scope Scope
	// Name is the attribute key, or for ScopeIntrinsic one of name status
	// kind duration statusMessage rootName rootServiceName traceDuration.
	Name  string
	Op    Op
	Value Static // TypeNil for OpExists
}

func (c Condition) String() string {
	var f string
	switch c.Scope {
	case ScopeIntrinsic:
		f = c.Name
	case ScopeUnscoped:
		f = "." + c.Name
	default:
		f = c.Scope.String() + "." + c.Name
	}
	if c.Op == OpExists {
		return f + " != nil"
	}
	return f + " " + c.Op.String() + " " + c.Value.String()
}

// Intrinsics returns the intrinsic tag names, as Tempo lists them for the
// tags API's "intrinsic" scope (its 25 virtual intrinsic tags, sorted).
func Intrinsics() []string {
	return []string{
		"duration", "event:name", "event:timeSinceStart", "instrumentation:name",
		"instrumentation:version", "kind", "link:spanID", "link:traceID", "name",
		"rootName", "rootServiceName", "span:duration", "span:id",
		"span:kind", "span:name", "span:parentID", "span:status", "span:statusMessage",
		"status", "statusMessage", "trace:duration", "trace:id", "trace:rootName",
		"trace:rootService", "traceDuration",
	}
}
