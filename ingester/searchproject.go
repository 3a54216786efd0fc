package ingester

import (
	"slices"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/rubatodb/rubato/pkg/block"
)

// A search decodes the WAL parts of its candidate traces to evaluate them.
// Most of a part's bytes are attributes the query never reads (a pod's
// dozen resource attributes, URLs and statements on spans) and events, and
// decoding them is most of the cost. partProjector rewrites a part's bytes
// without them before it is decoded, as a block search leaves out the
// columns it does not read (search.BlockFields, pkg/block
// searchproject.go): resource attributes but service.name and those the
// query names, span attributes but those it names, instrumentation scope
// attributes and events unless it reads them. Everything else (names,
// times, IDs, status, kind, links) is copied byte for byte, so Match finds
// the same spansets in the projected part
// (TestProjectedPartMatchesLikeWhole).

type partProjector struct {
	res, span          []string // attribute keys kept
	scopeAttrs, events bool
	scratch            [3][]byte // one per message depth rebuilt
}

// newPartProjector returns the projector of f, or nil if f is nil (the
// query reads everything).
func newPartProjector(f *block.SearchFields) *partProjector {
	if f == nil {
		return nil
	}
	return &partProjector{
		res:  append(slices.Clone(f.ResourceKeys), "service.name"),
		span: f.SpanKeys, scopeAttrs: f.ScopeAttrs, events: f.Events,
	}
}

// project appends the projection of src (an encoded TracesData, or several
// concatenated) to dst.
func (p *partProjector) project(dst, src []byte) ([]byte, error) {
	return p.fields(dst, src, func(dst []byte, num protowire.Number, val []byte) ([]byte, bool, error) {
		if num != 1 { // resource_spans
			return dst, false, nil
		}
		dst, err := p.sub(dst, num, val, 0, p.resourceSpans)
		return dst, true, err
	})
}

func (p *partProjector) resourceSpans(dst, src []byte) ([]byte, error) {
	return p.fields(dst, src, func(dst []byte, num protowire.Number, val []byte) ([]byte, bool, error) {
		var err error
		switch num {
		case 1: // resource
			dst, err = p.sub(dst, num, val, 1, func(dst, src []byte) ([]byte, error) { return p.attrs(dst, src, 1, p.res) })
		case 2: // scope_spans
			dst, err = p.sub(dst, num, val, 1, p.scopeSpans)
		default:
			return dst, false, nil
		}
		return dst, true, err
	})
}

func (p *partProjector) scopeSpans(dst, src []byte) ([]byte, error) {
	return p.fields(dst, src, func(dst []byte, num protowire.Number, val []byte) ([]byte, bool, error) {
		var err error
		switch {
		case num == 1 && !p.scopeAttrs: // scope, without its attributes
			dst, err = p.sub(dst, num, val, 2, func(dst, src []byte) ([]byte, error) { return p.attrs(dst, src, 3, nil) })
		case num == 2: // spans
			dst, err = p.sub(dst, num, val, 2, p.spanFields)
		default:
			return dst, false, nil
		}
		return dst, true, err
	})
}

func (p *partProjector) spanFields(dst, src []byte) ([]byte, error) {
	return p.fields(dst, src, func(dst []byte, num protowire.Number, val []byte) ([]byte, bool, error) {
		switch {
		case num == 9: // attributes
			keep, err := keyIn(val, p.span)
			if err != nil || !keep {
				return dst, true, err
			}
		case num == 11 && !p.events: // events
			return dst, true, nil
		}
		return dst, false, nil
	})
}

// attrs copies a message's fields but its attributes (field attrField)
// whose key is not in keep.
func (p *partProjector) attrs(dst, src []byte, attrField protowire.Number, keep []string) ([]byte, error) {
	return p.fields(dst, src, func(dst []byte, num protowire.Number, val []byte) ([]byte, bool, error) {
		if num != attrField {
			return dst, false, nil
		}
		in, err := keyIn(val, keep)
		return dst, !in, err
	})
}

// fields walks the fields of src. fn handles a length-delimited one: it
// returns handled false to have the field copied as it is.
func (p *partProjector) fields(dst, src []byte, fn func(dst []byte, num protowire.Number, val []byte) ([]byte, bool, error)) ([]byte, error) {
	for len(src) > 0 {
		num, typ, val, _, rest, err := nextField(src)
		if err != nil {
			return dst, err
		}
		whole := src[:len(src)-len(rest)]
		src = rest
		if typ == protowire.BytesType {
			var handled bool
			if dst, handled, err = fn(dst, num, val); err != nil {
				return dst, err
			}
			if handled {
				continue
			}
		}
		dst = append(dst, whole...)
	}
	return dst, nil
}

// sub appends field num holding build(val), built in the scratch buffer
// of depth d.
func (p *partProjector) sub(dst []byte, num protowire.Number, val []byte, d int, build func(dst, src []byte) ([]byte, error)) ([]byte, error) {
	b, err := build(p.scratch[d][:0], val)
	p.scratch[d] = b
	if err != nil {
		return dst, err
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	return protowire.AppendBytes(dst, b), nil
}

// keyIn reports whether the key of an encoded KeyValue is one of keys.
func keyIn(kv []byte, keys []string) (bool, error) {
	key, err := kvKey(kv)
	if err != nil {
		return false, err
	}
	for _, k := range keys {
		if string(key) == k {
			return true, nil
		}
	}
	return false, nil
}
