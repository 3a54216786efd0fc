package zipkin

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	b "github.com/rubatodb/rubato/pkg/model/internal/otlpbuild"
)

// ErrInvalid is wrapped by every decoding error.
var ErrInvalid = errors.New("zipkin: invalid spans")

// Kind is a Zipkin v2 span kind.
type Kind uint8

// Kinds.
const (
	KindUnspecified Kind = iota
	KindClient
	KindServer
	KindProducer
	KindConsumer
)

// Endpoint is a Zipkin endpoint. IPv4/IPv6 are textual.
type Endpoint struct {
	ServiceName string
	IPv4, IPv6  string
	Port        int32
}

func (e *Endpoint) empty() bool { return *e == Endpoint{} }

// Annotation is a timestamped event (microseconds since the epoch).
type Annotation struct {
	Timestamp uint64
	Value     string
}

// Tag is one Zipkin tag. Zipkin tags are strings; they stay strings.
type Tag struct{ Key, Value string }

// Span is one Zipkin v2 span. Times are microseconds, as Zipkin has them.
type Span struct {
	TraceIDHigh, TraceIDLow uint64
	ID, ParentID            uint64
	Name                    string
	Kind                    Kind
	Timestamp, Duration     uint64
	Local, Remote           Endpoint
	Annotations             []Annotation
	Tags                    []Tag
	Debug, Shared           bool
}

// ToOTLP converts spans into one request, grouping them into ResourceSpans
// by local service (and the resource attributes found in their tags) and
// into ScopeSpans by otel.scope/otel.library name and version.
func ToOTLP(spans []Span) *coltracepb.ExportTraceServiceRequest {
	var g b.Group
	var key strings.Builder
	for i := range spans {
		s := &spans[i]
		sp, res, scope, svc := convert(s)
		key.Reset()
		key.WriteString(svc)
		for _, kv := range res {
			key.WriteByte(0)
			key.WriteString(kv.Key)
			key.WriteByte(1)
			key.WriteString(kv.Value.GetStringValue())
		}
		ri := g.Resource(key.String(), func() []*commonpb.KeyValue {
			if svc == "" {
				svc = b.NoServiceName
			}
			return append([]*commonpb.KeyValue{b.Str(b.KeyServiceName, svc)}, res...)
		})
		g.Add(ri, scope, sp)
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: g.ResourceSpans()}
}

