package jaeger

import (
	"errors"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	b "github.com/rubatodb/rubato/pkg/model/internal/otlpbuild"
)

// ErrInvalid is wrapped by every decoding error.
var ErrInvalid = errors.New("jaeger: invalid batch")

// Resource and link attribute keys written by the translator.
const (
	keyHostName        = "host.name"
	keyHostnameJaeger  = "hostname"
	keyJaegerVersion   = "jaeger.version"
	keyExporterVersion = "opencensus.exporterversion"
	keyRefType         = "opentracing.ref_type"
	keyEvent           = "event"
	refChildOf         = "child_of"
	refFollowsFrom     = "follows_from"
)

// resourceAttrs builds the resource attributes of a process: service.name
// first, then the process tags with hostname → host.name and
// jaeger.version → opencensus.exporterversion="Jaeger-<v>" (each only when
// the target key is not already present).
func resourceAttrs(service string, tags []*commonpb.KeyValue) []*commonpb.KeyValue {
	if service == "" {
		service = b.NoServiceName
	}
	out := make([]*commonpb.KeyValue, 0, len(tags)+1)
	out = append(out, b.Str(b.KeyServiceName, service))
	hasHost, hasExp := b.Has(tags, keyHostName), b.Has(tags, keyExporterVersion)
	for _, kv := range tags {
		switch {
		case kv.Key == keyHostnameJaeger && !hasHost:
			kv.Key = keyHostName
		case kv.Key == keyJaegerVersion && !hasExp:
			kv = b.Str(keyExporterVersion, "Jaeger-"+anyString(kv.Value))
		}
		out = append(out, kv)
	}
	return out
}

func anyString(v *commonpb.AnyValue) string {
	if s, ok := v.GetValue().(*commonpb.AnyValue_StringValue); ok {
		return s.StringValue
	}
	return ""
}

// applyTags sets kind, status, trace state and scope of sp from its tags and
// stores the remaining tags as sp's attributes.
func applyTags(sp *tracepb.Span, tags []*commonpb.KeyValue) b.ScopeKey {
	var scope b.ScopeKey
	var errTrue, hasCode bool
	var code tracepb.Status_StatusCode
	var desc, httpMsg string
	var httpCode int64
	var hasHTTP, hasDesc bool
	kept := tags[:0]
	for _, kv := range tags {
		switch kv.Key {
		case b.KeySpanKind:
			if k, ok := b.KindFromString(anyString(kv.Value)); ok {
				sp.Kind = k
				continue
			}
		case b.KeyError:
			if isTrue(kv.Value) {
				errTrue = true
				continue
			}
		case b.KeyOtelStatusCode:
			if c, ok := statusCode(kv.Value); ok {
				code, hasCode = c, true
				continue
			}
		case b.KeyOtelStatusDesc:
			desc, hasDesc = anyString(kv.Value), true
			continue
		case b.KeyTraceState:
			sp.TraceState = anyString(kv.Value)
			continue
		case b.KeyScopeName, b.KeyLibraryName:
			scope.Name = anyString(kv.Value)
			continue
		case b.KeyScopeVersion, b.KeyLibraryVersion:
			scope.Version = anyString(kv.Value)
			continue
		case b.KeyHTTPStatusCode:
			httpCode, hasHTTP = intValue(kv.Value)
		case b.KeyHTTPStatusMessage:
			httpMsg = anyString(kv.Value)
		}
		kept = append(kept, kv)
	}
	switch {
	case errTrue:
		msg := desc
		if !hasDesc {
			msg = httpMsg
		}
		sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: msg}
	case hasCode:
		sp.Status = &tracepb.Status{Code: code, Message: desc}
	case hasHTTP:
		if c := b.StatusFromHTTP(httpCode, sp.Kind); c != tracepb.Status_STATUS_CODE_UNSET {
			sp.Status = &tracepb.Status{Code: c, Message: httpMsg}
		} else if hasDesc {
			kept = append(kept, b.Str(b.KeyOtelStatusDesc, desc))
		}
	default:
		if hasDesc {
			kept = append(kept, b.Str(b.KeyOtelStatusDesc, desc))
		}
	}
	if len(kept) > 0 {
		sp.Attributes = kept
	}
	return scope
}

func isTrue(v *commonpb.AnyValue) bool {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_StringValue:
		return x.StringValue == "true"
	}
	return false
}

func statusCode(v *commonpb.AnyValue) (tracepb.Status_StatusCode, bool) {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return b.StatusCodeFromString(x.StringValue)
	case *commonpb.AnyValue_IntValue:
		if x.IntValue >= 0 && x.IntValue <= 2 {
			return tracepb.Status_StatusCode(x.IntValue), true
		}
	}
	return 0, false
}

func intValue(v *commonpb.AnyValue) (int64, bool) {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_IntValue:
		return x.IntValue, true
	case *commonpb.AnyValue_StringValue:
		return b.ParseInt(x.StringValue)
	case *commonpb.AnyValue_DoubleValue:
		return int64(x.DoubleValue), true
	}
	return 0, false
}

// logEvent names an event from its "event" field (removed from the
// attributes) and keeps the rest as attributes.
func logEvent(ts uint64, fields []*commonpb.KeyValue) *tracepb.Span_Event {
	ev := &tracepb.Span_Event{TimeUnixNano: ts}
	kept := fields[:0]
	named := false
	for _, kv := range fields {
		if kv.Key == keyEvent && !named {
			if s, ok := kv.Value.GetValue().(*commonpb.AnyValue_StringValue); ok {
				ev.Name, named = s.StringValue, true
				continue
			}
		}
		kept = append(kept, kv)
	}
	if len(kept) > 0 {
		ev.Attributes = kept
	}
	return ev
}

func refTypeName(followsFrom bool) string {
	if followsFrom {
		return refFollowsFrom
	}
	return refChildOf
}

func usToNs(us int64) uint64 {
	if us <= 0 {
		return 0
	}
	const max = int64(^uint64(0)>>1) / 1000
	if us > max {
		return uint64(max) * 1000
	}
	return uint64(us) * 1000
}
