package ingester

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/rubatodb/rubato/pkg/search"
	"github.com/rubatodb/rubato/pkg/traceql"
)

// The summary of a WAL part is built from its protobuf bytes directly,
// without decoding them into messages (proto.Unmarshal allocates every
// span, attribute and string; this walk allocates nothing but the
// summary). It adds the same items as summarize over the decoded part:
// TestSummaryWireEqualsDecoded checks that the two agree. Where protobuf
// merging would keep only the last of repeated occurrences of a field
// (a scalar, a oneof), every occurrence is added, which only widens the
// summary.

var errWire = errors.New("malformed trace protobuf")

var (
	nameKey = []byte("name")
	msgKey  = []byte("statusMessage")
)

// nextField reads the first field of b, a message's bytes: its number,
// type, value (val for length-delimited fields, v for the numeric ones)
// and what follows it. Fields with a one-byte tag and a one-byte length
// or varint, or a fixed64, most fields of a span, are read inline;
// anything else goes through protowire (FuzzNextField checks that both
// read alike).
func nextField(b []byte) (num protowire.Number, typ protowire.Type, val []byte, v uint64, rest []byte, err error) {
	if len(b) >= 2 && b[0] < 0x80 && b[0] >= 1<<3 {
		num, typ = protowire.Number(b[0]>>3), protowire.Type(b[0]&7)
		switch {
		case typ == protowire.BytesType && b[1] < 0x80:
			if end := 2 + int(b[1]); end <= len(b) {
				return num, typ, b[2:end], 0, b[end:], nil
			}
		case typ == protowire.VarintType && b[1] < 0x80:
			return num, typ, nil, uint64(b[1]), b[2:], nil
		case typ == protowire.Fixed64Type && len(b) >= 9:
			return num, typ, nil, binary.LittleEndian.Uint64(b[1:9]), b[9:], nil
		}
	}
	return nextFieldSlow(b)
}

func nextFieldSlow(b []byte) (num protowire.Number, typ protowire.Type, val []byte, v uint64, rest []byte, err error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, nil, 0, nil, errWire
	}
	b = b[n:]
	switch typ {
	case protowire.BytesType:
		val, n = protowire.ConsumeBytes(b)
	case protowire.VarintType:
		v, n = protowire.ConsumeVarint(b)
	case protowire.Fixed64Type:
		v, n = protowire.ConsumeFixed64(b)
	case protowire.Fixed32Type:
		var x uint32
		x, n = protowire.ConsumeFixed32(b)
		v = uint64(x)
	default:
		n = protowire.ConsumeFieldValue(num, typ, b)
	}
	if n < 0 {
		return 0, 0, nil, 0, nil, errWire
	}
	return num, typ, val, v, b[n:], nil
}

// scan builds the summary of one part from its bytes (a TracesData, or
// several concatenated).
func (b *summaryBuilder) scan(data []byte) (*partSummary, error) {
	s := &partSummary{}
	b.items = b.items[:0]
	for len(data) > 0 {
		num, typ, val, _, rest, err := nextField(data)
		if err != nil {
			return nil, err
		}
		data = rest
		if num == 1 && typ == protowire.BytesType {
			if err := b.scanResourceSpans(s, val); err != nil {
				return nil, err
			}
		}
	}
	b.finish(s)
	return s, nil
}

