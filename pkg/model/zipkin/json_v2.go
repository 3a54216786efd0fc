package zipkin

import (
	"fmt"
	"math"
	"net/netip"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/rubatodb/rubato/pkg/model/internal/jsonlex"
)

// ParseJSONV2 decodes a Zipkin v2 JSON array of spans and converts it.
func ParseJSONV2(data []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	spans, err := DecodeJSONV2(data, nil)
	if err != nil {
		return nil, err
	}
	return ToOTLP(spans), nil
}

// DecodeJSONV2 appends the spans of a Zipkin v2 JSON array to dst.
func DecodeJSONV2(data []byte, dst []Span) ([]Span, error) {
	err := readSpanList(data, func(r *jsonlex.Reader) error {
		dst = append(dst, Span{})
		return readSpanV2(r, &dst[len(dst)-1])
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}

func readSpanV2(r *jsonlex.Reader, s *Span) error {
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
			s.TraceIDHigh, s.TraceIDLow, err = parseHexID(r.Bytes(), 32)
			hasTrace = true
		case "id":
			_, s.ID, err = parseHexID(r.Bytes(), 16)
			hasID = true
		case "parentId":
			if p := r.Bytes(); len(p) > 0 {
				_, s.ParentID, err = parseHexID(p, 16)
			}
		case "name":
			s.Name = r.String()
		case "kind":
			s.Kind, err = kindFromName(r.Bytes())
		case "timestamp":
			s.Timestamp = r.Uint64()
		case "duration":
			s.Duration = r.Uint64()
		case "localEndpoint":
			err = readEndpoint(r, &s.Local)
		case "remoteEndpoint":
			err = readEndpoint(r, &s.Remote)
		case "annotations":
			if r.Array() {
				for r.NextElem() {
					var a Annotation
					if r.Object() {
						for k, ok := r.NextKey(); ok; k, ok = r.NextKey() {
							switch string(k) {
							case "timestamp":
								a.Timestamp = r.Uint64()
							case "value":
								a.Value = r.String()
							default:
								r.Skip()
							}
						}
					}
					s.Annotations = append(s.Annotations, a)
				}
			}
		case "tags":
			if r.Object() {
				for k, ok := r.NextKey(); ok; k, ok = r.NextKey() {
					key := string(k)
					if v, ok := scalarString(r); ok {
						s.Tags = append(s.Tags, Tag{Key: key, Value: v})
					}
				}
			}
		case "debug":
			s.Debug = r.Bool()
		case "shared":
			s.Shared = r.Bool()
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

// scalarString reads a tag value. Zipkin tags are strings, but some clients
// send numbers or booleans: they are kept as their JSON text. Null tags are
// dropped; objects and arrays are an error.
func scalarString(r *jsonlex.Reader) (string, bool) {
	switch r.Peek() {
	case jsonlex.String:
		return r.String(), true
	case jsonlex.Number:
		return string(r.RawNumber()), true
	case jsonlex.Bool:
		if r.Bool() {
			return "true", true
		}
		return "false", true
	case jsonlex.Null:
		r.IsNull()
		return "", false
	}
	r.Fail("tag value must be a string")
	return "", false
}

func kindFromName(p []byte) (Kind, error) {
	switch string(p) {
	case "CLIENT":
		return KindClient, nil
	case "SERVER":
		return KindServer, nil
	case "PRODUCER":
		return KindProducer, nil
	case "CONSUMER":
		return KindConsumer, nil
	case "":
		return KindUnspecified, nil
	}
	return 0, fmt.Errorf("%w: unknown kind %q", ErrInvalid, p)
}

func readEndpoint(r *jsonlex.Reader, e *Endpoint) error {
	if !r.Object() {
		return nil
	}
	for k, ok := r.NextKey(); ok; k, ok = r.NextKey() {
		switch string(k) {
		case "serviceName":
			e.ServiceName = r.String()
		case "ipv4":
			e.IPv4 = r.String()
		case "ipv6":
			e.IPv6 = r.String()
		case "port":
			p := r.Int64()
			if p < 0 || p > math.MaxUint16 {
				return fmt.Errorf("%w: port %d", ErrInvalid, p)
			}
			e.Port = int32(p)
		default:
			r.Skip()
		}
	}
	return nil
}

// ipString formats a binary address from protobuf/thrift; "" if invalid.
// An IPv4 address in its 16-byte IPv4-mapped form (what net.ParseIP and
// net.IPv4 return, sent as is by zipkin-go's proto encoder) is written as
// IPv4, as net.IP.String and the JSON encoding of the same span do.
func ipString(p []byte) string {
	if a, ok := netip.AddrFromSlice(p); ok {
		return a.Unmap().String()
	}
	return ""
}