// convert turns one span into an OTLP span, the resource attributes taken
// out of its tags, its scope and its service name.
func convert(s *Span) (*tracepb.Span, []*commonpb.KeyValue, b.ScopeKey, string) {
	svc := s.Local.ServiceName
	sp := &tracepb.Span{
		TraceId:           b.TraceID(s.TraceIDHigh, s.TraceIDLow),
		SpanId:            b.SpanID(s.ID),
		Name:              s.Name,
		StartTimeUnixNano: microsToNanos(s.Timestamp),
	}
	if s.ParentID != s.ID {
		sp.ParentSpanId = b.SpanID(s.ParentID)
	}
	if s.Timestamp != 0 {
		sp.EndTimeUnixNano = microsToNanos(s.Timestamp + s.Duration)
	}
	var scope b.ScopeKey
	var res []*commonpb.KeyValue
	var statusCode, statusDesc, errTag string
	var hasCode, hasDesc, hasErr bool
	kindTag := ""
	attrs := make([]*commonpb.KeyValue, 0, len(s.Tags)+4)
	for _, t := range s.Tags {
		switch t.Key {
		case b.KeyOtelStatusCode:
			statusCode, hasCode = t.Value, true
		case b.KeyOtelStatusDesc:
			statusDesc, hasDesc = t.Value, true
		case b.KeyError:
			errTag, hasErr = t.Value, true
		case b.KeyTraceState:
			sp.TraceState = t.Value
		case b.KeyScopeName, b.KeyLibraryName:
			scope.Name = t.Value
		case b.KeyScopeVersion, b.KeyLibraryVersion:
			scope.Version = t.Value
		case b.KeySpanKind:
			kindTag = t.Value
		case b.KeyServiceName:
			// The OTel exporter copies the resource into tags: the same
			// name as the local endpoint is dropped; a tag names the
			// service only when the endpoint does not.
			switch svc {
			case "":
				svc = t.Value
			case t.Value:
			default:
				attrs = append(attrs, b.Str(t.Key, t.Value))
			}
		default:
			if isResourceKey(t.Key) {
				res = append(res, b.Str(t.Key, t.Value))
				continue
			}
			attrs = append(attrs, b.Str(t.Key, t.Value))
		}
	}
	switch s.Kind {
	case KindClient:
		sp.Kind = tracepb.Span_SPAN_KIND_CLIENT
	case KindServer:
		sp.Kind = tracepb.Span_SPAN_KIND_SERVER
	case KindProducer:
		sp.Kind = tracepb.Span_SPAN_KIND_PRODUCER
	case KindConsumer:
		sp.Kind = tracepb.Span_SPAN_KIND_CONSUMER
	default:
		if k, ok := b.KindFromString(kindTag); ok {
			sp.Kind = k
			kindTag = ""
		}
	}
	if kindTag != "" {
		attrs = append(attrs, b.Str(b.KeySpanKind, kindTag))
	}
	// Status: otel.status_code wins; else the error tag makes it ERROR (the
	// tag is kept unless it is "true", which says nothing more than the
	// status). The OTel Zipkin exporter writes error=<description> next to
	// otel.status_code=ERROR and no otel.status_description: the tag is
	// then the status message.
	code, codeOK := b.StatusCodeFromString(statusCode)
	switch {
	case hasCode && codeOK:
		sp.Status = &tracepb.Status{Code: code, Message: statusDesc}
		if hasErr && code == tracepb.Status_STATUS_CODE_ERROR {
			switch {
			case errTag == "true" || errTag == statusDesc:
				hasErr = false
			case !hasDesc:
				// The OTel exporter sends the description only as
				// the error tag.
				sp.Status.Message, hasErr = errTag, false
			}
		}
		hasDesc = false
	case hasErr:
		sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: statusDesc}
		hasDesc = false
		if errTag == "true" {
			hasErr = false
		}
	}
	if hasCode && !codeOK {
		attrs = append(attrs, b.Str(b.KeyOtelStatusCode, statusCode))
	}
	if hasDesc {
		attrs = append(attrs, b.Str(b.KeyOtelStatusDesc, statusDesc))
	}
	if hasErr {
		attrs = append(attrs, b.Str(b.KeyError, errTag))
	}
	attrs = endpointAttrs(attrs, &s.Local, false)
	attrs = endpointAttrs(attrs, &s.Remote, true)
	if len(attrs) > 0 {
		sp.Attributes = attrs
	}
	if len(s.Annotations) > 0 {
		sp.Events = make([]*tracepb.Span_Event, 0, len(s.Annotations))
		for _, a := range s.Annotations {
			sp.Events = append(sp.Events, annotationToEvent(a))
		}
	}
	return sp, res, scope, svc
}

func microsToNanos(us uint64) uint64 {
	if us > math.MaxUint64/1000 {
		return math.MaxUint64
	}
	return us * 1000
}

// endpointAttrs adds the attributes an endpoint stands for, unless a tag
// already set them (the OTel exporter derives endpoints from attributes).
func endpointAttrs(attrs []*commonpb.KeyValue, e *Endpoint, remote bool) []*commonpb.KeyValue {
	if e.empty() {
		return attrs
	}
	ipKey, portKey := "net.host.ip", "net.host.port"
	if remote {
		ipKey, portKey = "net.peer.ip", "net.peer.port"
		if e.ServiceName != "" && !b.Has(attrs, "peer.service") {
			attrs = append(attrs, b.Str("peer.service", e.ServiceName))
		}
	}
	ip := e.IPv4
	if ip == "" {
		ip = e.IPv6
	}
	if ip != "" && !b.Has(attrs, ipKey) {
		attrs = append(attrs, b.Str(ipKey, ip))
	}
	if e.Port != 0 && !b.Has(attrs, portKey) {
		attrs = append(attrs, b.Int(portKey, int64(e.Port)))
	}
	return attrs
}

