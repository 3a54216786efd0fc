package block

import (
	"context"
	"errors"
	"slices"
	"strconv"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
)

// TagScope is the scope of an attribute name for tag autocompletion.
type TagScope int

// Tag scopes.
const (
	TagResource TagScope = iota
	TagSpan
	TagEvent
	TagLink
	TagInstrumentation
	numTagScopes
)

// TagValue is one distinct attribute value: Type is "string", "int",
// "float" or "bool"; Value its text (ints in decimal, floats in Go's
// shortest 'g' form, bools "true"/"false"). Values of other types (bytes,
// arrays, maps) are not listed.
type TagValue struct {
	Type  string
	Value string
}

// errTagStop ends a tag walk early.
var errTagStop = errors.New("tag walk stopped")

// TagNames calls fn once for every distinct attribute name of each scope
// in the block (in no particular order). From a v2 block's search index it
// reads one small object; a v1 block is scanned.
func (r *Reader) TagNames(ctx context.Context, fn func(scope TagScope, name string)) error {
	idx, err := r.searchIndex(ctx)
	if err != nil {
		return err
	}
	if idx != nil && !idx.keysOverflow() {
		for sc := range idx.scopes {
			for _, k := range sortedKeys(idx.scopes[sc].keys) {
				fn(TagScope(sc), k)
			}
		}
		return nil
	}
	seen := [numTagScopes]map[string]bool{}
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	return r.scanAttrs(ctx, -1, "", nil, func(sc TagScope, key []byte, _ int32, _ []byte, _ int64, _ float64, _ bool) {
		if !seen[sc][string(key)] {
			seen[sc][string(key)] = true
			fn(sc, string(key))
		}
	})
}

// TagValues calls fn once for every distinct value of attribute name in
// scope, until fn returns false. A v2 block's index holds at most a capped
// number of values per name (the first ones written; of floats only the
// smallest and largest); a v1 block is scanned.
func (r *Reader) TagValues(ctx context.Context, scope TagScope, name string, fn func(TagValue) bool) error {
	if scope < 0 || scope >= numTagScopes {
		return errors.New("block: unknown tag scope")
	}
	idx, err := r.searchIndex(ctx)
	if err != nil {
		return err
	}
	if idx != nil && !idx.scopes[scope].overflow {
		if k := idx.scopes[scope].keys[name]; k != nil {
			k.values(fn)
		}
		return nil
	}
	seen := map[TagValue]bool{}
	stop := false
	err = r.scanAttrs(ctx, scope, name, &stop, func(sc TagScope, key []byte, kind int32, s []byte, i int64, f float64, _ bool) {
		if stop || sc != scope || string(key) != name {
			return
		}
		tv, ok := tagValueOfKind(kind, s, i, f)
		if !ok || seen[tv] {
			return
		}
		seen[tv] = true
		stop = !fn(tv)
	})
	if errors.Is(err, errTagStop) {
		return nil
	}
	return err
}

func tagValueOfKind(kind int32, s []byte, i int64, f float64) (TagValue, bool) {
	switch kind {
	case kindString:
		return TagValue{Type: "string", Value: string(s)}, true
	case kindInt:
		return TagValue{Type: "int", Value: strconv.FormatInt(i, 10)}, true
	case kindDouble:
		return TagValue{Type: "float", Value: strconv.FormatFloat(f, 'g', -1, 64)}, true
	case kindBool:
		return TagValue{Type: "bool", Value: strconv.FormatBool(i != 0)}, true
	}
	return TagValue{}, false
}

// values lists the values the index holds for a name.
func (k *keyIndex) values(fn func(TagValue) bool) {
	for _, v := range k.strs.sorted() {
		if !fn(TagValue{Type: "string", Value: v}) {
			return
		}
	}
	ints := make([]int64, 0, len(k.intSet))
	for v := range k.intSet {
		ints = append(ints, v)
	}
	slices.Sort(ints)
	if k.intOverflow && k.ints.set {
		ints = []int64{k.ints.min, k.ints.max}
	}
	for _, v := range ints {
		if !fn(TagValue{Type: "int", Value: strconv.FormatInt(v, 10)}) {
			return
		}
	}
	if k.floatSeen {
		for _, v := range []float64{k.fmin, k.fmax}[:1+btoi(k.fmax != k.fmin)] {
			if !fn(TagValue{Type: "float", Value: strconv.FormatFloat(v, 'g', -1, 64)}) {
				return
			}
		}
	}
	for b := range 2 {
		if k.bools&(1<<b) != 0 && !fn(TagValue{Type: "bool", Value: strconv.FormatBool(b == 1)}) {
			return
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func tagValueOf(v *commonv1.AnyValue) (TagValue, bool) {
	switch x := v.GetValue().(type) {
	case *commonv1.AnyValue_StringValue:
		return TagValue{Type: "string", Value: x.StringValue}, true
	case *commonv1.AnyValue_IntValue:
		return TagValue{Type: "int", Value: strconv.FormatInt(x.IntValue, 10)}, true
	case *commonv1.AnyValue_DoubleValue:
		return TagValue{Type: "float", Value: strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)}, true
	case *commonv1.AnyValue_BoolValue:
		return TagValue{Type: "bool", Value: strconv.FormatBool(x.BoolValue)}, true
	}
	return TagValue{}, false
}
