package jaeger

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	jthrift "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	b "github.com/rubatodb/rubato/pkg/model/internal/otlpbuild"
)

// Protocol is a Thrift wire protocol.
type Protocol uint8

// Thrift protocols.
const (
	Binary Protocol = iota
	Compact
)

func newProtocol(data []byte, p Protocol) thrift.TProtocol {
	// MaxMessageSize = input size: a container header cannot make the
	// generated code preallocate more elements than there are bytes.
	conf := &thrift.TConfiguration{MaxMessageSize: int32(min(len(data)+1, 1<<30))}
	buf := &thrift.TMemoryBuffer{Buffer: bytes.NewBuffer(data)}
	if p == Compact {
		return thrift.NewTCompactProtocolConf(buf, conf)
	}
	return thrift.NewTBinaryProtocolConf(buf, conf)
}

// DecodeThriftBatch decodes a Thrift-binary Batch struct (the body of
// POST /api/traces).
func DecodeThriftBatch(data []byte) (*jthrift.Batch, error) {
	batch := &jthrift.Batch{}
	if err := batch.Read(context.Background(), newProtocol(data, Binary)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return batch, nil
}

// DecodeAgentMessage decodes one agent UDP packet: a Thrift message calling
// Agent.emitBatch (oneway), in compact (port 6831) or binary (6832) protocol.
func DecodeAgentMessage(data []byte, p Protocol) (*jthrift.Batch, error) {
	ctx := context.Background()
	proto := newProtocol(data, p)
	name, typ, _, err := proto.ReadMessageBegin(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if name != "emitBatch" || (typ != thrift.ONEWAY && typ != thrift.CALL) {
		return nil, fmt.Errorf("%w: unexpected message %q of type %d", ErrInvalid, name, typ)
	}
	args := agent.NewAgentEmitBatchArgs()
	if err := args.Read(ctx, proto); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := proto.ReadMessageEnd(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if args.Batch == nil {
		return nil, fmt.Errorf("%w: emitBatch without batch", ErrInvalid)
	}
	return args.Batch, nil
}

// ThriftToOTLP converts Thrift batches to one request: one ResourceSpans per
// batch (its process), ScopeSpans by otel.scope/otel.library tags.
func ThriftToOTLP(batches ...*jthrift.Batch) *coltracepb.ExportTraceServiceRequest {
	req := &coltracepb.ExportTraceServiceRequest{}
	for _, batch := range batches {
		if batch == nil {
			continue
		}
		var g b.Group
		ri := g.Resource("", func() []*commonpb.KeyValue {
			var svc string
			var tags []*commonpb.KeyValue
			if batch.Process != nil {
				svc, tags = batch.Process.ServiceName, thriftTags(batch.Process.Tags)
			}
			return resourceAttrs(svc, tags)
		})
		for _, s := range batch.Spans {
			if s == nil {
				continue
			}
			sp, scope := thriftSpan(s)
			g.Add(ri, scope, sp)
		}
		req.ResourceSpans = append(req.ResourceSpans, g.ResourceSpans()...)
	}
	return req
}

func thriftSpan(s *jthrift.Span) (*tracepb.Span, b.ScopeKey) {
	sp := &tracepb.Span{
		TraceId:           b.TraceID(uint64(s.TraceIdHigh), uint64(s.TraceIdLow)),
		SpanId:            b.SpanID(uint64(s.SpanId)),
		Name:              s.OperationName,
		StartTimeUnixNano: usToNs(s.StartTime),
	}
	sp.EndTimeUnixNano = sp.StartTimeUnixNano + usToNs(s.Duration)
	parent := s.ParentSpanId
	skip := -1
	for i, r := range s.References {
		if r == nil || r.RefType != jthrift.SpanRefType_CHILD_OF || r.TraceIdLow != s.TraceIdLow || r.TraceIdHigh != s.TraceIdHigh {
			continue
		}
		if parent == 0 || r.SpanId == parent {
			parent, skip = r.SpanId, i
			break
		}
	}
	sp.ParentSpanId = b.SpanID(uint64(parent))
	for i, r := range s.References {
		if r == nil || i == skip {
			continue
		}
		sp.Links = append(sp.Links, &tracepb.Span_Link{
			TraceId:    b.TraceID(uint64(r.TraceIdHigh), uint64(r.TraceIdLow)),
			SpanId:     b.SpanID(uint64(r.SpanId)),
			Attributes: []*commonpb.KeyValue{b.Str(keyRefType, refTypeName(r.RefType == jthrift.SpanRefType_FOLLOWS_FROM))},
		})
	}
	scope := applyTags(sp, thriftTags(s.Tags))
	for _, l := range s.Logs {
		if l == nil {
			continue
		}
		sp.Events = append(sp.Events, logEvent(usToNs(l.Timestamp), thriftTags(l.Fields)))
	}
	return sp, scope
}

func thriftTags(tags []*jthrift.Tag) []*commonpb.KeyValue {
	if len(tags) == 0 {
		return nil
	}
	out := make([]*commonpb.KeyValue, 0, len(tags))
	for _, t := range tags {
		if t == nil {
			continue
		}
		var v *commonpb.KeyValue
		switch t.VType {
		case jthrift.TagType_STRING:
			v = b.Str(t.Key, t.GetVStr())
		case jthrift.TagType_BOOL:
			v = b.Bool(t.Key, t.GetVBool())
		case jthrift.TagType_LONG:
			v = b.Int(t.Key, t.GetVLong())
		case jthrift.TagType_DOUBLE:
			v = b.Double(t.Key, t.GetVDouble())
		case jthrift.TagType_BINARY:
			v = b.Bytes(t.Key, t.VBinary)
		default:
			v = b.Str(t.Key, "<unknown tag type "+strconv.Itoa(int(t.VType))+">")
		}
		out = append(out, v)
	}
	return out
}

// processKey identifies a process by service and tags (for grouping spans of
// protobuf batches that carry their own process).
func processKey(svc string, tags []*commonpb.KeyValue) string {
	var sb strings.Builder
	sb.WriteString(svc)
	for _, kv := range tags {
		sb.WriteByte(0)
		sb.WriteString(kv.Key)
		sb.WriteByte(1)
		sb.WriteString(kv.Value.String())
	}
	return sb.String()
}
