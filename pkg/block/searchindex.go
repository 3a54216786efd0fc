package block

import (
	"math"
	"slices"

	"github.com/rubatodb/rubato/pkg/block/pq"
)

// The search index (format v2, object search-index): a small summary of
// a block's values that lets a search skip the block, or some of its row
// groups, without reading data.parquet, and serves tag autocompletion.
// FORMAT.md draws the bytes. It is bounded whatever the data: at most
// maxIndexKeys attribute names per scope, maxIndexValues distinct
// strings (and maxValueBytes of them) per name or intrinsic,
// maxIndexInts distinct ints per name, and maxIndexBytes of values in
// all; past a cap the set is marked overflowed (its values are then a
// sample, and say nothing about absent values), so a block of URLs with
// IDs keeps a small index. Every set is a superset of what the block
// holds (values of spans later dropped by the compactor may remain), so
// a value absent from a set that did not overflow is absent from the
// block.

// Caps of the search index.
const (
	maxIndexKeys   = 1000     // attribute names per scope
	maxIndexValues = 1000     // distinct strings per set
	maxValueBytes  = 32 << 10 // string bytes per set
	maxIndexInts   = 64       // distinct ints per attribute name
	maxIndexBytes  = 1 << 20  // string bytes over the whole index
	maxValueLen    = 1 << 10  // longer strings are not kept (the set overflows)

	// An attribute name whose string set overflowed gets a bloom filter
	// of its values (for equality), unless it has more than
	// maxBloomValues distinct values; the writer holds at most
	// maxIndexHashes value hashes in all, and the index at most
	// maxBloomBytes of filters (names in order).
	maxBloomValues = 1 << 17
	maxIndexHashes = 1 << 20
	maxBloomBytes  = 1 << 20
	bloomValueFP   = 0.01
)

// Kinds seen for an attribute name (keyIndex.kinds).
const (
	seenString = 1 << iota
	seenInt
	seenFloat
	seenBool
	seenOther   // bytes, arrays, maps, no value: may match anything
	seenGeneric // some value is stored in Attrs (not in a dedicated column)
)

// strSet is a capped set of strings.
type strSet struct {
	vals     map[string]struct{}
	bytes    int
	overflow bool
}

func (s *strSet) add(v string, budget *int) {
	if s.overflow {
		return
	}
	if _, ok := s.vals[v]; ok {
		return
	}
	if len(s.vals) >= maxIndexValues || s.bytes+len(v) > maxValueBytes || len(v) > maxValueLen || *budget < len(v) {
		s.overflow = true
		return
	}
	if s.vals == nil {
		s.vals = map[string]struct{}{}
	}
	s.vals[v] = struct{}{}
	s.bytes += len(v)
	*budget -= len(v)
}

// mayHold tells whether some string of the set may satisfy p.
func (s *strSet) mayHold(p *pred) bool {
	if s.overflow {
		return true
	}
	for v := range s.vals {
		if p.matchStr(v) {
			return true
		}
	}
	return false
}

