package block

import (
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Random traces and predicates for search tests, over small value domains
// so that random predicates often match: attributes of every type under
// the dedicated keys and under a few generic ones (with duplicates and
// wrong-typed dedicated keys), events, links, scope attributes, statuses,
// kinds and durations.

var (
	sgKeys    = []string{"service.name", "k8s.pod.name", "http.method", "http.url", "http.status_code", "url.full", "a", "b", "c"}
	sgStrs    = []string{"", "x", "y", "GET", "POST", "svc-1", "svc-2", "/api/1", "/api/2"}
	sgNames   = []string{"GET /", "POST /pay", "db.query", "root", ""}
	sgRegexes = []string{"x", ".*", "svc-.*", "GET|POST", "/api/[12]", "sv", ""}
)

func sgValue(rng *rand.Rand) *commonv1.AnyValue {
	switch rng.IntN(10) {
	case 0, 1, 2, 3:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: sgStrs[rng.IntN(len(sgStrs))]}}
	case 4, 5:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: []int64{0, 1, 200, 500, -3}[rng.IntN(5)]}}
	case 6:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: []float64{0, 1, 200, 2.5}[rng.IntN(4)]}}
	case 7:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: rng.IntN(2) == 0}}
	case 8:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_BytesValue{BytesValue: []byte("x")}}
	}
	return nil
}

func sgAttrs(rng *rand.Rand, n int) []*commonv1.KeyValue {
	var kvs []*commonv1.KeyValue
	for range rng.IntN(n + 1) {
		kvs = append(kvs, &commonv1.KeyValue{Key: sgKeys[rng.IntN(len(sgKeys))], Value: sgValue(rng)})
	}
	return kvs
}

// genSearchTrace returns a random trace of 1..spans spans.
func genSearchTrace(rng *rand.Rand, id []byte, spans int) *tracev1.TracesData {
	td := &tracev1.TracesData{}
	base := uint64(1_700_000_000_000_000_000) + uint64(rng.IntN(1000))*1e9
	var parent []byte
	left := 1 + rng.IntN(spans)
	for left > 0 {
		rs := &tracev1.ResourceSpans{Resource: &resourcev1.Resource{Attributes: sgAttrs(rng, 4)}}
		if rng.IntN(10) == 0 {
			rs.Resource = nil
		}
		for s := 0; s < 1+rng.IntN(2) && left > 0; s++ {
			ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "lib", Attributes: sgAttrs(rng, 1)}}
			for k := 0; k < 1+rng.IntN(4) && left > 0; k++ {
				left--
				spanID := randBytes(rng, 8)
				start := base + uint64(rng.IntN(1000))*1e6
				sp := &tracev1.Span{
					TraceId: id, SpanId: spanID, Name: sgNames[rng.IntN(len(sgNames))],
					Kind:              tracev1.Span_SpanKind(rng.IntN(6)),
					StartTimeUnixNano: start, EndTimeUnixNano: start + uint64(rng.IntN(5))*1e9,
					Attributes: sgAttrs(rng, 5),
				}
				if rng.IntN(3) > 0 {
					parent, sp.ParentSpanId = spanID, parent
				}
				if rng.IntN(4) > 0 {
					sp.Status = &tracev1.Status{Code: tracev1.Status_StatusCode(rng.IntN(3)), Message: sgStrs[rng.IntN(3)]}
				}
				for range rng.IntN(2) {
					sp.Events = append(sp.Events, &tracev1.Span_Event{Name: "exception", TimeUnixNano: start, Attributes: sgAttrs(rng, 2)})
				}
				for range rng.IntN(2) {
					sp.Links = append(sp.Links, &tracev1.Span_Link{TraceId: id, SpanId: randBytes(rng, 8), Attributes: sgAttrs(rng, 2)})
				}
				ss.Spans = append(ss.Spans, sp)
			}
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		td.ResourceSpans = append(td.ResourceSpans, rs)
	}
	return td
}

