package block

import (
	"bytes"
	"errors"
	"fmt"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Conversion between OTLP and rows. The round trip is lossless for every
// field the protobuf wire format keeps, except unknown fields: reading back
// a written trace gives a message proto.Equal to
// proto.Unmarshal(proto.Marshal(original)). (A nil element inside a repeated
// message field becomes an empty message, exactly as on the wire.)

// next extends s by one element, reusing the element's old storage when the
// capacity allows, and returns a pointer to it.
func next[T any](s []T) ([]T, *T) {
	if n := len(s); n < cap(s) {
		s = s[:n+1]
		return s, &s[n]
	}
	var zero T
	s = append(s, zero)
	return s, &s[len(s)-1]
}

// fromOTLP fills r (reusing its slices) from one trace.
func (r *traceRow) fromOTLP(id [16]byte, td *tracev1.TracesData) error {
	r.TraceID = id
	r.StartTimeUnixNano, r.EndTimeUnixNano, r.DurationNano = 0, 0, 0
	r.RootServiceName, r.RootSpanName = "", ""
	r.SpanCount = 0
	r.ResourceSpans = r.ResourceSpans[:0]
	rootFound := false
	var spans int64
	for _, rs := range td.GetResourceSpans() {
		var rr *resourceSpansRow
		r.ResourceSpans, rr = next(r.ResourceSpans)
		rr.SchemaURL = rs.GetSchemaUrl()
		if err := rr.Resource.fromOTLP(rs.GetResource()); err != nil {
			return fmt.Errorf("resource: %w", err)
		}
		rr.ScopeSpans = rr.ScopeSpans[:0]
		for _, ss := range rs.GetScopeSpans() {
			var sr *scopeSpansRow
			rr.ScopeSpans, sr = next(rr.ScopeSpans)
			sr.SchemaURL = ss.GetSchemaUrl()
			if err := sr.Scope.fromOTLP(ss.GetScope()); err != nil {
				return fmt.Errorf("scope: %w", err)
			}
			sr.Spans = sr.Spans[:0]
			for _, sp := range ss.GetSpans() {
				var s *spanRow
				sr.Spans, s = next(sr.Spans)
				if err := s.fromOTLP(id, sp); err != nil {
					return fmt.Errorf("span %x: %w", sp.GetSpanId(), err)
				}
				spans++
				start, end := sp.GetStartTimeUnixNano(), sp.GetEndTimeUnixNano()
				if start != 0 && (r.StartTimeUnixNano == 0 || start < r.StartTimeUnixNano) {
					r.StartTimeUnixNano = start
				}
				r.EndTimeUnixNano = max(r.EndTimeUnixNano, end)
				if !rootFound && len(sp.GetParentSpanId()) == 0 {
					rootFound = true
					r.RootSpanName = sp.GetName()
					r.RootServiceName = rr.Resource.ServiceName
				}
			}
		}
	}
	if spans > 1<<31-1 {
		return fmt.Errorf("trace %x has %d spans, limit %d", id, spans, 1<<31-1)
	}
	r.SpanCount = int32(spans)
	if r.EndTimeUnixNano > r.StartTimeUnixNano {
		r.DurationNano = r.EndTimeUnixNano - r.StartTimeUnixNano
	}
	r.linkSpans()
	return nil
}

// linkSpans stores span start times relative to the trace start and
// replaces parent span IDs found in the trace by the parent's ordinal: an
// 8-byte random ID costs 8 bytes on disk, a small ordinal almost nothing.
func (r *traceRow) linkSpans() {
	if r.spanOrd == nil {
		r.spanOrd = make(map[[8]byte]int32)
	}
	clear(r.spanOrd)
	ord := int32(0)
	r.forSpans(func(s *spanRow) {
		s.StartOffsetNano -= r.StartTimeUnixNano
		if len(s.SpanID) == 8 {
			if _, dup := r.spanOrd[[8]byte(s.SpanID)]; !dup {
				r.spanOrd[[8]byte(s.SpanID)] = ord
			}
		}
		ord++
	})
	r.forSpans(func(s *spanRow) {
		if len(s.ParentSpanID) != 8 {
			return
		}
		if p, ok := r.spanOrd[[8]byte(s.ParentSpanID)]; ok {
			s.ParentIdx, s.ParentSpanID = p+1, nil
		}
	})
}

func (r *traceRow) forSpans(fn func(*spanRow)) {
	for i := range r.ResourceSpans {
		rs := &r.ResourceSpans[i]
		for j := range rs.ScopeSpans {
			ss := &rs.ScopeSpans[j]
			for k := range ss.Spans {
				fn(&ss.Spans[k])
			}
		}
	}
}

func (r *resourceRow) fromOTLP(res *resourcev1.Resource) (err error) {
	attrs := r.Attrs[:0]
	*r = resourceRow{Present: res != nil, DroppedAttributesCount: res.GetDroppedAttributesCount()}
	r.Attrs, err = splitAttrs(resourceDedicated, r, res.GetAttributes(), attrs)
	return err
}

func (r *scopeRow) fromOTLP(sc *commonv1.InstrumentationScope) (err error) {
	attrs := r.Attrs[:0]
	*r = scopeRow{
		Present:                sc != nil,
		Name:                   sc.GetName(),
		Version:                sc.GetVersion(),
		DroppedAttributesCount: sc.GetDroppedAttributesCount(),
	}
	r.Attrs, err = appendAttrs(attrs, sc.GetAttributes())
	return err
}

func (s *spanRow) fromOTLP(id [16]byte, sp *tracev1.Span) (err error) {
	attrs, events, links, other := s.Attrs[:0], s.Events[:0], s.Links[:0], s.OtherTraceID[:0]
	*s = spanRow{
		SpanID:                 sp.GetSpanId(),
		ParentSpanID:           sp.GetParentSpanId(),
		TraceState:             sp.GetTraceState(),
		Name:                   sp.GetName(),
		Kind:                   int32(sp.GetKind()),
		Flags:                  sp.GetFlags(),
		StartOffsetNano:        sp.GetStartTimeUnixNano(), // made relative in linkSpans
		DurationNano:           sp.GetEndTimeUnixNano() - sp.GetStartTimeUnixNano(),
		StatusPresent:          sp.GetStatus() != nil,
		StatusCode:             int32(sp.GetStatus().GetCode()),
		StatusMessage:          sp.GetStatus().GetMessage(),
		DroppedAttributesCount: sp.GetDroppedAttributesCount(),
		DroppedEventsCount:     sp.GetDroppedEventsCount(),
		DroppedLinksCount:      sp.GetDroppedLinksCount(),
	}
	if tid := sp.GetTraceId(); !bytes.Equal(tid, id[:]) {
		s.OtherTraceID = append(append(other, 1), tid...)
	}
	if s.Attrs, err = splitAttrs(spanDedicated, s, sp.GetAttributes(), attrs); err != nil {
		return err
	}
	for _, ev := range sp.GetEvents() {
		var e *eventRow
		events, e = next(events)
		e.TimeSinceStartNano = ev.GetTimeUnixNano() - sp.GetStartTimeUnixNano()
		e.Name = ev.GetName()
		e.DroppedAttributesCount = ev.GetDroppedAttributesCount()
		if e.Attrs, err = appendAttrs(e.Attrs[:0], ev.GetAttributes()); err != nil {
			return fmt.Errorf("event: %w", err)
		}
	}
	s.Events = events
	for _, ln := range sp.GetLinks() {
		var l *linkRow
		links, l = next(links)
		l.TraceID = ln.GetTraceId()
		l.SpanID = ln.GetSpanId()
		l.TraceState = ln.GetTraceState()
		l.Flags = ln.GetFlags()
		l.DroppedAttributesCount = ln.GetDroppedAttributesCount()
		if l.Attrs, err = appendAttrs(l.Attrs[:0], ln.GetAttributes()); err != nil {
			return fmt.Errorf("link: %w", err)
		}
	}
	s.Links = links
	return nil
}

// splitAttrs moves the first attribute of each dedicated key and type into
// its column and appends the rest to dst in order.
func splitAttrs[R any](cols []dedicated[R], r *R, kvs []*commonv1.KeyValue, dst []attrRow) ([]attrRow, error) {
	for i, kv := range kvs {
		if kv.GetValue() != nil && claim(cols, r, i, kv) {
			continue
		}
		var a *attrRow
		dst, a = next(dst)
		if err := a.fromOTLP(kv); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func claim[R any](cols []dedicated[R], r *R, i int, kv *commonv1.KeyValue) bool {
	for j := range cols {
		c := &cols[j]
		if c.key != kv.Key {
			continue
		}
		if *c.pos(r) != 0 { // an earlier attribute with this key was taken
			return false
		}
		switch v := kv.Value.Value.(type) {
		case *commonv1.AnyValue_StringValue:
			if c.isInt {
				return false
			}
			*c.str(r) = v.StringValue
		case *commonv1.AnyValue_IntValue:
			if !c.isInt {
				return false
			}
			*c.num(r) = v.IntValue
		default:
			return false
		}
		*c.pos(r) = int32(i + 1)
		return true
	}
	return false
}

func appendAttrs(dst []attrRow, kvs []*commonv1.KeyValue) ([]attrRow, error) {
	for _, kv := range kvs {
		var a *attrRow
		dst, a = next(dst)
		if err := a.fromOTLP(kv); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func (a *attrRow) fromOTLP(kv *commonv1.KeyValue) error {
	b := a.Bytes[:0]
	*a = attrRow{Key: kv.GetKey()}
	v := kv.GetValue()
	if v == nil {
		a.Kind = kindNil
		return nil
	}
	switch x := v.Value.(type) {
	case nil:
		a.Kind = kindEmpty
	case *commonv1.AnyValue_StringValue:
		a.Kind, a.Str = kindString, x.StringValue
	case *commonv1.AnyValue_BoolValue:
		a.Kind = kindBool
		if x.BoolValue {
			a.Int = 1
		}
	case *commonv1.AnyValue_IntValue:
		a.Kind, a.Int = kindInt, x.IntValue
	case *commonv1.AnyValue_DoubleValue:
		a.Kind, a.Double = kindDouble, x.DoubleValue
	case *commonv1.AnyValue_BytesValue:
		a.Kind, a.Bytes = kindBytes, append(b, x.BytesValue...)
	default: // array, kvlist, and any value type added to OTLP later
		enc, err := proto.MarshalOptions{}.MarshalAppend(b, v)
		if err != nil { // invalid UTF-8 in a nested string
			return fmt.Errorf("attribute %q: %w", kv.GetKey(), err)
		}
		a.Kind, a.Bytes = kindProto, enc
	}
	return nil
}

// errPos reports dedicated positions that do not fit the attribute list.
var errPos = errors.New("dedicated attribute position out of range")

// toOTLP converts a row back to OTLP.
func (r *traceRow) toOTLP() (*tracev1.TracesData, error) {
	n := 0
	r.forSpans(func(*spanRow) { n++ })
	if int(r.SpanCount) != n {
		return nil, fmt.Errorf("row says it holds %d spans, holds %d", r.SpanCount, n)
	}
	td := &tracev1.TracesData{ResourceSpans: make([]*tracev1.ResourceSpans, len(r.ResourceSpans))}
	spans := make([]*tracev1.Span, 0, n)
	var parents []int32
	for i := range r.ResourceSpans {
		rr := &r.ResourceSpans[i]
		rs := &tracev1.ResourceSpans{SchemaUrl: rr.SchemaURL, ScopeSpans: make([]*tracev1.ScopeSpans, len(rr.ScopeSpans))}
		td.ResourceSpans[i] = rs
		if rr.Resource.Present {
			attrs, err := mergeAttrs(resourceDedicated, &rr.Resource, rr.Resource.Attrs)
			if err != nil {
				return nil, fmt.Errorf("resource attributes: %w", err)
			}
			rs.Resource = &resourcev1.Resource{Attributes: attrs, DroppedAttributesCount: rr.Resource.DroppedAttributesCount}
		}
		for j := range rr.ScopeSpans {
			sr := &rr.ScopeSpans[j]
			ss := &tracev1.ScopeSpans{SchemaUrl: sr.SchemaURL, Spans: make([]*tracev1.Span, len(sr.Spans))}
			rs.ScopeSpans[j] = ss
			if sr.Scope.Present {
				attrs, err := toKVs(sr.Scope.Attrs)
				if err != nil {
					return nil, fmt.Errorf("scope attributes: %w", err)
				}
				ss.Scope = &commonv1.InstrumentationScope{
					Name:                   sr.Scope.Name,
					Version:                sr.Scope.Version,
					Attributes:             attrs,
					DroppedAttributesCount: sr.Scope.DroppedAttributesCount,
				}
			}
			for k := range sr.Spans {
				sp, err := sr.Spans[k].toOTLP(r.TraceID, r.StartTimeUnixNano)
				if err != nil {
					return nil, err
				}
				ss.Spans[k] = sp
				if p := sr.Spans[k].ParentIdx; p != 0 {
					parents = append(parents, int32(len(spans)), p)
				}
				spans = append(spans, sp)
			}
		}
	}
	for i := 0; i < len(parents); i += 2 {
		child, p := parents[i], parents[i+1]
		if p < 1 || int(p) > len(spans) {
			return nil, fmt.Errorf("span %d: parent ordinal %d of %d spans", child, p, len(spans))
		}
		spans[child].ParentSpanId = bytes.Clone(spans[p-1].SpanId)
	}
	return td, nil
}

func (s *spanRow) toOTLP(id [16]byte, traceStart uint64) (*tracev1.Span, error) {
	start := traceStart + s.StartOffsetNano
	sp := &tracev1.Span{
		TraceId:                id[:],
		SpanId:                 s.SpanID,
		TraceState:             s.TraceState,
		ParentSpanId:           s.ParentSpanID,
		Flags:                  s.Flags,
		Name:                   s.Name,
		Kind:                   tracev1.Span_SpanKind(s.Kind),
		StartTimeUnixNano:      start,
		EndTimeUnixNano:        start + s.DurationNano,
		DroppedAttributesCount: s.DroppedAttributesCount,
		DroppedEventsCount:     s.DroppedEventsCount,
		DroppedLinksCount:      s.DroppedLinksCount,
	}
	if len(s.OtherTraceID) > 0 {
		if s.OtherTraceID[0] != 1 {
			return nil, fmt.Errorf("span trace id: bad marker %#x", s.OtherTraceID[0])
		}
		sp.TraceId = s.OtherTraceID[1:]
	}
	if s.StatusPresent {
		sp.Status = &tracev1.Status{Code: tracev1.Status_StatusCode(s.StatusCode), Message: s.StatusMessage}
	}
	var err error
	if sp.Attributes, err = mergeAttrs(spanDedicated, s, s.Attrs); err != nil {
		return nil, fmt.Errorf("span attributes: %w", err)
	}
	if len(s.Events) > 0 {
		sp.Events = make([]*tracev1.Span_Event, len(s.Events))
		for i := range s.Events {
			e := &s.Events[i]
			attrs, err := toKVs(e.Attrs)
			if err != nil {
				return nil, fmt.Errorf("event attributes: %w", err)
			}
			sp.Events[i] = &tracev1.Span_Event{
				TimeUnixNano:           start + e.TimeSinceStartNano,
				Name:                   e.Name,
				Attributes:             attrs,
				DroppedAttributesCount: e.DroppedAttributesCount,
			}
		}
	}
	if len(s.Links) > 0 {
		sp.Links = make([]*tracev1.Span_Link, len(s.Links))
		for i := range s.Links {
			l := &s.Links[i]
			attrs, err := toKVs(l.Attrs)
			if err != nil {
				return nil, fmt.Errorf("link attributes: %w", err)
			}
			sp.Links[i] = &tracev1.Span_Link{
				TraceId:                l.TraceID,
				SpanId:                 l.SpanID,
				TraceState:             l.TraceState,
				Attributes:             attrs,
				DroppedAttributesCount: l.DroppedAttributesCount,
				Flags:                  l.Flags,
			}
		}
	}
	return sp, nil
}

// mergeAttrs rebuilds the original attribute list: dedicated values at their
// recorded positions, the generic ones filling the gaps in order.
func mergeAttrs[R any](cols []dedicated[R], r *R, generic []attrRow) ([]*commonv1.KeyValue, error) {
	total := len(generic)
	for i := range cols {
		if *cols[i].pos(r) != 0 {
			total++
		}
	}
	if total == 0 {
		return nil, nil
	}
	out := make([]*commonv1.KeyValue, total)
	for i := range cols {
		c := &cols[i]
		p := int(*c.pos(r))
		if p == 0 {
			continue
		}
		if p < 0 || p > total || out[p-1] != nil {
			return nil, fmt.Errorf("%w: %s at %d of %d", errPos, c.key, p, total)
		}
		if c.isInt {
			out[p-1] = &commonv1.KeyValue{Key: c.key, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: *c.num(r)}}}
		} else {
			out[p-1] = &commonv1.KeyValue{Key: c.key, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: *c.str(r)}}}
		}
	}
	g := 0
	for i := range out {
		if out[i] != nil {
			continue
		}
		kv, err := generic[g].toOTLP()
		if err != nil {
			return nil, err
		}
		out[i] = kv
		g++
	}
	return out, nil
}

func toKVs(attrs []attrRow) ([]*commonv1.KeyValue, error) {
	if len(attrs) == 0 {
		return nil, nil
	}
	out := make([]*commonv1.KeyValue, len(attrs))
	for i := range attrs {
		kv, err := attrs[i].toOTLP()
		if err != nil {
			return nil, err
		}
		out[i] = kv
	}
	return out, nil
}

func (a *attrRow) toOTLP() (*commonv1.KeyValue, error) {
	kv := &commonv1.KeyValue{Key: a.Key}
	switch a.Kind {
	case kindNil:
	case kindEmpty:
		kv.Value = &commonv1.AnyValue{}
	case kindString:
		kv.Value = &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: a.Str}}
	case kindBool:
		kv.Value = &commonv1.AnyValue{Value: &commonv1.AnyValue_BoolValue{BoolValue: a.Int != 0}}
	case kindInt:
		kv.Value = &commonv1.AnyValue{Value: &commonv1.AnyValue_IntValue{IntValue: a.Int}}
	case kindDouble:
		kv.Value = &commonv1.AnyValue{Value: &commonv1.AnyValue_DoubleValue{DoubleValue: a.Double}}
	case kindBytes:
		kv.Value = &commonv1.AnyValue{Value: &commonv1.AnyValue_BytesValue{BytesValue: a.Bytes}}
	case kindProto:
		v := &commonv1.AnyValue{}
		if err := proto.Unmarshal(a.Bytes, v); err != nil {
			return nil, fmt.Errorf("attribute %q: %w", a.Key, err)
		}
		kv.Value = v
	default:
		return nil, fmt.Errorf("attribute %q: unknown kind %d", a.Key, a.Kind)
	}
	return kv, nil
}
