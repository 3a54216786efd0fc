package combine

import "encoding/binary"

// SpanSet is Rubato's one rule for span identity within a trace, used by
// every path that drops duplicate spans: the read path's Combiner and the
// compactor's merge. Two spans are the same span when their span IDs and
// kinds are equal (kind is part of the identity, so a Zipkin client span
// and the server half sharing its ID are two spans). An empty or all-zero
// span ID is invalid in OTLP but is never the same as another span, so no
// span is ever lost to one.
//
// The usual 8-byte ID makes a 16-byte key with no allocation, so the set of
// a big trace stays compact. The zero value is ready to use; not safe for
// concurrent use.
type SpanSet struct {
	short map[shortSpanKey]struct{}
	long  map[longSpanKey]struct{}
}

type shortSpanKey struct {
	id   uint64
	kind int32
}

type longSpanKey struct {
	id   string
	kind int32
}

// Add records the span (id, kind) and reports whether it is new: false
// means a span with this identity was added before and this one is a
// duplicate to drop.
func (s *SpanSet) Add(id []byte, kind int32) bool {
	if len(id) == 8 {
		k := shortSpanKey{binary.LittleEndian.Uint64(id), kind}
		if k.id == 0 {
			return true
		}
		if s.short == nil {
			s.short = make(map[shortSpanKey]struct{}, 64)
		}
		if _, ok := s.short[k]; ok {
			return false
		}
		s.short[k] = struct{}{}
		return true
	}
	if allZero(id) {
		return true
	}
	if s.long == nil {
		s.long = make(map[longSpanKey]struct{})
	}
	k := longSpanKey{string(id), kind}
	if _, ok := s.long[k]; ok {
		return false
	}
	s.long[k] = struct{}{}
	return true
}

// Reset empties the set, keeping its memory for reuse.
func (s *SpanSet) Reset() {
	clear(s.short)
	clear(s.long)
}

// Len returns how many distinct identities were added (spans with empty or
// all-zero IDs are not counted: they have none).
func (s *SpanSet) Len() int { return len(s.short) + len(s.long) }

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