// annotationToEvent splits "name|{json attributes}|dropped count" (the form
// the Collector's Zipkin exporter writes) and "name: {json attributes}" (the
// OpenTelemetry Go SDK's Zipkin exporter); any other value is the name.
func annotationToEvent(a Annotation) *tracepb.Span_Event {
	ev := &tracepb.Span_Event{TimeUnixNano: microsToNanos(a.Timestamp), Name: a.Value}
	v := a.Value
	if !strings.Contains(v, "{") {
		return ev
	}
	var name, js string
	var dropped uint64
	if i := strings.Index(v, ": {"); i >= 0 && strings.HasSuffix(v, "}") {
		name, js = v[:i], v[i+2:]
	} else {
		last := strings.LastIndexByte(v, '|')
		if last < 0 || !strings.HasSuffix(v[:last], "}") {
			return ev
		}
		first := strings.IndexByte(v, '|')
		if first == last || v[first+1] != '{' {
			return ev
		}
		var err error
		if dropped, err = strconv.ParseUint(v[last+1:], 10, 32); err != nil {
			return ev
		}
		name, js = v[:first], v[first+1:last]
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	if dec.Decode(&m) != nil || dec.More() {
		return ev
	}
	ev.Name = name
	ev.DroppedAttributesCount = uint32(dropped)
	for k, x := range m {
		switch x := x.(type) {
		case string:
			ev.Attributes = append(ev.Attributes, b.Str(k, x))
		case bool:
			ev.Attributes = append(ev.Attributes, b.Bool(k, x))
		case json.Number:
			if i, err := x.Int64(); err == nil {
				ev.Attributes = append(ev.Attributes, b.Int(k, i))
			} else if f, err := x.Float64(); err == nil {
				ev.Attributes = append(ev.Attributes, b.Double(k, f))
			}
		default:
			raw, _ := json.Marshal(x)
			ev.Attributes = append(ev.Attributes, b.Str(k, string(raw)))
		}
	}
	sortAttrs(ev.Attributes)
	return ev
}

func sortAttrs(a []*commonpb.KeyValue) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j].Key < a[j-1].Key; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// resourcePrefixes are the semantic-convention namespaces that describe a
// resource, not a span. The OTel Zipkin exporter flattens resource
// attributes into tags; these go back to the resource.
var resourcePrefixes = []string{
	"service.", "telemetry.", "host.", "os.", "process.", "container.",
	"k8s.", "cloud.", "deployment.", "faas.", "device.", "webengine.",
}

func isResourceKey(k string) bool {
	for _, p := range resourcePrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// parseHexID reads a Zipkin hex ID of up to 16 (span) or 32 (trace) digits.
func parseHexID(s []byte, maxDigits int) (high, low uint64, err error) {
	if len(s) == 0 || len(s) > maxDigits {
		return 0, 0, fmt.Errorf("%w: id %q must be 1 to %d hex digits", ErrInvalid, s, maxDigits)
	}
	for i, c := range s {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, 0, fmt.Errorf("%w: id %q is not hex (byte %d)", ErrInvalid, s, i)
		}
		high = high<<4 | low>>60
		low = low<<4 | uint64(v)
	}
	return high, low, nil
}

// idFromBytes reads a big-endian binary ID of 8 or 16 bytes (protobuf).
func idFromBytes(p []byte, allow16 bool) (high, low uint64, err error) {
	switch {
	case len(p) == 8:
		return 0, binary.BigEndian.Uint64(p), nil
	case len(p) == 16 && allow16:
		return binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:]), nil
	}
	return 0, 0, fmt.Errorf("%w: binary id of %d bytes", ErrInvalid, len(p))
}