// genPredicate returns a random predicate over genSearchTrace's domains.
func genPredicate(rng *rand.Rand) Predicate {
	ops := []PredOp{PredEq, PredNe, PredLt, PredLe, PredGt, PredGe, PredRegex, PredNotRegex, PredExists}
	p := Predicate{Op: ops[rng.IntN(len(ops))]}
	lit := func() PredValue {
		switch rng.IntN(5) {
		case 0, 1:
			return PredValue{Type: ValString, Str: sgStrs[rng.IntN(len(sgStrs))]}
		case 2:
			return PredValue{Type: ValInt, Int: []int64{0, 1, 200, 500, -3, 7}[rng.IntN(6)]}
		case 3:
			return PredValue{Type: ValFloat, Float: []float64{0, 1, 200, 2.5, 499.5}[rng.IntN(5)]}
		}
		return PredValue{Type: ValBool, Bool: rng.IntN(2) == 0}
	}
	switch rng.IntN(10) {
	case 0, 1, 2, 3, 4, 5:
		p.Scope = []PredScope{PredResource, PredSpan, PredUnscoped, PredEvent, PredLink, PredInstrumentation}[rng.IntN(6)]
		p.Key = sgKeys[rng.IntN(len(sgKeys))]
		if rng.IntN(20) == 0 {
			p.Key = "absent"
		}
		p.Value = lit()
	case 6, 7, 8:
		p.Scope = PredSpanIntrinsic
		switch rng.IntN(5) {
		case 0:
			p.Key, p.Value = IntrinsicName, PredValue{Type: ValString, Str: sgNames[rng.IntN(len(sgNames))]}
		case 1:
			p.Key, p.Value = IntrinsicStatus, PredValue{Type: ValStatus, Int: int64(rng.IntN(3))}
		case 2:
			p.Key, p.Value = IntrinsicKind, PredValue{Type: ValKind, Int: int64(rng.IntN(6))}
		case 3:
			p.Key, p.Value = IntrinsicDuration, PredValue{Type: ValDuration, Int: int64(rng.IntN(5)) * 1e9}
		default:
			p.Key, p.Value = IntrinsicStatusMessage, PredValue{Type: ValString, Str: sgStrs[rng.IntN(4)]}
		}
	default:
		p.Scope = PredTraceIntrinsic
		switch rng.IntN(3) {
		case 0:
			p.Key, p.Value = IntrinsicRootName, PredValue{Type: ValString, Str: sgNames[rng.IntN(len(sgNames))]}
		case 1:
			p.Key, p.Value = IntrinsicRootServiceName, PredValue{Type: ValString, Str: sgStrs[rng.IntN(len(sgStrs))]}
		default:
			p.Key, p.Value = IntrinsicTraceDuration, PredValue{Type: ValDuration, Int: int64(rng.IntN(6)) * 1e9}
		}
	}
	if p.Op == PredRegex || p.Op == PredNotRegex {
		p.Value = PredValue{Type: ValString, Str: sgRegexes[rng.IntN(len(sgRegexes))]}
		if p.Scope == PredSpanIntrinsic && p.Key != IntrinsicName && p.Key != IntrinsicStatusMessage {
			p.Op = PredEq
			p.Value = PredValue{Type: ValStatus, Int: 2}
			p.Key = IntrinsicStatus
		}
	}
	return p
}

// Brute force: an independent, exact reading of the predicate semantics
// (TraceQL's, as documented in predicate.go) over a decoded trace.

func bfValue(p Predicate, v *commonv1.AnyValue) bool {
	if p.Op == PredExists {
		return true
	}
	if p.Op == PredRegex || p.Op == PredNotRegex {
		s, ok := v.GetValue().(*commonv1.AnyValue_StringValue)
		if !ok {
			return false
		}
		re, ok := bfRegexes[p.Value.Str]
		if !ok {
			re = regexp.MustCompile("^(?:" + p.Value.Str + ")$")
			bfRegexes[p.Value.Str] = re
		}
		m := re.MatchString(s.StringValue)
		return m == (p.Op == PredRegex)
	}
	cmp := func(c int) bool {
		switch p.Op {
		case PredEq:
			return c == 0
		case PredNe:
			return c != 0
		case PredLt:
			return c < 0
		case PredLe:
			return c <= 0
		case PredGt:
			return c > 0
		case PredGe:
			return c >= 0
		}
		return false
	}
	num := func(x float64) bool {
		var lit float64
		switch p.Value.Type {
		case ValInt, ValDuration:
			lit = float64(p.Value.Int)
		case ValFloat:
			lit = p.Value.Float
		default:
			return false
		}
		switch {
		case x < lit:
			return cmp(-1)
		case x > lit:
			return cmp(1)
		case x == lit:
			return cmp(0)
		}
		return false
	}
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		return p.Value.Type == ValString && cmp(strings.Compare(x.StringValue, p.Value.Str))
	case *commonv1.AnyValue_IntValue:
		return num(float64(x.IntValue))
	case *commonv1.AnyValue_DoubleValue:
		return !math.IsNaN(x.DoubleValue) && num(x.DoubleValue)
	case *commonv1.AnyValue_BoolValue:
		if p.Value.Type != ValBool || (p.Op != PredEq && p.Op != PredNe) {
			return false
		}
		return (x.BoolValue == p.Value.Bool) == (p.Op == PredEq)
	}
	return false
}

var bfRegexes = map[string]*regexp.Regexp{}

func bfAttrs(p Predicate, kvs []*commonv1.KeyValue) bool {
	for _, kv := range kvs {
		if kv.GetKey() == p.Key && bfValue(p, kv.GetValue()) {
			return true
		}
	}
	return false
}

