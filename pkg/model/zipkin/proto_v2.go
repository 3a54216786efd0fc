package zipkin

import (
	"fmt"
	"math"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

// ParseProtoV2 decodes a Zipkin proto3 ListOfSpans and converts it.
func ParseProtoV2(data []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	spans, err := DecodeProtoV2(data, nil)
	if err != nil {
		return nil, err
	}
	return ToOTLP(spans), nil
}

// DecodeProtoV2 appends the spans of a zipkin.proto3 ListOfSpans to dst. It
// reads the wire format directly (field numbers from openzipkin's
// zipkin.proto), skipping unknown fields.
func DecodeProtoV2(data []byte, dst []Span) ([]Span, error) {
	err := eachField(data, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		dst = append(dst, Span{})
		return decodeSpanProto(v, &dst[len(dst)-1])
	})
	if err != nil {
		return nil, err
	}
	return dst, nil
}

// eachField calls fn for every field of a message. For varint and fixed
// fields x holds the value; for length-delimited fields v holds the bytes.
func eachField(data []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("%w: %w", ErrInvalid, protowire.ParseError(n))
		}
		data = data[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(data)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(data)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(data)
			x = uint64(x32)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %w", ErrInvalid, num, protowire.ParseError(n))
		}
		data = data[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func decodeSpanProto(data []byte, s *Span) error {
	var hasTrace, hasID bool
	err := eachField(data, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		var err error
		switch {
		case num == 1 && typ == protowire.BytesType:
			s.TraceIDHigh, s.TraceIDLow, err = idFromBytes(v, true)
			hasTrace = true
		case num == 2 && typ == protowire.BytesType:
			if len(v) > 0 {
				_, s.ParentID, err = idFromBytes(v, false)
			}
		case num == 3 && typ == protowire.BytesType:
			_, s.ID, err = idFromBytes(v, false)
			hasID = true
		case num == 4 && typ == protowire.VarintType:
			if x <= uint64(KindConsumer) {
				s.Kind = Kind(x)
			}
		case num == 5 && typ == protowire.BytesType:
			s.Name = string(v)
		case num == 6 && typ == protowire.Fixed64Type:
			s.Timestamp = x
		case num == 7 && typ == protowire.VarintType:
			s.Duration = x
		case num == 8 && typ == protowire.BytesType:
			err = decodeEndpointProto(v, &s.Local)
		case num == 9 && typ == protowire.BytesType:
			err = decodeEndpointProto(v, &s.Remote)
		case num == 10 && typ == protowire.BytesType:
			var a Annotation
			err = eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch {
				case num == 1 && typ == protowire.Fixed64Type:
					a.Timestamp = x
				case num == 2 && typ == protowire.BytesType:
					a.Value = string(v)
				}
				return nil
			})
			s.Annotations = append(s.Annotations, a)
		case num == 11 && typ == protowire.BytesType:
			var t Tag
			err = eachField(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				switch {
				case num == 1 && typ == protowire.BytesType:
					t.Key = string(v)
				case num == 2 && typ == protowire.BytesType:
					t.Value = string(v)
				}
				return nil
			})
			s.Tags = append(s.Tags, t)
		case num == 12 && typ == protowire.VarintType:
			s.Debug = x != 0
		case num == 13 && typ == protowire.VarintType:
			s.Shared = x != 0
		}
		return err
	})
	if err != nil {
		return err
	}
	if !hasTrace || !hasID {
		return fmt.Errorf("%w: span without trace_id or id", ErrInvalid)
	}
	return nil
}

func decodeEndpointProto(data []byte, e *Endpoint) error {
	return eachField(data, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			e.ServiceName = string(v)
		case num == 2 && typ == protowire.BytesType:
			e.IPv4 = ipString(v)
		case num == 3 && typ == protowire.BytesType:
			e.IPv6 = ipString(v)
		case num == 4 && typ == protowire.VarintType:
			if p := int32(x); p > 0 && p <= math.MaxUint16 {
				e.Port = p
			}
		}
		return nil
	})
}
