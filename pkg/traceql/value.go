package traceql

import (
	"math"
	"strings"
	"time"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
)

// value is a run-time value. It is passed by value and never allocates:
// strings point into the trace, arrays at the trace's ArrayValue.
type value struct {
	t   vtype
	s   string
	n   int64 // int, duration (ns), status, kind, bool (0/1)
	f   float64
	arr *commonv1.ArrayValue
	// av is the attribute value the value came from, if any; results reuse
	// it instead of allocating a copy
	av *commonv1.AnyValue
}

var nilValue = value{}

func boolValue(b bool) value {
	if b {
		return value{t: vBool, n: 1}
	}
	return value{t: vBool}
}

func (v value) float() float64 {
	switch v.t {
	case vFloat:
		return v.f
	case vInt, vDuration:
		return float64(v.n)
	}
	return math.NaN()
}

func staticValue(s Static) value {
	switch s.Type {
	case TypeString:
		return value{t: vString, s: s.S}
	case TypeInt:
		return value{t: vInt, n: s.I}
	case TypeFloat:
		return value{t: vFloat, f: s.F}
	case TypeBool:
		return boolValue(s.B)
	case TypeDuration:
		return value{t: vDuration, n: int64(s.D)}
	case TypeStatus:
		return value{t: vStatus, n: int64(s.Status)}
	case TypeKind:
		return value{t: vKind, n: int64(s.Kind)}
	}
	return nilValue
}

// anyValue converts an OTLP attribute value. Bytes, key-value lists, empty
// values and arrays that are empty or of mixed types are nil: TraceQL cannot
// address them.
func anyValue(av *commonv1.AnyValue) value {
	if av == nil {
		return nilValue
	}
	switch x := av.Value.(type) {
	case *commonv1.AnyValue_StringValue:
		return value{t: vString, s: x.StringValue, av: av}
	case *commonv1.AnyValue_IntValue:
		return value{t: vInt, n: x.IntValue, av: av}
	case *commonv1.AnyValue_DoubleValue:
		return value{t: vFloat, f: x.DoubleValue, av: av}
	case *commonv1.AnyValue_BoolValue:
		v := boolValue(x.BoolValue)
		v.av = av
		return v
	case *commonv1.AnyValue_ArrayValue:
		if x.ArrayValue == nil || len(x.ArrayValue.Values) == 0 {
			return nilValue
		}
		var et vtype
		for i, e := range x.ArrayValue.Values {
			t := anyValue(e).t
			if t == vNil || t >= vAttr {
				return nilValue
			}
			if i == 0 {
				et = t
			} else if t != et {
				return nilValue
			}
		}
		switch et {
		case vString:
			return value{t: vStringArray, arr: x.ArrayValue, av: av}
		case vInt:
			return value{t: vIntArray, arr: x.ArrayValue, av: av}
		case vFloat:
			return value{t: vFloatArray, arr: x.ArrayValue, av: av}
		case vBool:
			return value{t: vBoolArray, arr: x.ArrayValue, av: av}
		}
	}
	return nilValue
}

func findAttr(kvs []*commonv1.KeyValue, key string) value {
	for _, kv := range kvs {
		if kv != nil && kv.Key == key {
			return anyValue(kv.Value)
		}
	}
	return nilValue
}

func (v value) isArray() bool { return v.t >= vStringArray }

// compare applies a comparison operator (not regex) with Tempo's rules:
// operands must have matching types (numbers match each other) and the
// operator must suit them, otherwise the result is false. So a missing
// attribute (nil) matches neither = nor != a literal.
func compare(op tokKind, l, r value) bool {
	if l.isArray() || r.isArray() {
		return compareArray(op, l, r, nil)
	}
	return compareScalar(op, l, r)
}