func strVal(s string) *commonv1.AnyValue {
	return &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: s}}
}

func intVal(i int64) *commonv1.AnyValue {
	return &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: i}}
}

// bfPredicate tells whether td exactly satisfies p.
func bfPredicate(p Predicate, td *tracev1.TracesData) bool {
	var tStart, tEnd uint64
	for _, rs := range td.ResourceSpans {
		scoped := func(s PredScope) bool {
			return p.Scope == s || (p.Scope == PredUnscoped && (s == PredSpan || s == PredResource))
		}
		if scoped(PredResource) && bfAttrs(p, rs.GetResource().GetAttributes()) {
			return true
		}
		for _, ss := range rs.ScopeSpans {
			if scoped(PredInstrumentation) && bfAttrs(p, ss.GetScope().GetAttributes()) {
				return true
			}
			for _, sp := range ss.Spans {
				if s := sp.StartTimeUnixNano; s != 0 && (tStart == 0 || s < tStart) {
					tStart = s
				}
				tEnd = max(tEnd, sp.EndTimeUnixNano)
				if scoped(PredSpan) && bfAttrs(p, sp.Attributes) {
					return true
				}
				for _, e := range sp.Events {
					if scoped(PredEvent) && bfAttrs(p, e.Attributes) {
						return true
					}
				}
				for _, l := range sp.Links {
					if scoped(PredLink) && bfAttrs(p, l.Attributes) {
						return true
					}
				}
				var v *commonv1.AnyValue
				switch {
				case p.Scope == PredSpanIntrinsic && p.Key == IntrinsicName:
					v = strVal(sp.Name)
				case p.Scope == PredSpanIntrinsic && p.Key == IntrinsicStatusMessage:
					v = strVal(sp.GetStatus().GetMessage())
				case p.Scope == PredSpanIntrinsic && p.Key == IntrinsicStatus:
					v = intVal(int64(sp.GetStatus().GetCode()))
				case p.Scope == PredSpanIntrinsic && p.Key == IntrinsicKind:
					v = intVal(int64(sp.Kind))
				case p.Scope == PredSpanIntrinsic && p.Key == IntrinsicDuration:
					v = intVal(int64(sp.EndTimeUnixNano - sp.StartTimeUnixNano))
				case p.Scope == PredTraceIntrinsic && p.Key == IntrinsicRootName && len(sp.ParentSpanId) == 0:
					v = strVal(sp.Name)
				case p.Scope == PredTraceIntrinsic && p.Key == IntrinsicRootServiceName && len(sp.ParentSpanId) == 0:
					v = strVal(serviceNameOf(rs))
				}
				if v != nil {
					q := p
					if q.Value.Type == ValStatus || q.Value.Type == ValKind {
						q.Value.Type = ValInt
					}
					if bfValue(q, v) {
						return true
					}
				}
			}
		}
	}
	if p.Scope == PredTraceIntrinsic && p.Key == IntrinsicTraceDuration {
		d := int64(0)
		if tEnd > tStart {
			d = int64(tEnd - tStart)
		}
		q := p
		q.Value.Type = ValInt
		return bfValue(q, intVal(d))
	}
	return false
}

func serviceNameOf(rs *tracev1.ResourceSpans) string {
	for _, kv := range rs.GetResource().GetAttributes() {
		if kv.Key == "service.name" {
			if s, ok := kv.GetValue().GetValue().(*commonv1.AnyValue_StringValue); ok {
				return s.StringValue
			}
		}
	}
	return ""
}

func bfMatch(req SearchRequest, td *tracev1.TracesData) bool {
	if len(req.Predicates) == 0 {
		return true
	}
	if req.All && req.SameSpan {
		// Some span, alone with its resource and scope, satisfies every
		// predicate; predicates on the trace are checked on the trace.
		for _, rs := range td.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					one := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{Resource: rs.Resource,
						ScopeSpans: []*tracev1.ScopeSpans{{Scope: ss.Scope, Spans: []*tracev1.Span{sp}}}}}}
					ok := true
					for _, p := range req.Predicates {
						if p.Scope == PredTraceIntrinsic {
							ok = ok && bfPredicate(p, td)
						} else {
							ok = ok && bfPredicate(p, one)
						}
					}
					if ok {
						return true
					}
				}
			}
		}
		return false
	}
	for _, p := range req.Predicates {
		m := bfPredicate(p, td)
		if m && !req.All {
			return true
		}
		if !m && req.All {
			return false
		}
	}
	return req.All
}

func predString(ps []Predicate) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "%d:%s %d %+v; ", p.Scope, p.Key, p.Op, p.Value)
	}
	return b.String()
}
