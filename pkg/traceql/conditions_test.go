package traceql

import (
	"math/rand"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/traceql/traceqltest"
)

func TestConditions(t *testing.T) {
	tests := []struct{ q, want string }{
		{`{}`, `any: `},
		{`{ .a = 1 }`, `span: .a = 1`},
		{`{ resource.service.name = "x" && name = "y" && span.http.status_code >= 500 }`, `span: resource.service.name = "x"; name = "y"; span.http.status_code >= 500`},
		{`{ 500 <= span.c }`, `span: span.c >= 500`},
		{`{ status = error && kind != client && duration > 1s && statusMessage =~ "t.*" }`, `span: status = error; kind != client; duration > 1s; statusMessage =~ "t.*"`},
		{`{ span:status = error && trace:rootService = "a" && trace:rootName != "b" && trace:duration < 2s }`, `span: status = error; rootServiceName = "a"; rootName != "b"; traceDuration < 2s`},
		{`{ .a != nil }`, `span: .a != nil`},
		{`{ .a = nil }`, `any: `},
		{`{ .a }`, `span: .a = true`},
		{`{ !(.a = 1) }`, `any: `},
		{`{ .a = 1 || .b = 2 }`, `any: .a = 1; .b = 2`},
		{`{ (resource.service.name = "a.b" || resource.service.name = "c") && traceDuration > 5s }`, `span: resource.service.name =~ "a\\.b|c"; traceDuration > 5s`},
		{`{ name = "x" || name =~ "y+" || name = "z" }`, `span: name =~ "(?:x|(?:y+))|z"`},
		{`{ span.a = "x" || resource.a = "y" }`, `any: span.a = "x"; resource.a = "y"`},
		{`{ .a = "x" || .a = 1 }`, `any: .a = "x"; .a = 1`},
		{`{ .a = "x" } || { .a = "y" }`, `all: .a =~ "x|y"`},
		{`{ (.a = 1 || .b = 2) && .c = 3 }`, `span: .c = 3`},
		{`{ (.a = 1 || .b = 2) && !.c }`, `any: .a = 1; .b = 2`},
		{`{ .a = 1 || !(.b = 2) }`, `any: `},
		{`{ .a + 1 = 2 }`, `any: `},
		{`{ .a = .b }`, `any: `},
		{`{ span:id = "01" && trace:id = "02" && event:name = "x" && span:childCount > 1 }`, `any: `},
		{`{ event.a = 1 && link.b = 2 && instrumentation.c = 3 }`, `span: event.a = 1; link.b = 2; instrumentation.c = 3`},
		{`{ .a = 1 } && { .b = 2 }`, `all: .a = 1; .b = 2`},
		{`{ .a = 1 } || { .b = 2 }`, `any: .a = 1; .b = 2`},
		{`{ .a = 1 && .c = 3 } || { .b = 2 }`, `any: .a = 1; .b = 2`},
		{`{ .a = 1 } || { }`, `any: `},
		{`{ .a = 1 } > { .b = 2 }`, `all: .a = 1; .b = 2`},
		{`{ .a = 1 } &>> { .b = 2 }`, `all: .a = 1; .b = 2`},
		{`{ .a = 1 } !> { .b = 2 }`, `all: .b = 2`},
		{`{ .a = 1 } !~ { }`, `any: `},
		{`{ .a = 1 } | count() > 2`, `span: .a = 1`},
		{`{ .a = 1 } | by(.x) | { .b = 2 }`, `all: .a = 1; .b = 2`},
		{`({ .a = 1 } | count() > 2) && { .b = 2 }`, `all: .a = 1; .b = 2`},
		{`count() > 2`, `any: `},
		{`{ .a =~ "x" } | select(.z)`, `span: .a =~ "x"`},
	}
	for _, tc := range tests {
		t.Run(tc.q, func(t *testing.T) {
			q, err := Parse(tc.q)
			require.NoError(t, err)
			c := q.Conditions()
			var parts []string
			for _, cd := range c.Conds {
				parts = append(parts, cd.String())
			}
			got := "any: "
			if c.All {
				got = "all: "
			}
			if c.SameSpan {
				got = "span: "
			}
			require.Equal(t, tc.want, got+strings.Join(parts, "; "))
		})
	}
}

