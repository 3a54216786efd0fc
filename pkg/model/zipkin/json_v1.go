package zipkin

import (
	"fmt"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/rubatodb/rubato/pkg/model/internal/jsonlex"
)

// ParseJSONV1 decodes a Zipkin v1 JSON array of spans and converts it.
func ParseJSONV1(data []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	spans, err := DecodeJSONV1(data, nil)
	if err != nil {
		return nil, err
	}
	return ToOTLP(spans), nil
}

type v1Annotation struct {
	Annotation
	endpoint Endpoint
}

type v1Binary struct {
	key, value string
	isBool     bool
	endpoint   Endpoint
}

type v1Span struct {
	traceHigh, traceLow uint64
	id, parent          uint64
	name                string
	timestamp, duration uint64
	debug               bool
	annotations         []v1Annotation
	binary              []v1Binary
}

// DecodeJSONV1 appends the v2 form of the spans in a Zipkin v1 JSON array to
// dst. A v1 span carrying both client (cs/cr) and server (sr/ss) annotations
// becomes two spans, client then server (shared), as Zipkin's own v1→v2
// converter does.
func DecodeJSONV1(data []byte, dst []Span) ([]Span, error) {
	err := readSpanList(data, func(r *jsonlex.Reader) error {
		var v v1Span
		if err := readSpanV1(r, &v); err != nil {
			return err
		}
		dst = v.toV2(dst)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}

// readSpanList reads a JSON array of spans, calling each with the reader
// positioned on every element; null or trailing garbage is ErrInvalid.
func readSpanList(data []byte, each func(r *jsonlex.Reader) error) error {
	var r jsonlex.Reader
	r.Reset(data)
	if r.Array() {
		for r.NextElem() {
			if err := each(&r); err != nil {
				return err
			}
		}
	} else if r.Err() == nil {
		return fmt.Errorf("%w: null instead of a list of spans", ErrInvalid)
	}
	if err := r.End(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func readSpanV1(r *jsonlex.Reader, s *v1Span) error {
	if !r.Object() {
		if r.Err() != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, r.Err())
		}
		return fmt.Errorf("%w: null span", ErrInvalid)
	}
	var err error
	var hasTrace, hasID bool
	for k, ok := r.NextKey(); ok && err == nil; k, ok = r.NextKey() {
		switch string(k) {
		case "traceId":
			s.traceHigh, s.traceLow, err = parseHexID(r.Bytes(), 32)
			hasTrace = true
		case "traceIdHigh":
			var hi uint64
			_, hi, err = parseHexID(r.Bytes(), 16)
			s.traceHigh = hi
		case "id":
			_, s.id, err = parseHexID(r.Bytes(), 16)
			hasID = true
		case "parentId":
			if p := r.Bytes(); len(p) > 0 {
				_, s.parent, err = parseHexID(p, 16)
			}
		case "name":
			s.name = r.String()
		case "timestamp":
			s.timestamp = r.Uint64()
		case "duration":
			s.duration = r.Uint64()
		case "debug":
			s.debug = r.Bool()
		case "annotations":
			if r.Array() {
				for r.NextElem() && err == nil {
					var a v1Annotation
					if r.Object() {
						for k, ok := r.NextKey(); ok && err == nil; k, ok = r.NextKey() {
							switch string(k) {
							case "timestamp":
								a.Timestamp = r.Uint64()
							case "value":
								a.Value = r.String()
							case "endpoint":
								err = readEndpoint(r, &a.endpoint)
							default:
								r.Skip()
							}
						}
					}
					s.annotations = append(s.annotations, a)
				}
			}
		case "binaryAnnotations":
			if r.Array() {
				for r.NextElem() && err == nil {
					var a v1Binary
					if r.Object() {
						for k, ok := r.NextKey(); ok && err == nil; k, ok = r.NextKey() {
							switch string(k) {
							case "key":
								a.key = r.String()
							case "value":
								a.isBool = r.Peek() == jsonlex.Bool
								a.value, _ = scalarString(r)
							case "endpoint":
								err = readEndpoint(r, &a.endpoint)
							default:
								r.Skip()
							}
						}
					}
					s.binary = append(s.binary, a)
				}
			}
		default:
			r.Skip()
		}
	}
	if err != nil {
		return err
	}
	if r.Err() != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, r.Err())
	}
	if !hasTrace || !hasID {
		return fmt.Errorf("%w: span without traceId or id", ErrInvalid)
	}
	return nil
}