func (b *summaryBuilder) scanResourceSpans(s *partSummary, data []byte) error {
	for len(data) > 0 {
		num, typ, val, _, rest, err := nextField(data)
		if err != nil {
			return err
		}
		data = rest
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case 1: // resource
			if err := b.resourceAttrs(val); err != nil {
				return err
			}
		case 2: // scope_spans
			if err := b.scanScopeSpans(s, val); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxCachedResources bounds a builder's cache of resources' items.
const maxCachedResources = 4096

// cachedResource is the items of one encoded Resource.
type cachedResource struct {
	raw   []byte
	items []uint64
}

// resourceAttrs adds the items of an encoded Resource's attributes. A
// service's pods send the same resource bytes with every part, so the
// builder remembers the items of the resources it has scanned, keyed by
// their bytes (compared whole: a summary must never lose an item).
func (b *summaryBuilder) resourceAttrs(raw []byte) error {
	h := maphash.Bytes(summarySeed, raw)
	if r := b.resources[h]; r != nil && bytes.Equal(r.raw, raw) {
		b.items = append(b.items, r.items...)
		return nil
	}
	n := len(b.items)
	if err := b.scanAttrsOf(traceql.ScopeResource, raw, 1); err != nil {
		return err
	}
	if b.resources == nil || len(b.resources) >= maxCachedResources {
		b.resources = make(map[uint64]*cachedResource, 64)
	}
	b.resources[h] = &cachedResource{raw: bytes.Clone(raw), items: slices.Clone(b.items[n:])}
	return nil
}

func (b *summaryBuilder) scanScopeSpans(s *partSummary, data []byte) error {
	for len(data) > 0 {
		num, typ, val, _, rest, err := nextField(data)
		if err != nil {
			return err
		}
		data = rest
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case 1: // scope: attributes are field 3
			if err := b.scanAttrsOf(traceql.ScopeInstrumentation, val, 3); err != nil {
				return err
			}
		case 2:
			if err := b.scanSpan(s, val); err != nil {
				return err
			}
		}
	}
	return nil
}

// scanAttrsOf adds the attributes (KeyValue field attrField) of message data.
func (b *summaryBuilder) scanAttrsOf(sc traceql.Scope, data []byte, attrField protowire.Number) error {
	for len(data) > 0 {
		num, typ, val, _, rest, err := nextField(data)
		if err != nil {
			return err
		}
		data = rest
		if num == attrField && typ == protowire.BytesType {
			if err := b.scanKeyValue(sc, val); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *summaryBuilder) scanSpan(s *partSummary, data []byte) error {
	var name, msg []byte
	var nameSeen, msgSeen, codeSeen, kindSeen bool
	var start, end uint64
	for len(data) > 0 {
		num, typ, val, v, rest, err := nextField(data)
		if err != nil {
			return err
		}
		data = rest
		switch {
		case num == 5 && typ == protowire.BytesType:
			if nameSeen && string(name) != string(val) {
				b.items = append(b.items, itemHashBytes(traceql.ScopeIntrinsic, nameKey, tagStr, name, 0))
			}
			name, nameSeen = val, true
		case num == 6 && typ == protowire.VarintType:
			s.kinds |= codeBit(int64(int32(v)))
			kindSeen = true
		case num == 7 && typ == protowire.Fixed64Type:
			start = v
		case num == 8 && typ == protowire.Fixed64Type:
			end = v
		case num == 9 && typ == protowire.BytesType:
			if err := b.scanKeyValue(traceql.ScopeSpan, val); err != nil {
				return err
			}
		case num == 11 && typ == protowire.BytesType:
			if err := b.scanAttrsOf(traceql.ScopeEvent, val, 3); err != nil {
				return err
			}
		case num == 13 && typ == protowire.BytesType:
			if err := b.scanAttrsOf(traceql.ScopeLink, val, 4); err != nil {
				return err
			}
		case num == 15 && typ == protowire.BytesType:
			for st := val; len(st) > 0; {
				n2, t2, v2b, v2, r2, err := nextField(st)
				if err != nil {
					return err
				}
				st = r2
				switch {
				case n2 == 2 && t2 == protowire.BytesType:
					if msgSeen && string(msg) != string(v2b) {
						b.items = append(b.items, itemHashBytes(traceql.ScopeIntrinsic, msgKey, tagStr, msg, 0))
					}
					msg, msgSeen = v2b, true
				case n2 == 3 && t2 == protowire.VarintType:
					s.status |= codeBit(int64(int32(v2)))
					codeSeen = true
				}
			}
		}
	}
	if !codeSeen {
		s.status |= codeBit(0)
	}
	if !kindSeen {
		s.kinds |= codeBit(0)
	}
	b.items = append(b.items,
		itemHashBytes(traceql.ScopeIntrinsic, nameKey, tagStr, name, 0),
		itemHashBytes(traceql.ScopeIntrinsic, msgKey, tagStr, msg, 0))
	s.addSpanTimes(start, end)
	return nil
}

func (b *summaryBuilder) scanKeyValue(sc traceql.Scope, data []byte) error {
	var key []byte
	first := len(b.vals)
	hasValue := false
	for len(data) > 0 {
		num, typ, val, _, rest, err := nextField(data)
		if err != nil {
			return err
		}
		data = rest
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case 1:
			key = val
		case 2:
			hasValue = true
			if err := b.scanAnyValue(val); err != nil {
				return err
			}
		}
	}
	b.items = append(b.items, itemHashBytes(sc, key, tagKey, nil, 0))
	if !hasValue || len(b.vals) == first {
		b.items = append(b.items, itemHashBytes(sc, key, tagOther, nil, 0)) // no value: GetValue() is nil
	}
	for _, v := range b.vals[first:] {
		b.items = append(b.items, itemHashBytes(sc, key, v.tag, v.s, v.n))
	}
	b.vals = b.vals[:first]
	return nil
}

// wireVal is one value of an AnyValue seen on the wire.
type wireVal struct {
	tag byte
	s   []byte
	n   uint64
}

func (b *summaryBuilder) scanAnyValue(data []byte) error {
	for len(data) > 0 {
		num, typ, val, v, rest, err := nextField(data)
		if err != nil {
			return err
		}
		data = rest
		switch {
		case num == 1 && typ == protowire.BytesType:
			b.vals = append(b.vals, wireVal{tag: tagStr, s: val})
		case num == 2 && typ == protowire.VarintType:
			n := uint64(0)
			if v != 0 {
				n = 1
			}
			b.vals = append(b.vals, wireVal{tag: tagBool, n: n})
		case num == 3 && typ == protowire.VarintType:
			b.vals = append(b.vals, wireVal{tag: tagNum, n: numBits(float64(int64(v)))})
		case num == 4 && typ == protowire.Fixed64Type:
			f := math.Float64frombits(v)
			if math.IsNaN(f) {
				b.vals = append(b.vals, wireVal{tag: tagOther})
			} else {
				b.vals = append(b.vals, wireVal{tag: tagNum, n: numBits(f)})
			}
		case num >= 5 && num <= 8: // array, kvlist, bytes, string_value_strindex
			b.vals = append(b.vals, wireVal{tag: tagOther})
		}
	}
	return nil
}

// tagValuesWire adds to v the values of a resource or span attribute tag
// on every span of a WAL part, as search.TagValues.AddTrace does for a
// match-all query over the decoded part, reading the bytes directly (one
// pass over each span) and decoding only the matching values. ok is false
// for any other tag. If bd is not nil, the part's span times are added to
// it.
func tagValuesWire(tag search.Tag, data []byte, v *search.TagValues, bd *bounds) (ok bool, err error) {
	if tag.Scope != search.ScopeResource && tag.Scope != search.ScopeSpan {
		return false, nil
	}
	spanScope := tag.Scope == search.ScopeSpan
	var resArr [2][]byte
	return true, bytesFields(data, func(num protowire.Number, rs []byte) error {
		if num != 1 {
			return nil
		}
		resources := resArr[:0]
		hasSpan := false
		err := bytesFields(rs, func(n protowire.Number, val []byte) error {
			switch n {
			case 1:
				resources = append(resources, val)
			case 2: // scope spans
				return bytesFields(val, func(n2 protowire.Number, sp []byte) error {
					if n2 != 2 {
						return nil
					}
					hasSpan = true
					if spanScope || bd != nil {
						return spanValues(sp, tag.Name, spanScope, v, bd)
					}
					return nil
				})
			}
			return nil
		})
		if err != nil || spanScope || !hasSpan {
			return err
		}
		for _, res := range resources {
			found, err := firstAttr(res, 1, tag.Name, v)
			if err != nil || found {
				return err
			}
		}
		return nil
	})
}

// bytesFields calls fn with each length-delimited field of an encoded
// message, in order, and stops at the first error (of the walk or of fn).
func bytesFields(msg []byte, fn func(num protowire.Number, val []byte) error) error {
	for len(msg) > 0 {
		num, typ, val, _, rest, err := nextField(msg)
		if err != nil {
			return err
		}
		msg = rest
		if typ == protowire.BytesType {
			if err := fn(num, val); err != nil {
				return err
			}
		}
	}
	return nil
}

// walkSpan walks an encoded span once: its times go to bd (if not nil),
// and fn gets each of its length-delimited fields.
func walkSpan(sp []byte, bd *bounds, fn func(num protowire.Number, val []byte) error) error {
	var start, end uint64
	for len(sp) > 0 {
		num, typ, val, x, rest, err := nextField(sp)
		if err != nil {
			return err
		}
		sp = rest
		switch {
		case num == 7 && typ == protowire.Fixed64Type:
			start = x
		case num == 8 && typ == protowire.Fixed64Type:
			end = x
		case typ == protowire.BytesType:
			if err := fn(num, val); err != nil {
				return err
			}
		}
	}
	if bd != nil {
		bd.add(start, end)
	}
	return nil
}

// spanValues walks an encoded span once: its times go to bd (if not nil)
// and, with attrs, the value of its first attribute named key to v.
func spanValues(sp []byte, key string, attrs bool, v *search.TagValues, bd *bounds) error {
	found := !attrs
	return walkSpan(sp, bd, func(num protowire.Number, val []byte) error {
		if num != 9 || found {
			return nil
		}
		is, err := kvKeyIs(val, key)
		if err != nil || !is {
			return err
		}
		found = true
		return addWireValue(val, v)
	})
}

// tagNamesWire adds to v, as (type: scope, value: name), the attribute
// names of every span of a WAL part with its resource, scope, events and
// links, as search.TagNames.AddTrace does for a match-all query over the
// decoded part, reading the bytes directly. Span times go to bd if not nil.
func tagNamesWire(data []byte, v *search.TagValues, bd *bounds) error {
	return bytesFields(data, func(num protowire.Number, rs []byte) error {
		if num != 1 {
			return nil
		}
		var resources [][]byte
		anySpan := false
		err := bytesFields(rs, func(n protowire.Number, val []byte) error {
			switch n {
			case 1:
				resources = append(resources, val)
			case 2:
				spans, err := scopeSpanNames(val, v, bd)
				anySpan = anySpan || spans
				return err
			}
			return nil
		})
		if err != nil || !anySpan {
			return err
		}
		for _, res := range resources {
			if err := attrNames(res, 1, search.ScopeResource, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// scopeSpanNames adds the names of an encoded ScopeSpans' spans (and its
// scope's, if it has a span), reporting whether it has one.
func scopeSpanNames(ss []byte, v *search.TagValues, bd *bounds) (bool, error) {
	var scopes [][]byte
	spans := false
	err := bytesFields(ss, func(n protowire.Number, val []byte) error {
		switch n {
		case 1:
			scopes = append(scopes, val)
		case 2:
			spans = true
			return spanNames(val, v, bd)
		}
		return nil
	})
	if err != nil || !spans {
		return false, err
	}
	for _, sc := range scopes {
		if err := attrNames(sc, 3, search.ScopeInstrumentation, v); err != nil {
			return false, err
		}
	}
	return spans, nil
}

// spanNames walks an encoded span once: the names of its attributes and
// of its events' and links' go to v, its times to bd (if not nil).
func spanNames(sp []byte, v *search.TagValues, bd *bounds) error {
	return walkSpan(sp, bd, func(num protowire.Number, val []byte) error {
		switch num {
		case 9:
			return attrName(val, search.ScopeSpan, v)
		case 11: // event: attributes are field 3
			return attrNames(val, 3, search.ScopeEvent, v)
		case 13: // link: attributes are field 4
			return attrNames(val, 4, search.ScopeLink, v)
		}
		return nil
	})
}

// attrNames adds the keys of the attributes (KeyValues in field
// attrField) of an encoded message.
func attrNames(msg []byte, attrField protowire.Number, scope string, v *search.TagValues) error {
	return bytesFields(msg, func(n protowire.Number, val []byte) error {
		if n != attrField {
			return nil
		}
		return attrName(val, scope, v)
	})
}

// attrName adds the key of an encoded KeyValue ("" if none).
func attrName(kv []byte, scope string, v *search.TagValues) error {
	key, err := kvKey(kv)
	if err != nil {
		return err
	}
	if !utf8.Valid(key) {
		return errors.New("attribute key is not UTF-8")
	}
	v.Add(scope, string(key))
	return nil
}

// addWireValue adds to v the value of an encoded KeyValue as
// TagValues.AddAnyValue adds the decoded one: the value field's messages
// merged, so the last scalar of the oneof counts (none if the last is an
// array, a map or bytes); a string must be UTF-8, as decoding requires.
func addWireValue(kv []byte, v *search.TagValues) error {
	var (
		last protowire.Number // oneof field seen last, 0: none
		str  []byte
		num  uint64
	)
	for len(kv) > 0 {
		n, t, val, _, rest, err := nextField(kv)
		if err != nil {
			return err
		}
		kv = rest
		if n != 2 || t != protowire.BytesType {
			continue
		}
		for len(val) > 0 {
			f, ft, fb, fv, r, err := nextField(val)
			if err != nil {
				return err
			}
			val = r
			switch {
			case f == 1 && ft == protowire.BytesType:
				last, str = f, fb
			case (f == 2 || f == 3) && ft == protowire.VarintType, f == 4 && ft == protowire.Fixed64Type:
				last, num = f, fv
			case f >= 5 && f <= 7 && ft == protowire.BytesType, f == 8 && ft == protowire.VarintType:
				last = f // array, kvlist, bytes, string_value_strindex: no value listed
			}
		}
	}
	switch last {
	case 1:
		if !utf8.Valid(str) {
			return errors.New("string value is not UTF-8")
		}
		v.Add("string", string(str))
	case 2:
		v.Add("bool", strconv.FormatBool(num != 0))
	case 3:
		v.Add("int", strconv.FormatInt(int64(num), 10))
	case 4:
		v.Add("float", strconv.FormatFloat(math.Float64frombits(num), 'g', -1, 64))
	}
	return nil
}

// firstAttr adds the value of the first attribute (KeyValue field
// attrField of message data) named key, and reports whether there is one.
func firstAttr(data []byte, attrField protowire.Number, key string, v *search.TagValues) (bool, error) {
	for len(data) > 0 {
		num, typ, val, _, rest, err := nextField(data)
		if err != nil {
			return false, err
		}
		data = rest
		if num != attrField || typ != protowire.BytesType {
			continue
		}
		is, err := kvKeyIs(val, key)
		if err != nil || !is {
			if err != nil {
				return false, err
			}
			continue
		}
		return true, addWireValue(val, v)
	}
	return false, nil
}

// kvKeyIs reports whether the key of an encoded KeyValue is key.
func kvKeyIs(kv []byte, key string) (bool, error) {
	k, err := kvKey(kv)
	return string(k) == key, err
}

// kvKey returns the key of an encoded KeyValue: its last, as decoding
// keeps (nil if none).
func kvKey(kv []byte) ([]byte, error) {
	var k []byte
	for len(kv) > 0 {
		n, t, fv, _, r, err := nextField(kv)
		if err != nil {
			return nil, err
		}
		kv = r
		if n == 1 && t == protowire.BytesType {
			k = fv
		}
	}
	return k, nil
}
