package block

import (
	"context"
	"errors"
	"strconv"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
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
	seen := [numTagScopes]map[string]bool{}
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	return r.walkAttrs(ctx, func(sc TagScope, kv *commonv1.KeyValue) error {
		if !seen[sc][kv.GetKey()] {
			seen[sc][kv.GetKey()] = true
			fn(sc, kv.GetKey())
		}
		return nil
	})
}

// TagValues calls fn once for every distinct value of attribute name in
// scope, until fn returns false. A v2 block's index holds at most a capped
// number of values per name (the first ones written); a v1 block is
// scanned.
func (r *Reader) TagValues(ctx context.Context, scope TagScope, name string, fn func(TagValue) bool) error {
	if scope < 0 || scope >= numTagScopes {
		return errors.New("block: unknown tag scope")
	}
	seen := map[TagValue]bool{}
	err := r.walkAttrs(ctx, func(sc TagScope, kv *commonv1.KeyValue) error {
		if sc != scope || kv.GetKey() != name {
			return nil
		}
		tv, ok := tagValueOf(kv.GetValue())
		if !ok || seen[tv] {
			return nil
		}
		seen[tv] = true
		if !fn(tv) {
			return errTagStop
		}
		return nil
	})
	if errors.Is(err, errTagStop) {
		return nil
	}
	return err
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

// walkAttrs calls fn for every attribute of every trace (the v1 way).
func (r *Reader) walkAttrs(ctx context.Context, fn func(TagScope, *commonv1.KeyValue) error) error {
	return r.Iterate(ctx, func(_ []byte, td *tracev1.TracesData) error {
		return forAttrs(td, fn)
	})
}

// forAttrs calls fn for every attribute of a trace, with its scope.
func forAttrs(td *tracev1.TracesData, fn func(TagScope, *commonv1.KeyValue) error) error {
	each := func(sc TagScope, kvs []*commonv1.KeyValue) error {
		for _, kv := range kvs {
			if err := fn(sc, kv); err != nil {
				return err
			}
		}
		return nil
	}
	for _, rs := range td.GetResourceSpans() {
		if err := each(TagResource, rs.GetResource().GetAttributes()); err != nil {
			return err
		}
		for _, ss := range rs.GetScopeSpans() {
			if err := each(TagInstrumentation, ss.GetScope().GetAttributes()); err != nil {
				return err
			}
			for _, sp := range ss.GetSpans() {
				if err := each(TagSpan, sp.GetAttributes()); err != nil {
					return err
				}
				for _, e := range sp.GetEvents() {
					if err := each(TagEvent, e.GetAttributes()); err != nil {
						return err
					}
				}
				for _, l := range sp.GetLinks() {
					if err := each(TagLink, l.GetAttributes()); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}