// toV2 applies the v1 rules: core annotations (cs, cr, sr, ss, ms, mr) give
// kind, local endpoint and, when the span has none, timestamp and duration;
// other annotations stay annotations; address binary annotations (sa, ca,
// ma) give the remote endpoint; every other binary annotation is a tag.
func (v *v1Span) toV2(dst []Span) []Span {
	var cs, cr, sr, ss, ms, mr *v1Annotation
	var other []Annotation
	for i := range v.annotations {
		a := &v.annotations[i]
		switch a.Value {
		case "cs":
			cs = a
		case "cr":
			cr = a
		case "sr":
			sr = a
		case "ss":
			ss = a
		case "ms":
			ms = a
		case "mr":
			mr = a
		default:
			other = append(other, a.Annotation)
		}
	}
	base := Span{
		TraceIDHigh: v.traceHigh, TraceIDLow: v.traceLow,
		ID: v.id, ParentID: v.parent, Name: v.name,
		Timestamp: v.timestamp, Duration: v.duration, Debug: v.debug,
		Annotations: other,
	}
	var sa, ca, ma, lc *v1Binary
	for i := range v.binary {
		bin := &v.binary[i]
		switch {
		case bin.key == "sa" && bin.isBool:
			sa = bin
		case bin.key == "ca" && bin.isBool:
			ca = bin
		case bin.key == "ma" && bin.isBool:
			ma = bin
		default:
			if bin.key == "lc" {
				lc = bin
			}
			base.Tags = append(base.Tags, Tag{Key: bin.key, Value: bin.value})
		}
	}
	fill := func(s *Span, begin, end *v1Annotation) {
		if begin != nil {
			s.Local = begin.endpoint
			if s.Timestamp == 0 {
				s.Timestamp = begin.Timestamp
			}
			if end != nil && s.Duration == 0 && end.Timestamp > begin.Timestamp {
				s.Duration = end.Timestamp - begin.Timestamp
			}
		} else if end != nil {
			s.Local = end.endpoint
		}
	}
	client, server := cs != nil || cr != nil, sr != nil || ss != nil
	switch {
	case client && server:
		c := base
		c.Kind = KindClient
		c.Tags = append([]Tag(nil), base.Tags...)
		fill(&c, cs, cr)
		if sa != nil {
			c.Remote = sa.endpoint
		}
		s := base
		s.Kind, s.Shared = KindServer, true
		s.Annotations, s.Tags = nil, nil
		s.Timestamp, s.Duration = 0, 0
		fill(&s, sr, ss)
		if ca != nil {
			s.Remote = ca.endpoint
		}
		return append(dst, c, s)
	case client:
		base.Kind = KindClient
		fill(&base, cs, cr)
		if sa != nil {
			base.Remote = sa.endpoint
		}
	case server:
		base.Kind = KindServer
		fill(&base, sr, ss)
		if ca != nil {
			base.Remote = ca.endpoint
		}
	case ms != nil:
		base.Kind = KindProducer
		fill(&base, ms, nil)
		if ma != nil {
			base.Remote = ma.endpoint
		}
	case mr != nil:
		base.Kind = KindConsumer
		fill(&base, mr, nil)
		if ma != nil {
			base.Remote = ma.endpoint
		}
	default:
		switch {
		case sa != nil:
			base.Kind, base.Remote = KindClient, sa.endpoint
		case ca != nil:
			base.Kind, base.Remote = KindServer, ca.endpoint
		}
	}
	if base.Local.empty() {
		switch {
		case lc != nil && !lc.endpoint.empty():
			base.Local = lc.endpoint
		case len(v.annotations) > 0:
			base.Local = v.annotations[0].endpoint
		default:
			for _, bin := range v.binary {
				if bin.key != "sa" && bin.key != "ca" && bin.key != "ma" && !bin.endpoint.empty() {
					base.Local = bin.endpoint
					break
				}
			}
		}
	}
	return append(dst, base)
}
