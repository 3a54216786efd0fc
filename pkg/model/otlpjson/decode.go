package otlpjson

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/model/internal/jsonlex"
)

// ErrInvalid is wrapped by every error Decode returns.
var ErrInvalid = errors.New("otlpjson: invalid request")

// Decode parses one OTLP/JSON ExportTraceServiceRequest.
func Decode(data []byte) (*coltracepb.ExportTraceServiceRequest, error) {
	d := decoder{}
	d.r.Reset(data)
	req := &coltracepb.ExportTraceServiceRequest{}
	if d.r.Object() {
		for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
			switch string(k) {
			case "resourceSpans", "resource_spans":
				if d.r.Array() {
					for d.r.NextElem() {
						req.ResourceSpans = append(req.ResourceSpans, d.resourceSpans())
					}
				}
			default:
				d.r.Skip()
			}
		}
	} else if d.r.Err() == nil {
		return nil, fmt.Errorf("%w: top level is null", ErrInvalid)
	}
	if err := d.r.End(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return req, nil
}

type decoder struct {
	r jsonlex.Reader
}

func (d *decoder) resourceSpans() *tracepb.ResourceSpans {
	rs := &tracepb.ResourceSpans{}
	if !d.r.Object() {
		return rs
	}
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "resource":
			rs.Resource = d.resource()
		case "scopeSpans", "scope_spans":
			if d.r.Array() {
				for d.r.NextElem() {
					rs.ScopeSpans = append(rs.ScopeSpans, d.scopeSpans())
				}
			}
		case "schemaUrl", "schema_url":
			rs.SchemaUrl = d.r.String()
		default:
			d.r.Skip()
		}
	}
	return rs
}

func (d *decoder) resource() *resourcepb.Resource {
	if !d.r.Object() {
		return nil
	}
	res := &resourcepb.Resource{}
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "attributes":
			res.Attributes = d.attributes(res.Attributes)
		case "droppedAttributesCount", "dropped_attributes_count":
			res.DroppedAttributesCount = d.uint32()
		default:
			d.r.Skip()
		}
	}
	return res
}

func (d *decoder) scopeSpans() *tracepb.ScopeSpans {
	ss := &tracepb.ScopeSpans{}
	if !d.r.Object() {
		return ss
	}
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "scope":
			ss.Scope = d.scope()
		case "spans":
			if d.r.Array() {
				for d.r.NextElem() {
					ss.Spans = append(ss.Spans, d.span())
				}
			}
		case "schemaUrl", "schema_url":
			ss.SchemaUrl = d.r.String()
		default:
			d.r.Skip()
		}
	}
	return ss
}

func (d *decoder) scope() *commonpb.InstrumentationScope {
	if !d.r.Object() {
		return nil
	}
	sc := &commonpb.InstrumentationScope{}
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "name":
			sc.Name = d.r.String()
		case "version":
			sc.Version = d.r.String()
		case "attributes":
			sc.Attributes = d.attributes(sc.Attributes)
		case "droppedAttributesCount", "dropped_attributes_count":
			sc.DroppedAttributesCount = d.uint32()
		default:
			d.r.Skip()
		}
	}
	return sc
}

func (d *decoder) span() *tracepb.Span {
	sp := &tracepb.Span{}
	if !d.r.Object() {
		return sp
	}
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "traceId", "trace_id":
			sp.TraceId = d.id(16)
		case "spanId", "span_id":
			sp.SpanId = d.id(8)
		case "parentSpanId", "parent_span_id":
			sp.ParentSpanId = d.id(8)
		case "traceState", "trace_state":
			sp.TraceState = d.r.String()
		case "flags":
			sp.Flags = d.uint32()
		case "name":
			sp.Name = d.r.String()
		case "kind":
			sp.Kind = tracepb.Span_SpanKind(d.enum(tracepb.Span_SpanKind_value))
		case "startTimeUnixNano", "start_time_unix_nano":
			sp.StartTimeUnixNano = d.r.Uint64()
		case "endTimeUnixNano", "end_time_unix_nano":
			sp.EndTimeUnixNano = d.r.Uint64()
		case "attributes":
			sp.Attributes = d.attributes(sp.Attributes)
		case "droppedAttributesCount", "dropped_attributes_count":
			sp.DroppedAttributesCount = d.uint32()
		case "events":
			if d.r.Array() {
				for d.r.NextElem() {
					sp.Events = append(sp.Events, d.event())
				}
			}
		case "droppedEventsCount", "dropped_events_count":
			sp.DroppedEventsCount = d.uint32()
		case "links":
			if d.r.Array() {
				for d.r.NextElem() {
					sp.Links = append(sp.Links, d.link())
				}
			}
		case "droppedLinksCount", "dropped_links_count":
			sp.DroppedLinksCount = d.uint32()
		case "status":
			sp.Status = d.status()
		default:
			d.r.Skip()
		}
	}
	return sp
}