func (s *strSet) sorted() []string {
	out := make([]string, 0, len(s.vals))
	for v := range s.vals {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// numRange is the range of a numeric column, plus whether it is set.
type numRange struct {
	set      bool
	min, max int64
}

func (r *numRange) add(v int64) {
	if !r.set {
		r.set, r.min, r.max = true, v, v
		return
	}
	r.min, r.max = min(r.min, v), max(r.max, v)
}

// mayHold tells whether some int in [min, max] may satisfy p.
func (r *numRange) mayHold(p *pred) bool {
	if !r.set {
		return false
	}
	switch p.Op {
	case PredEq:
		i, f, isInt, ok := p.numeric()
		if !ok {
			return p.matchInt(r.min)
		}
		if isInt {
			return r.min <= i && i <= r.max
		}
		return float64(r.min) <= f && f <= float64(r.max)
	case PredNe:
		return r.min != r.max || p.matchInt(r.min)
	case PredLt, PredLe:
		return p.matchInt(r.min)
	case PredGt, PredGe:
		return p.matchInt(r.max)
	}
	return true
}

// keyIndex summarises the values of one attribute name.
type keyIndex struct {
	kinds        uint8
	strs         strSet
	ints         numRange
	intSet       map[int64]struct{} // nil once overflowed
	intOverflow  bool
	fmin, fmax   float64
	bools        uint8 // bit 0: false seen, bit 1: true seen
	floatSeen    bool
	floatSpecial bool // NaN seen
	// bloom holds every string value once strs overflowed (nil: none).
	// While building, hashes collects them (nil once noBloom).
	bloom   *Bloom
	hashes  map[uint64]struct{}
	noBloom bool
}

// addHash records a string value for the bloom filter of an overflowed set.
func (x *searchIndex) addHash(k *keyIndex, v string) {
	if k.noBloom {
		return
	}
	if k.hashes == nil {
		k.hashes = make(map[uint64]struct{}, len(k.strs.vals)+1)
		for s := range k.strs.vals {
			k.hashes[HashID([]byte(s))] = struct{}{}
		}
		x.hashCount += len(k.hashes)
	}
	h := HashID([]byte(v))
	if _, ok := k.hashes[h]; ok {
		return
	}
	if len(k.hashes) >= maxBloomValues || x.hashCount >= maxIndexHashes {
		x.hashCount -= len(k.hashes)
		k.hashes, k.noBloom = nil, true
		return
	}
	k.hashes[h] = struct{}{}
	x.hashCount++
}

func (k *keyIndex) addInt(v int64) {
	k.kinds |= seenInt
	k.ints.add(v)
	if k.intOverflow {
		return
	}
	if _, ok := k.intSet[v]; ok {
		return
	}
	if len(k.intSet) >= maxIndexInts {
		k.intSet, k.intOverflow = nil, true
		return
	}
	if k.intSet == nil {
		k.intSet = map[int64]struct{}{}
	}
	k.intSet[v] = struct{}{}
}

func (k *keyIndex) addFloat(v float64) {
	k.kinds |= seenFloat
	if math.IsNaN(v) {
		k.floatSpecial = true
		return
	}
	if !k.floatSeen {
		k.floatSeen, k.fmin, k.fmax = true, v, v
		return
	}
	k.fmin, k.fmax = min(k.fmin, v), max(k.fmax, v)
}

func (k *keyIndex) addBool(v bool) {
	k.kinds |= seenBool
	if v {
		k.bools |= 2
	} else {
		k.bools |= 1
	}
}

// mayHold tells whether some value of the name may satisfy p.
func (k *keyIndex) mayHold(p *pred) bool {
	if k.kinds&seenOther != 0 {
		return true
	}
	if k.kinds&seenString != 0 {
		if k.strs.overflow && k.bloom != nil && p.Op == PredEq && p.Value.Type == ValString {
			if k.bloom.Test(HashID([]byte(p.Value.Str))) {
				return true
			}
		} else if k.strs.mayHold(p) {
			return true
		}
	}
	if k.kinds&seenInt != 0 {
		if k.intOverflow {
			if k.ints.mayHold(p) {
				return true
			}
		} else {
			for v := range k.intSet {
				if p.matchInt(v) {
					return true
				}
			}
		}
	}
	if k.kinds&seenFloat != 0 && (k.floatSpecial || (k.floatSeen && floatRangeMayHold(p, k.fmin, k.fmax))) {
		return true
	}
	if k.kinds&seenBool != 0 && ((k.bools&1 != 0 && p.matchBool(false)) || (k.bools&2 != 0 && p.matchBool(true))) {
		return true
	}
	return false
}

// floatRangeMayHold tells whether some float in [lo, hi] may satisfy p.
func floatRangeMayHold(p *pred, lo, hi float64) bool {
	switch p.Op {
	case PredEq:
		if _, f, _, ok := p.numeric(); ok {
			return lo <= f && f <= hi
		}
		return p.matchFloat(lo)
	case PredNe:
		return lo != hi || p.matchFloat(lo)
	case PredLt, PredLe:
		return p.matchFloat(lo)
	case PredGt, PredGe:
		return p.matchFloat(hi)
	}
	return true
}

// scopeIndex is the attribute names of one TagScope.
type scopeIndex struct {
	keys     map[string]*keyIndex
	overflow bool // more names than maxIndexKeys: absence proves nothing
}

func (s *scopeIndex) key(k string) *keyIndex {
	if ki := s.keys[k]; ki != nil {
		return ki
	}
	if s.overflow || len(s.keys) >= maxIndexKeys || len(k) > maxValueLen {
		s.overflow = true
		return nil
	}
	if s.keys == nil {
		s.keys = map[string]*keyIndex{}
	}
	ki := &keyIndex{}
	s.keys[k] = ki
	return ki
}

// rgTimes is one row group's row time range: the smallest
// StartTimeUnixNano and the largest EndTimeUnixNano of its rows.
type rgTimes struct{ start, end uint64 }

// searchIndex is a decoded (or building) search index.
type searchIndex struct {
	scopes [numTagScopes]scopeIndex
	// Span and trace intrinsics.
	names, statusMsgs, rootNames, rootSvcs strSet
	statuses, kinds                        uint8 // bit c for code c < 7, bit 7 for any other
	durations, traceDurations              numRange
	rowGroups                              []rgTimes
	budget                                 int // string bytes left (building)
	hashCount                              int // value hashes held (building)
}

func newSearchIndex() *searchIndex { return &searchIndex{budget: maxIndexBytes} }

func codeBit(c int64) uint8 {
	if c < 0 || c > 6 {
		return 1 << 7
	}
	return 1 << c
}

// addAttr records one attribute value of a kind (schema.go's kind codes).
func (x *searchIndex) addAttr(sc TagScope, key string, kind int32, s string, i int64, f float64, generic bool) {
	k := x.scopes[sc].key(key)
	if k == nil {
		return
	}
	if generic {
		k.kinds |= seenGeneric
	}
	switch kind {
	case kindString:
		k.kinds |= seenString
		k.strs.add(s, &x.budget)
		if k.strs.overflow {
			x.addHash(k, s)
		}
	case kindInt:
		k.addInt(i)
	case kindDouble:
		k.addFloat(f)
	case kindBool:
		k.addBool(i != 0)
	default:
		k.kinds |= seenOther
	}
}

// mayHold tells whether the block may hold something satisfying p.
func (x *searchIndex) mayHold(p *pred) bool {
	switch p.Scope {
	case PredSpanIntrinsic, PredTraceIntrinsic:
		switch p.intrinsic {
		case inName:
			return x.names.mayHold(p)
		case inStatusMessage:
			return x.statusMsgs.mayHold(p)
		case inRootName:
			return x.rootNames.mayHold(p)
		case inRootServiceName:
			return x.rootSvcs.mayHold(p)
		case inStatus:
			return maskMayHold(x.statuses, p)
		case inKind:
			return maskMayHold(x.kinds, p)
		case inDuration:
			return x.durations.mayHold(p)
		case inTraceDuration:
			return x.traceDurations.mayHold(p)
		}
		return true
	}
	for sc, ps := range tagPredScopes {
		if !p.isAttr(ps) {
			continue
		}
		s := &x.scopes[sc]
		if s.overflow {
			return true
		}
		if k := s.keys[p.Key]; k != nil && k.mayHold(p) {
			return true
		}
	}
	return false
}

// tagPredScopes maps a TagScope to its PredScope.
var tagPredScopes = [numTagScopes]PredScope{PredResource, PredSpan, PredEvent, PredLink, PredInstrumentation}

func maskMayHold(m uint8, p *pred) bool {
	if m&(1<<7) != 0 {
		return true
	}
	for c := range int64(7) {
		if m&(1<<c) != 0 && p.matchInt(c) {
			return true
		}
	}
	return false
}

// addTraceRow records a row being written by Writer.Add.
func (x *searchIndex) addTraceRow(r *traceRow) {
	roots := 0
	defer func() { x.noRoot(roots) }()
	attrs := func(sc TagScope, as []attrRow) {
		for i := range as {
			a := &as[i]
			x.addAttr(sc, a.Key, a.Kind, a.Str, a.Int, a.Double, true)
		}
	}
	for i := range r.ResourceSpans {
		rs := &r.ResourceSpans[i]
		for _, d := range resourceDedicated {
			if *d.pos(&rs.Resource) > 0 {
				x.addAttr(TagResource, d.key, kindString, *d.str(&rs.Resource), 0, 0, false)
			}
		}
		attrs(TagResource, rs.Resource.Attrs)
		for j := range rs.ScopeSpans {
			ss := &rs.ScopeSpans[j]
			attrs(TagInstrumentation, ss.Scope.Attrs)
			for k := range ss.Spans {
				sp := &ss.Spans[k]
				x.addSpan(sp.Name, sp.Kind, sp.StatusCode, sp.StatusMessage, sp.DurationNano)
				if sp.ParentIdx == 0 && len(sp.ParentSpanID) == 0 {
					roots++
					x.rootNames.add(sp.Name, &x.budget)
					x.rootSvcs.add(rootService(&rs.Resource), &x.budget)
				}
				for _, d := range spanDedicated {
					if *d.pos(sp) > 0 {
						if d.isInt {
							x.addAttr(TagSpan, d.key, kindInt, "", *d.num(sp), 0, false)
						} else {
							x.addAttr(TagSpan, d.key, kindString, *d.str(sp), 0, 0, false)
						}
					}
				}
				attrs(TagSpan, sp.Attrs)
				for e := range sp.Events {
					attrs(TagEvent, sp.Events[e].Attrs)
				}
				for l := range sp.Links {
					attrs(TagLink, sp.Links[l].Attrs)
				}
			}
		}
	}
}

// addSpan records a span's intrinsics.
func (x *searchIndex) addSpan(name string, kind, status int32, msg string, dur uint64) {
	x.names.add(name, &x.budget)
	x.statusMsgs.add(msg, &x.budget)
	x.statuses |= codeBit(int64(status))
	x.kinds |= codeBit(int64(kind))
	addDuration(&x.durations, dur)
}

// addDuration records a duration; one past math.MaxInt64 (a span ending
// before it starts) may match anything, so it widens the range fully.
func addDuration(r *numRange, d uint64) {
	if d > math.MaxInt64 {
		r.add(math.MinInt64)
		r.add(math.MaxInt64)
		return
	}
	r.add(int64(d))
}

// addCells records a row copied by Writer.AddRow, from its cells.
func (x *searchIndex) addCells(cells []pq.Cell) {
	roots := 0
	defer func() { x.noRoot(roots) }()
	walkCells(cells, &cellVisitor{
		attr: func(sc TagScope, key []byte, kind int32, s []byte, i int64, f float64, generic bool) {
			x.addAttr(sc, string(key), kind, string(s), i, f, generic)
		},
		span: func(name []byte, kind, status int32, msg []byte, dur uint64, root bool, svc []byte) {
			x.addSpan(string(name), kind, status, string(msg), dur)
			if root {
				roots++
				x.rootNames.add(string(name), &x.budget)
				x.rootSvcs.add(string(svc), &x.budget)
			}
		},
	})
}

// rootService is a resource's service.name as a root span's service.
func rootService(r *resourceRow) string {
	if r.ServiceNamePos > 0 {
		return r.ServiceName
	}
	return ""
}

// noRoot notes a row without a root span: what such a trace's root name
// and service are is not known here, so the root sets can no longer
// exclude anything.
func (x *searchIndex) noRoot(roots int) {
	if roots == 0 {
		x.rootNames.overflow, x.rootSvcs.overflow = true, true
	}
}

// keysOverflow tells whether some scope has more names than the index kept.
func (x *searchIndex) keysOverflow() bool {
	for i := range x.scopes {
		if x.scopes[i].overflow {
			return true
		}
	}
	return false
}
