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
		var seen fields
		for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
			switch string(k) {
			case "resourceSpans", "resource_spans":
				if !d.once(&seen, 0, k) {
					continue
				}
				if d.r.Array() {
					for d.nextElem() {
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

// nextElem reports whether the array being read has another element,
// which must be a message: every OTLP/JSON array holds messages, and
// protojson refuses a null among them.
func (d *decoder) nextElem() bool {
	if !d.r.NextElem() {
		return false
	}
	if d.r.Peek() == jsonlex.Null {
		d.r.Fail("null in an array of messages")
		return false
	}
	return true
}

// fields records which fields of one message were read, one bit each.
type fields uint32

// once reports whether field bit of the message being read is met for the
// first time; a field given twice, in either spelling, is an error, as in
// protojson (which would otherwise have to pick one silently).
func (d *decoder) once(seen *fields, bit uint, key []byte) bool {
	if *seen&(1<<bit) != 0 {
		d.r.Fail("duplicate field %q", key)
		return false
	}
	*seen |= 1 << bit
	return true
}

func (d *decoder) resourceSpans() *tracepb.ResourceSpans {
	rs := &tracepb.ResourceSpans{}
	if !d.r.Object() {
		return rs
	}
	var seen fields
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "resource":
			if !d.once(&seen, 0, k) {
				continue
			}
			rs.Resource = d.resource()
		case "scopeSpans", "scope_spans":
			if !d.once(&seen, 1, k) {
				continue
			}
			if d.r.Array() {
				for d.nextElem() {
					rs.ScopeSpans = append(rs.ScopeSpans, d.scopeSpans())
				}
			}
		case "schemaUrl", "schema_url":
			if !d.once(&seen, 2, k) {
				continue
			}
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
	var seen fields
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "attributes":
			if !d.once(&seen, 0, k) {
				continue
			}
			res.Attributes = d.attributes(res.Attributes)
		case "droppedAttributesCount", "dropped_attributes_count":
			if !d.once(&seen, 1, k) {
				continue
			}
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
	var seen fields
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "scope":
			if !d.once(&seen, 0, k) {
				continue
			}
			ss.Scope = d.scope()
		case "spans":
			if !d.once(&seen, 1, k) {
				continue
			}
			if d.r.Array() {
				for d.nextElem() {
					ss.Spans = append(ss.Spans, d.span())
				}
			}
		case "schemaUrl", "schema_url":
			if !d.once(&seen, 2, k) {
				continue
			}
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
	var seen fields
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "name":
			if !d.once(&seen, 0, k) {
				continue
			}
			sc.Name = d.r.String()
		case "version":
			if !d.once(&seen, 1, k) {
				continue
			}
			sc.Version = d.r.String()
		case "attributes":
			if !d.once(&seen, 2, k) {
				continue
			}
			sc.Attributes = d.attributes(sc.Attributes)
		case "droppedAttributesCount", "dropped_attributes_count":
			if !d.once(&seen, 3, k) {
				continue
			}
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
	var seen fields
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "traceId", "trace_id":
			if !d.once(&seen, 0, k) {
				continue
			}
			sp.TraceId = d.id(16)
		case "spanId", "span_id":
			if !d.once(&seen, 1, k) {
				continue
			}
			sp.SpanId = d.id(8)
		case "parentSpanId", "parent_span_id":
			if !d.once(&seen, 2, k) {
				continue
			}
			sp.ParentSpanId = d.id(8)
		case "traceState", "trace_state":
			if !d.once(&seen, 3, k) {
				continue
			}
			sp.TraceState = d.r.String()
		case "flags":
			if !d.once(&seen, 4, k) {
				continue
			}
			sp.Flags = d.uint32()
		case "name":
			if !d.once(&seen, 5, k) {
				continue
			}
			sp.Name = d.r.String()
		case "kind":
			if !d.once(&seen, 6, k) {
				continue
			}
			sp.Kind = tracepb.Span_SpanKind(d.enum(tracepb.Span_SpanKind_value))
		case "startTimeUnixNano", "start_time_unix_nano":
			if !d.once(&seen, 7, k) {
				continue
			}
			sp.StartTimeUnixNano = d.r.Uint64()
		case "endTimeUnixNano", "end_time_unix_nano":
			if !d.once(&seen, 8, k) {
				continue
			}
			sp.EndTimeUnixNano = d.r.Uint64()
		case "attributes":
			if !d.once(&seen, 9, k) {
				continue
			}
			sp.Attributes = d.attributes(sp.Attributes)
		case "droppedAttributesCount", "dropped_attributes_count":
			if !d.once(&seen, 10, k) {
				continue
			}
			sp.DroppedAttributesCount = d.uint32()
		case "events":
			if !d.once(&seen, 11, k) {
				continue
			}
			if d.r.Array() {
				for d.nextElem() {
					sp.Events = append(sp.Events, d.event())
				}
			}
		case "droppedEventsCount", "dropped_events_count":
			if !d.once(&seen, 12, k) {
				continue
			}
			sp.DroppedEventsCount = d.uint32()
		case "links":
			if !d.once(&seen, 13, k) {
				continue
			}
			if d.r.Array() {
				for d.nextElem() {
					sp.Links = append(sp.Links, d.link())
				}
			}
		case "droppedLinksCount", "dropped_links_count":
			if !d.once(&seen, 14, k) {
				continue
			}
			sp.DroppedLinksCount = d.uint32()
		case "status":
			if !d.once(&seen, 15, k) {
				continue
			}
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
	var seen fields
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "timeUnixNano", "time_unix_nano":
			if !d.once(&seen, 0, k) {
				continue
			}
			ev.TimeUnixNano = d.r.Uint64()
		case "name":
			if !d.once(&seen, 1, k) {
				continue
			}
			ev.Name = d.r.String()
		case "attributes":
			if !d.once(&seen, 2, k) {
				continue
			}
			ev.Attributes = d.attributes(ev.Attributes)
		case "droppedAttributesCount", "dropped_attributes_count":
			if !d.once(&seen, 3, k) {
				continue
			}
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
	var seen fields
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "traceId", "trace_id":
			if !d.once(&seen, 0, k) {
				continue
			}
			l.TraceId = d.id(16)
		case "spanId", "span_id":
			if !d.once(&seen, 1, k) {
				continue
			}
			l.SpanId = d.id(8)
		case "traceState", "trace_state":
			if !d.once(&seen, 2, k) {
				continue
			}
			l.TraceState = d.r.String()
		case "attributes":
			if !d.once(&seen, 3, k) {
				continue
			}
			l.Attributes = d.attributes(l.Attributes)
		case "droppedAttributesCount", "dropped_attributes_count":
			if !d.once(&seen, 4, k) {
				continue
			}
			l.DroppedAttributesCount = d.uint32()
		case "flags":
			if !d.once(&seen, 5, k) {
				continue
			}
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
	var seen fields
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "message":
			if !d.once(&seen, 0, k) {
				continue
			}
			st.Message = d.r.String()
		case "code":
			if !d.once(&seen, 1, k) {
				continue
			}
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
	for d.nextElem() {
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
	var seen fields
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		switch string(k) {
		case "key":
			if !d.once(&seen, 0, k) {
				continue
			}
			kv.Key = d.r.String()
		case "value":
			if !d.once(&seen, 1, k) {
				continue
			}
			kv.Value = d.anyValue()
		case "keyStrindex", "key_strindex": // a dictionary reference, meant for profiles
			if !d.once(&seen, 2, k) {
				continue
			}
			kv.KeyStrindex = d.int32()
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
		var member bool
		switch string(k) {
		case "stringValue", "string_value", "boolValue", "bool_value", "intValue", "int_value",
			"doubleValue", "double_value", "bytesValue", "bytes_value", "arrayValue", "array_value",
			"kvlistValue", "kvlist_value", "stringValueStrindex", "string_value_strindex":
			member = true
		}
		if !member {
			d.r.Skip()
			continue
		}
		// A member given as null is absent, as in protojson; a second
		// member with a value is an error, not a silent overwrite.
		if d.r.IsNull() {
			continue
		}
		if v.Value != nil {
			d.r.Fail("value %q: oneof AnyValue.value is already set", k)
			break
		}
		switch string(k) {
		case "stringValue", "string_value":
			v.Value = &commonpb.AnyValue_StringValue{StringValue: d.r.String()}
		case "boolValue", "bool_value":
			if d.r.Peek() != jsonlex.Bool {
				d.r.Fail("boolValue: want true or false")
				break
			}
			v.Value = &commonpb.AnyValue_BoolValue{BoolValue: d.r.Bool()}
		case "intValue", "int_value":
			v.Value = &commonpb.AnyValue_IntValue{IntValue: d.r.Int64()}
		case "doubleValue", "double_value":
			v.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: d.r.Float64()}
		case "bytesValue", "bytes_value":
			v.Value = &commonpb.AnyValue_BytesValue{BytesValue: d.base64()}
		case "arrayValue", "array_value":
			arr := &commonpb.ArrayValue{}
			d.valuesObject(func() {
				if !d.r.Array() {
					return
				}
				for d.nextElem() {
					if e := d.anyValue(); e != nil {
						arr.Values = append(arr.Values, e)
					}
				}
			})
			v.Value = &commonpb.AnyValue_ArrayValue{ArrayValue: arr}
		case "stringValueStrindex", "string_value_strindex":
			v.Value = &commonpb.AnyValue_StringValueStrindex{StringValueStrindex: d.int32()}
		case "kvlistValue", "kvlist_value":
			kl := &commonpb.KeyValueList{}
			d.valuesObject(func() { kl.Values = d.attributes(kl.Values) })
			v.Value = &commonpb.AnyValue_KvlistValue{KvlistValue: kl}
		}
	}
	return v
}

// valuesObject reads an ArrayValue or KeyValueList object, calling values
// to read its one field "values" (once: a second one is an error).
func (d *decoder) valuesObject(values func()) {
	if !d.r.Object() {
		return
	}
	var seen fields
	for k, ok := d.r.NextKey(); ok; k, ok = d.r.NextKey() {
		if string(k) != "values" {
			d.r.Skip()
			continue
		}
		if !d.once(&seen, 0, k) {
			continue
		}
		values()
	}
}

func (d *decoder) uint32() uint32 {
	v := d.r.Uint64()
	if v > math.MaxUint32 {
		d.r.Fail("value %d overflows uint32", v)
		return 0
	}
	return uint32(v)
}

func (d *decoder) int32() int32 {
	v := d.r.Int64()
	if v < math.MinInt32 || v > math.MaxInt32 {
		d.r.Fail("value %d overflows int32", v)
		return 0
	}
	return int32(v)
}

// enum reads an enum as a number or as its proto name.
func (d *decoder) enum(names map[string]int32) int32 {
	if d.r.Peek() == jsonlex.String {
		s := d.r.Bytes()
		// An unknown name (a newer OTLP's value) reads as unset, as
		// protojson reads it when it ignores unknown fields.
		return names[string(s)]
	}
	return d.int32()
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