func compareScalar(op tokKind, l, r value) bool {
	if !matching(l.t, r.t) || !opValid(op, l.t) || !opValid(op, r.t) {
		return false
	}
	switch {
	case l.t == vString && r.t == vString:
		c := strings.Compare(l.s, r.s)
		return cmpResult(op, c)
	case l.t == vNil || r.t == vNil:
		return false // Tempo: nil equals nothing, not even nil
	case (l.t == r.t && l.t != vFloat) || ((op == tEq || op == tNe) && (l.t == vInt || l.t == vDuration) && (r.t == vInt || r.t == vDuration)):
		// int, duration (with each other for = and !=, as Tempo compares
		// their raw values), bool, status, kind: exact
		c := 0
		if l.n < r.n {
			c = -1
		} else if l.n > r.n {
			c = 1
		}
		return cmpResult(op, c)
	}
	lf, rf := l.float(), r.float()
	switch op {
	case tEq:
		return lf == rf
	case tNe:
		return lf != rf
	case tLt:
		return lf < rf
	case tLe:
		return lf <= rf
	case tGt:
		return lf > rf
	case tGe:
		return lf >= rf
	}
	return false
}

func cmpResult(op tokKind, c int) bool {
	switch op {
	case tEq:
		return c == 0
	case tNe:
		return c != 0
	case tLt:
		return c < 0
	case tLe:
		return c <= 0
	case tGt:
		return c > 0
	case tGe:
		return c >= 0
	}
	return false
}

// compareArray: =, =~, <, ... hold if some element satisfies them; != and
// !~ if every element does (Tempo's array semantics). match is the
// compiled regex for =~ and !~.
func compareArray(op tokKind, l, r value, match func(string) bool) bool {
	if l.isArray() && r.isArray() {
		return false
	}
	arr, sc, flip := l, r, false
	if r.isArray() {
		arr, sc, flip = r, l, true
	}
	all := op == tNe || op == tNre
	for _, e := range arr.arr.Values {
		ev := anyValue(e)
		var ok bool
		switch op {
		case tRe, tNre:
			if flip || ev.t != vString {
				ok = false
			} else {
				ok = match(ev.s) == (op == tRe)
			}
		default:
			if flip {
				ok = compareScalar(op, sc, ev)
			} else {
				ok = compareScalar(op, ev, sc)
			}
		}
		if all && !ok {
			return false
		}
		if !all && ok {
			return true
		}
	}
	return all
}

// arith applies an arithmetic operator; operands that are not numbers give nil.
func arith(op tokKind, l, r value) value {
	if !l.t.numeric() || !r.t.numeric() {
		return nilValue
	}
	if l.t == vInt && r.t == vInt {
		a, b := l.n, r.n
		switch op {
		case tAdd:
			return value{t: vInt, n: a + b}
		case tSub:
			return value{t: vInt, n: a - b}
		case tMul:
			return value{t: vInt, n: a * b}
		case tDiv:
			if b == 0 || (a == math.MinInt64 && b == -1) {
				return nilValue
			}
			return value{t: vInt, n: a / b}
		case tMod:
			if b == 0 || b == -1 {
				if b == -1 {
					return value{t: vInt}
				}
				return nilValue
			}
			return value{t: vInt, n: a % b}
		case tPow:
			if b >= 0 {
				res := int64(1)
				for i := int64(0); i < b && i < 64; i++ {
					res *= a
				}
				return value{t: vInt, n: res}
			}
		}
	}
	a, b := l.float(), r.float()
	switch op {
	case tAdd:
		return value{t: vFloat, f: a + b}
	case tSub:
		return value{t: vFloat, f: a - b}
	case tMul:
		return value{t: vFloat, f: a * b}
	case tDiv:
		return value{t: vFloat, f: a / b}
	case tMod:
		return value{t: vFloat, f: math.Mod(a, b)}
	case tPow:
		return value{t: vFloat, f: math.Pow(a, b)}
	}
	return nilValue
}

func (v value) anyValue() *commonv1.AnyValue {
	switch v.t {
	case vString:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v.s}}
	case vInt:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: v.n}}
	case vFloat:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: v.f}}
	case vBool:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: v.n == 1}}
	case vDuration:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: time.Duration(v.n).String()}}
	case vStatus:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: Status(v.n).String()}}
	case vKind:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: Kind(v.n).String()}}
	case vStringArray, vIntArray, vFloatArray, vBoolArray:
		return &commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{ArrayValue: v.arr}}
	}
	return &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "nil"}}
}
