package jaeger

import (
	"fmt"
	"time"

	jmodel "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	b "github.com/rubatodb/rubato/pkg/model/internal/otlpbuild"
)

// DecodePostSpans decodes a protobuf api_v2.PostSpansRequest (what the gRPC
// collector receives), for tests and fuzzing of the wire path.
func DecodePostSpans(data []byte) (*api_v2.PostSpansRequest, error) {
	req := &api_v2.PostSpansRequest{}
	if err := req.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return req, nil
}

// ProtoToOTLP converts a protobuf batch. Spans carrying their own Process
// override the batch's; spans are grouped into one ResourceSpans per distinct
// process.
func ProtoToOTLP(batch *jmodel.Batch) *coltracepb.ExportTraceServiceRequest {
	var g b.Group
	var batchRes []*commonpb.KeyValue
	batchKey := ""
	if batch.Process != nil {
		batchRes = protoTags(batch.Process.Tags)
		batchKey = processKey(batch.Process.ServiceName, batchRes)
	}
	for _, s := range batch.Spans {
		if s == nil {
			continue
		}
		var ri int
		if p := s.Process; p != nil {
			tags := protoTags(p.Tags)
			ri = g.Resource(processKey(p.ServiceName, tags), func() []*commonpb.KeyValue { return resourceAttrs(p.ServiceName, tags) })
		} else {
			ri = g.Resource(batchKey, func() []*commonpb.KeyValue {
				svc := ""
				if batch.Process != nil {
					svc = batch.Process.ServiceName
				}
				return resourceAttrs(svc, batchRes)
			})
		}
		sp, scope := protoSpan(s)
		g.Add(ri, scope, sp)
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: g.ResourceSpans()}
}

func protoTime(t time.Time) uint64 {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(t.UnixNano())
}

func protoSpan(s *jmodel.Span) (*tracepb.Span, b.ScopeKey) {
	sp := &tracepb.Span{
		TraceId:           b.TraceID(s.TraceID.High, s.TraceID.Low),
		SpanId:            b.SpanID(uint64(s.SpanID)),
		Name:              s.OperationName,
		StartTimeUnixNano: protoTime(s.StartTime),
	}
	if s.Duration > 0 {
		sp.EndTimeUnixNano = sp.StartTimeUnixNano + uint64(s.Duration)
	} else {
		sp.EndTimeUnixNano = sp.StartTimeUnixNano
	}
	skip := -1
	for i := range s.References {
		r := &s.References[i]
		if r.RefType == jmodel.SpanRefType_CHILD_OF && r.TraceID == s.TraceID {
			sp.ParentSpanId = b.SpanID(uint64(r.SpanID))
			skip = i
			break
		}
	}
	for i := range s.References {
		if i == skip {
			continue
		}
		r := &s.References[i]
		sp.Links = append(sp.Links, &tracepb.Span_Link{
			TraceId:    b.TraceID(r.TraceID.High, r.TraceID.Low),
			SpanId:     b.SpanID(uint64(r.SpanID)),
			Attributes: []*commonpb.KeyValue{b.Str(keyRefType, refTypeName(r.RefType == jmodel.SpanRefType_FOLLOWS_FROM))},
		})
	}
	scope := applyTags(sp, protoTags(s.Tags))
	for i := range s.Logs {
		l := &s.Logs[i]
		sp.Events = append(sp.Events, logEvent(protoTime(l.Timestamp), protoTags(l.Fields)))
	}
	return sp, scope
}

func protoTags(tags []jmodel.KeyValue) []*commonpb.KeyValue {
	if len(tags) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, len(tags))
	for i := range tags {
		t := &tags[i]
		var v *commonpb.KeyValue
		switch t.VType {
		case jmodel.ValueType_STRING:
			v = b.Str(t.Key, t.VStr)
		case jmodel.ValueType_BOOL:
			v = b.Bool(t.Key, t.VBool)
		case jmodel.ValueType_INT64:
			v = b.Int(t.Key, t.VInt64)
		case jmodel.ValueType_FLOAT64:
			v = b.Double(t.Key, t.VFloat64)
		case jmodel.ValueType_BINARY:
			v = b.Bytes(t.Key, t.VBinary)
		default:
			v = b.Str(t.Key, t.VStr)
		}
		out = append(out, v)
	}
	return out
}
