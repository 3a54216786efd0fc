// Package otlpwire splits an encoded OTLP ExportTraceServiceRequest by trace
// ID without decoding it into Go structs: it walks the protobuf wire format,
// validates it, and copies bytes.
//
// Invariants:
//   - Split accepts exactly the inputs that proto.Unmarshal accepts into
//     ExportTraceServiceRequest (well-formed wire format, valid UTF-8 in
//     string fields), except that it refuses messages nested deeper than
//     MaxDepth. Every fragment it returns decodes with proto.Unmarshal.
//   - Each fragment is an encoded TracesData holding every span of one trace
//     ID in request order, with its resource, scope and schema URLs; spans
//     of different traces never share a fragment. Fields unknown to the
//     OTLP version Rubato was built with are kept inside spans, resources and
//     scopes, and dropped at the ResourceSpans and ScopeSpans levels.
//   - Spans whose trace ID is not 16 bytes or is all zero are counted in
//     Invalid and left out of every fragment.
package otlpwire

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// MaxDepth bounds nesting of AnyValue arrays and maps.
const MaxDepth = 64

// ErrMalformed is returned for input proto.Unmarshal would refuse.
var ErrMalformed = errors.New("otlpwire: malformed OTLP protobuf")

// Fragment is every span of one trace, encoded as a TracesData.
type Fragment struct {
	ID    [16]byte
	Spans uint32
	Bytes []byte
}

// Result is a split request.
type Result struct {
	Fragments []Fragment // in order of each trace's first span
	Total     int        // spans in the request
	Invalid   int        // spans without a valid trace ID
}

type span struct {
	b      []byte // the span message (a sub-slice of the request)
	rs, ss int    // owning ResourceSpans and ScopeSpans
}

type resourceSpans struct {
	head []byte // resource and schema_url fields, encoded
}

type scopeSpans struct {
	head []byte // scope and schema_url fields, encoded
	rs   int
}

type trace struct {
	id    [16]byte
	spans []int // indexes into splitter.spans
}

type splitter struct {
	rss    []resourceSpans
	sss    []scopeSpans
	spans  []span
	traces []*trace
	index  map[[16]byte]*trace
	res    Result
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Split validates body and splits it by trace ID. The fragments do not
// alias body.
func Split(body []byte) (*Result, error) {
	s := &splitter{index: map[[16]byte]*trace{}}
	if err := s.request(body); err != nil {
		return nil, err
	}
	s.encode()
	return &s.res, nil
}

// fields walks one message, calling fn for each field with its number, wire
// type, the field's value bytes (for LEN) or raw scalar, and the whole
// field's encoding range [start, end) within b.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, val []byte, v uint64, start, end int) error) error {
	for off := 0; off < len(b); {
		start := off
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 || num > protowire.MaxValidNumber {
			return malformed("bad tag at %d", off)
		}
		off += n
		var val []byte
		var v uint64
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b[off:])
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b[off:])
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b[off:])
		case protowire.BytesType:
			val, n = protowire.ConsumeBytes(b[off:])
		default:
			n = protowire.ConsumeFieldValue(num, typ, b[off:])
		}
		if n < 0 {
			return malformed("bad value of field %d at %d", num, off)
		}
		off += n
		if err := fn(num, typ, val, v, start, off); err != nil {
			return err
		}
	}
	return nil
}

func str(val []byte, what string) error {
	if !utf8.Valid(val) {
		return malformed("%s is not valid UTF-8", what)
	}
	return nil
}

func (s *splitter) request(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, _, _ int) error {
		if num == 1 && typ == protowire.BytesType {
			return s.resourceSpans(val)
		}
		return nil
	})
}

func (s *splitter) resourceSpans(b []byte) error {
	rsIdx := len(s.rss)
	s.rss = append(s.rss, resourceSpans{})
	var head []byte
	var scopes [][]byte
	err := fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, start, end int) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1: // resource
			if err := resource(val); err != nil {
				return err
			}
			head = append(head, b[start:end]...)
		case 2: // scope_spans, handled once the head is complete
			scopes = append(scopes, val)
		case 3: // schema_url
			if err := str(val, "schema_url"); err != nil {
				return err
			}
			head = append(head, b[start:end]...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.rss[rsIdx].head = head
	for _, sc := range scopes {
		if err := s.scopeSpans(sc, rsIdx); err != nil {
			return err
		}
	}
	return nil
}

func resource(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, _, _ int) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			return keyValue(val, 0)
		case 3: // entity_refs: every field is a string
			return fields(val, func(_ protowire.Number, t2 protowire.Type, v2 []byte, _ uint64, _, _ int) error {
				if t2 == protowire.BytesType {
					return str(v2, "entity ref")
				}
				return nil
			})
		}
		return nil
	})
}

func (s *splitter) scopeSpans(b []byte, rsIdx int) error {
	ssIdx := len(s.sss)
	s.sss = append(s.sss, scopeSpans{rs: rsIdx})
	var head []byte
	err := fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, start, end int) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1: // scope
			if err := scope(val); err != nil {
				return err
			}
			head = append(head, b[start:end]...)
		case 2: // spans
			return s.span(val, rsIdx, ssIdx)
		case 3:
			if err := str(val, "schema_url"); err != nil {
				return err
			}
			head = append(head, b[start:end]...)
		}
		return nil
	})
	s.sss[ssIdx].head = head
	return err
}