// TestConditionsConservative: whenever Eval matches a trace, the trace
// satisfies the query's Conditions, checked by an independent evaluator of
// single conditions.
func TestConditionsConservative(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	var traces []*tracev1.TracesData
	for i := 0; i < 150; i++ {
		traces = append(traces, traceqltest.Trace(r, traceqltest.TraceID(r), traceqltest.TraceOptions{MaxSpans: 30}))
	}
	queries, matches, pruned, same := 0, 0, 0, 0
	n := 600
	if testing.Short() {
		n = 200
	}
	for i := 0; i < n; i++ {
		qs, shape := traceqltest.Query(r)
		q, err := Parse(qs)
		require.NoError(t, err, qs)
		queries++
		conds := q.Conditions()
		if conds.SameSpan {
			same++
		}
		for _, td := range traces {
			res, err := q.Eval(td)
			if err != nil {
				require.ErrorIs(t, err, ErrSpansetOperationMultiple)
				continue
			}
			sat := satisfies(td, conds)
			if res != nil {
				matches++
				require.True(t, sat, "query %q (shape %s) matched but conditions %+v do not hold", qs, shape, conds)
			} else if !sat {
				pruned++
			}
		}
	}
	t.Logf("%d queries (%d with SameSpan), %d matching (query, trace) pairs, %d pairs pruned by conditions", queries, same, matches, pruned)
	require.Greater(t, same, n/20, "the generator must give single-filter conjunctions")
	require.Greater(t, matches, n)
	require.Greater(t, pruned, 5*n)
}

func satisfies(td *tracev1.TracesData, c Conditions) bool {
	if len(c.Conds) == 0 {
		return true
	}
	if c.All && c.SameSpan {
		for _, rs := range td.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					ok := true
					for _, cd := range c.Conds {
						ok = ok && condHoldsOn(td, cd, sp)
					}
					if ok {
						return true
					}
				}
			}
		}
		return false
	}
	for _, cd := range c.Conds {
		h := condHolds(td, cd)
		if c.All && !h {
			return false
		}
		if !c.All && h {
			return true
		}
	}
	return c.All
}

// condHolds is a reference evaluator for one Condition, written apart from
// the engine.
func condHolds(td *tracev1.TracesData, c Condition) bool { return condHoldsOn(td, c, nil) }

// condHoldsOn is condHolds on span only (nil: any span).
func condHoldsOn(td *tracev1.TracesData, c Condition, only *tracev1.Span) bool {
	var root *tracev1.Span
	var rootRes *tracev1.ResourceSpans
	var minStart, maxEnd uint64
	first := true
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				if len(sp.ParentSpanId) == 0 && rs.Resource != nil && !hasChildOfLink(sp) {
					root, rootRes = sp, rs
				}
				if first || sp.StartTimeUnixNano < minStart {
					minStart = sp.StartTimeUnixNano
				}
				if first || sp.EndTimeUnixNano > maxEnd {
					maxEnd = sp.EndTimeUnixNano
				}
				first = false
			}
		}
	}
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				if only != nil && sp != only {
					continue
				}
				var vals []*commonv1.AnyValue
				var iv interface{}
				found := true
				switch c.Scope {
				case ScopeSpan:
					vals = lookup(sp.Attributes, c.Name)
				case ScopeResource:
					vals = lookup(rs.GetResource().GetAttributes(), c.Name)
				case ScopeUnscoped:
					vals = append(lookup(sp.Attributes, c.Name), lookup(rs.GetResource().GetAttributes(), c.Name)...)
				case ScopeInstrumentation:
					vals = lookup(ss.GetScope().GetAttributes(), c.Name)
				case ScopeEvent:
					for _, e := range sp.Events {
						vals = append(vals, lookup(e.Attributes, c.Name)...)
					}
				case ScopeLink:
					for _, l := range sp.Links {
						vals = append(vals, lookup(l.Attributes, c.Name)...)
					}
				case ScopeIntrinsic:
					switch c.Name {
					case "name":
						iv = sp.Name
					case "status":
						iv = Status(sp.GetStatus().GetCode())
					case "kind":
						iv = Kind(sp.Kind)
					case "duration":
						iv = time.Duration(sp.EndTimeUnixNano - sp.StartTimeUnixNano)
					case "statusMessage":
						iv = sp.GetStatus().GetMessage()
					case "rootName":
						iv = ""
						if root != nil {
							iv = root.Name
						}
					case "rootServiceName":
						iv = ""
						if rootRes != nil {
							if v := lookup(rootRes.GetResource().GetAttributes(), "service.name"); len(v) > 0 {
								iv = v[0].GetStringValue()
							}
						}
					case "traceDuration":
						iv = time.Duration(maxEnd - minStart)
					}
					found = iv != nil
				}
				if c.Scope == ScopeIntrinsic {
					if found && refCompare(iv, c) {
						return true
					}
					continue
				}
				for _, v := range vals {
					if refAny(v, c) {
						return true
					}
				}
			}
		}
	}
	return false
}