func (d *decoder) event() *tracepb.Span_Event {
	ev := &tracepb.Span_Event{}
	if !d.r.Object() {
		return ev
	}
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "timeUnixNano", "time_unix_nano":
			ev.TimeUnixNano = d.r.Uint64()
		case "name":
			ev.Name = d.r.String()
		case "attributes":
			ev.Attributes = d.attributes(ev.Attributes)
		case "droppedAttributesCount", "dropped_attributes_count":
			ev.DroppedAttributesCount = d.uint32()
		default:
			d.r.Skip()
		}
	}
	return ev
}

func (d *decoder) link() *tracepb.Span_Link {
	l := &tracepb.Span_Link{}
	if !d.r.Object() {
		return l
	}
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "traceId", "trace_id":
			l.TraceId = d.id(16)
		case "spanId", "span_id":
			l.SpanId = d.id(8)
		case "traceState", "trace_state":
			l.TraceState = d.r.String()
		case "attributes":
			l.Attributes = d.attributes(l.Attributes)
		case "droppedAttributesCount", "dropped_attributes_count":
			l.DroppedAttributesCount = d.uint32()
		case "flags":
			l.Flags = d.uint32()
		default:
			d.r.Skip()
		}
	}
	return l
}

func (d *decoder) status() *tracepb.Status {
	if !d.r.Object() {
		return nil
	}
	st := &tracepb.Status{}
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "message":
			st.Message = d.r.String()
		case "code":
			st.Code = tracepb.Status_StatusCode(d.enum(tracepb.Status_StatusCode_value))
		default:
			d.r.Skip()
		}
	}
	return st
}

// attributes appends a JSON array of KeyValue to dst.
func (d *decoder) attributes(dst []*commonpb.KeyValue) []*commonpb.KeyValue {
	if !d.r.Array() {
		return dst
	}
	for d.r.NextElem() {
		if kv := d.keyValue(); kv != nil {
			dst = append(dst, kv)
		}
	}
	return dst
}

func (d *decoder) keyValue() *commonpb.KeyValue {
	if !d.r.Object() {
		return nil
	}
	kv := &commonpb.KeyValue{}
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "key":
			kv.Key = d.r.String()
		case "value":
			kv.Value = d.anyValue()
		default:
			d.r.Skip()
		}
	}
	return kv
}

func (d *decoder) anyValue() *commonpb.AnyValue {
	if !d.r.Object() {
		return nil
	}
	v := &commonpb.AnyValue{}
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "stringValue", "string_value":
			v.Value = &commonpb.AnyValue_StringValue{StringValue: d.r.String()}
		case "boolValue", "bool_value":
			v.Value = &commonpb.AnyValue_BoolValue{BoolValue: d.r.Bool()}
		case "intValue", "int_value":
			v.Value = &commonpb.AnyValue_IntValue{IntValue: d.r.Int64()}
		case "doubleValue", "double_value":
			v.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: d.r.Float64()}
		case "bytesValue", "bytes_value":
			v.Value = &commonpb.AnyValue_BytesValue{BytesValue: d.base64()}
		case "arrayValue", "array_value":
			arr := &commonpb.ArrayValue{}
			if d.r.Object() {
				for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
					if string(k) != "values" {
						d.r.Skip()
						continue
					}
					if d.r.Array() {
						for d.r.NextElem() {
							if e := d.anyValue(); e != nil {
								arr.Values = append(arr.Values, e)
							}
						}
					}
				}
			}
			v.Value = &commonpb.AnyValue_ArrayValue{ArrayValue: arr}
		case "kvlistValue", "kvlist_value":
			kl := &commonpb.KeyValueList{}
			if d.r.Object() {
				for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
					if string(k) != "values" {
						d.r.Skip()
						continue
					}
					kl.Values = d.attributes(kl.Values)
				}
			}
			v.Value = &commonpb.AnyValue_KvlistValue{KvlistValue: kl}
		default:
			d.r.Skip()
		}
	}
	return v
}

func (d *decoder) uint32() uint32 {
	v := d.r.Uint64()
	if v > math.MaxUint32 {
		d.r.Fail("value %d overflows uint32", v)
		return 0
	}
	return uint32(v)
}

// enum reads an enum as a number or as its proto name.
func (d *decoder) enum(names map[string]int32) int32 {
	if d.r.Peek() == jsonlex.String {
		s := d.r.Bytes()
		if v, ok := names[string(s)]; ok {
			return v
		}
		d.r.Fail("unknown enum value %q", s)
		return 0
	}
	v := d.r.Int64()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.r.Fail("enum value %d out of range", v)
		return 0
	}
	return int32(v)
}

// id reads a hex ID of n bytes; "" and null read as absent (nil).
func (d *decoder) id(n int) []byte {
	s := d.r.Bytes()
	if len(s) == 0 {
		return nil
	}
	if len(s) != 2*n {
		d.r.Fail("id %q is not %d hex digits", s, 2*n)
		return nil
	}
	out := make([]byte, n)
	for i := 0; i < n; i++ {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			d.r.Fail("id %q is not hex", s)
			return nil
		}
		out[i] = hi<<4 | lo
	}
	return out
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func (d *decoder) base64() []byte {
	s := string(d.r.Bytes())
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		d.r.Fail("bytesValue: %v", err)
		return nil
	}
	return b
}