func scope(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, _, _ int) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1, 2: // name, version
			return str(val, "scope name/version")
		case 3:
			return keyValue(val, 0)
		}
		return nil
	})
}

// span validates one span and files it under its trace.
func (s *splitter) span(b []byte, rsIdx, ssIdx int) error {
	var traceID []byte
	err := fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, _, _ int) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			traceID = val // the last occurrence wins, as in proto.Unmarshal
		case 3, 5: // trace_state, name
			return str(val, "span trace_state/name")
		case 9:
			return keyValue(val, 0)
		case 11:
			return event(val)
		case 13:
			return link(val)
		case 15:
			return status(val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.res.Total++
	if !validTraceID(traceID) {
		s.res.Invalid++
		return nil
	}
	id := [16]byte(traceID)
	t := s.index[id]
	if t == nil {
		t = &trace{id: id}
		s.index[id] = t
		s.traces = append(s.traces, t)
	}
	t.spans = append(t.spans, len(s.spans))
	s.spans = append(s.spans, span{b: b, rs: rsIdx, ss: ssIdx})
	return nil
}

func event(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, _, _ int) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 2:
			return str(val, "event name")
		case 3:
			return keyValue(val, 0)
		}
		return nil
	})
}

func link(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, _, _ int) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 3:
			return str(val, "link trace_state")
		case 4:
			return keyValue(val, 0)
		}
		return nil
	})
}

func status(b []byte) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, _, _ int) error {
		if num == 2 && typ == protowire.BytesType {
			return str(val, "status message")
		}
		return nil
	})
}

func keyValue(b []byte, depth int) error {
	if depth > MaxDepth {
		return malformed("attributes nested deeper than %d", MaxDepth)
	}
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, _, _ int) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			return str(val, "attribute key")
		case 2:
			return anyValue(val, depth+1)
		}
		return nil
	})
}

func anyValue(b []byte, depth int) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, val []byte, _ uint64, _, _ int) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			return str(val, "string value")
		case 5, 6: // array_value{values: AnyValue}, kvlist_value{values: KeyValue}
			return fields(val, func(n2 protowire.Number, t2 protowire.Type, v2 []byte, _ uint64, _, _ int) error {
				if n2 != 1 || t2 != protowire.BytesType {
					return nil
				}
				if depth > MaxDepth {
					return malformed("attributes nested deeper than %d", MaxDepth)
				}
				if num == 5 {
					return anyValue(v2, depth+1)
				}
				return keyValue(v2, depth+1)
			})
		}
		return nil
	})
}

func validTraceID(id []byte) bool {
	if len(id) != 16 {
		return false
	}
	for _, b := range id {
		if b != 0 {
			return true
		}
	}
	return false
}

// encode builds each trace's TracesData: ResourceSpans (field 1) holding
// the resource head and ScopeSpans (field 2) holding the scope head and the
// spans (field 2), grouping consecutive spans of one scope. Lengths are
// known before anything is written, so each fragment is allocated once,
// at its exact size, and written in place.
func (s *splitter) encode() {
	s.res.Fragments = make([]Fragment, len(s.traces))
	for i, t := range s.traces {
		size := 0
		for j := 0; j < len(t.spans); {
			end, body := s.resourceRun(t, j)
			size += protowire.SizeTag(1) + protowire.SizeBytes(body)
			j = end
		}
		out := make([]byte, 0, size)
		for j := 0; j < len(t.spans); {
			end, body := s.resourceRun(t, j)
			out = protowire.AppendTag(out, 1, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(body))
			out = append(out, s.rss[s.spans[t.spans[j]].rs].head...)
			for j < end {
				k, ssLen := s.scopeRun(t, j)
				out = protowire.AppendTag(out, 2, protowire.BytesType)
				out = protowire.AppendVarint(out, uint64(ssLen))
				out = append(out, s.sss[s.spans[t.spans[j]].ss].head...)
				for ; j < k; j++ {
					out = protowire.AppendTag(out, 2, protowire.BytesType)
					out = protowire.AppendBytes(out, s.spans[t.spans[j]].b)
				}
			}
		}
		s.res.Fragments[i] = Fragment{ID: t.id, Spans: uint32(len(t.spans)), Bytes: out}
	}
}

// resourceRun returns the end of the run of t's spans from j that share
// one resource, and the length of the ResourceSpans body encoding them:
// the resource head, then one ScopeSpans per run of spans sharing a scope.
func (s *splitter) resourceRun(t *trace, j int) (end, body int) {
	rs := s.spans[t.spans[j]].rs
	body = len(s.rss[rs].head)
	for j < len(t.spans) && s.spans[t.spans[j]].rs == rs {
		k, ssLen := s.scopeRun(t, j)
		body += protowire.SizeTag(2) + protowire.SizeBytes(ssLen)
		j = k
	}
	return j, body
}

// scopeRun returns the end of the run of t's spans from j that share one
// scope (and so one resource), and the length of their ScopeSpans body.
func (s *splitter) scopeRun(t *trace, j int) (end, body int) {
	ss := s.spans[t.spans[j]].ss
	body = len(s.sss[ss].head)
	for ; j < len(t.spans) && s.spans[t.spans[j]].ss == ss; j++ {
		body += protowire.SizeTag(2) + protowire.SizeBytes(len(s.spans[t.spans[j]].b))
	}
	return j, body
}