func lookup(kvs []*commonv1.KeyValue, key string) []*commonv1.AnyValue {
	for _, kv := range kvs {
		if kv.Key == key {
			return []*commonv1.AnyValue{kv.Value}
		}
	}
	return nil
}

func refAny(v *commonv1.AnyValue, c Condition) bool {
	switch x := v.Value.(type) {
	case *commonv1.AnyValue_StringValue:
		return refCompare(x.StringValue, c)
	case *commonv1.AnyValue_IntValue:
		return refCompare(x.IntValue, c)
	case *commonv1.AnyValue_DoubleValue:
		return refCompare(x.DoubleValue, c)
	case *commonv1.AnyValue_BoolValue:
		return refCompare(x.BoolValue, c)
	case *commonv1.AnyValue_ArrayValue:
		if len(x.ArrayValue.Values) == 0 {
			return false
		}
		if c.Op == OpExists {
			return true
		}
		all := c.Op == OpNe || c.Op == OpNotRegex
		for _, e := range x.ArrayValue.Values {
			h := refAny(e, c)
			if all && !h {
				return false
			}
			if !all && h {
				return true
			}
		}
		return all
	}
	return false
}

func refCompare(v interface{}, c Condition) bool {
	if c.Op == OpExists {
		return true
	}
	lit := c.Value
	num := func(x interface{}) (float64, bool) {
		switch n := x.(type) {
		case int64:
			return float64(n), true
		case float64:
			return n, true
		case time.Duration:
			return float64(n), true
		}
		return 0, false
	}
	var lv interface{}
	switch lit.Type {
	case TypeString:
		lv = lit.S
	case TypeInt:
		lv = lit.I
	case TypeFloat:
		lv = lit.F
	case TypeDuration:
		lv = lit.D
	case TypeBool:
		lv = lit.B
	case TypeStatus:
		lv = lit.Status
	case TypeKind:
		lv = lit.Kind
	}
	if a, ok := num(v); ok {
		b, ok := num(lv)
		if !ok {
			return false
		}
		switch c.Op {
		case OpEq:
			return a == b
		case OpNe:
			return a != b
		case OpLt:
			return a < b
		case OpLe:
			return a <= b
		case OpGt:
			return a > b
		case OpGe:
			return a >= b
		}
		return false
	}
	if s, ok := v.(string); ok {
		b, ok := lv.(string)
		if !ok {
			return false
		}
		switch c.Op {
		case OpEq:
			return s == b
		case OpNe:
			return s != b
		case OpLt:
			return s < b
		case OpLe:
			return s <= b
		case OpGt:
			return s > b
		case OpGe:
			return s >= b
		case OpRegex, OpNotRegex:
			m := regexp.MustCompile("^(?:" + b + ")$").MatchString(s)
			return m == (c.Op == OpRegex)
		}
		return false
	}
	switch c.Op {
	case OpEq:
		return v == lv
	case OpNe:
		return lv != nil && v != lv && sameKind(v, lv)
	}
	return false
}

func sameKind(a, b interface{}) bool {
	switch a.(type) {
	case bool:
		_, ok := b.(bool)
		return ok
	case Status:
		_, ok := b.(Status)
		return ok
	case Kind:
		_, ok := b.(Kind)
		return ok
	}
	return false
}

func TestFields(t *testing.T) {
	for q, want := range map[string]string{
		`{}`: ``,
		`{ resource.service.name = "a" && span.x > 1 }`:                                `resource.service.name span.x`,
		`{ .a = 1 } > { instrumentation.b = 2 } | by(span.c) | select(resource.d, .e)`: `.a instrumentation.b span.c resource.d .e`,
		`{ event.x = 1 }`:                                  `event.x events`,
		`{ event:name = "e" } | avg(span.d) > 2`:           `span.d events`,
		`({ link.l = 1 } | count() > 1) && { name = "x" }`: `link.l`,
	} {
		q0, err := Parse(q)
		require.NoError(t, err)
		f := q0.Fields()
		var parts []string
		for _, a := range f.Attrs {
			parts = append(parts, (Condition{Scope: a.Scope, Name: a.Name, Op: OpExists}).String())
		}
		got := strings.TrimSuffix(strings.Join(parts, " "), " != nil")
		got = strings.ReplaceAll(got, " != nil", "")
		if f.Events {
			got = strings.TrimSpace(got + " events")
		}
		require.Equal(t, want, got, q)
	}
}
