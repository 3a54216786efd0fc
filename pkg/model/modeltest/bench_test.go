package modeltest_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	jmodel "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	jt "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
	zkmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/model/jaeger"
	"github.com/rubatodb/rubato/pkg/model/modeltest"
	"github.com/rubatodb/rubato/pkg/model/otlpjson"
	"github.com/rubatodb/rubato/pkg/model/zipkin"
)

const benchSpans = 100

func u64(b []byte) uint64 {
	if len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b[len(b)-8:])
}

func anyString(v *commonpb.AnyValue) string {
	b, _ := json.Marshal(v.GetValue())
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	}
	return string(b)
}

// zipkinModels renders the benchmark request as zipkin-go spans.
func zipkinModels(req *coltracepb.ExportTraceServiceRequest) []*zkmodel.SpanModel {
	var out []*zkmodel.SpanModel
	for _, rs := range req.ResourceSpans {
		svc := rs.Resource.Attributes[0].Value.GetStringValue()
		for _, sp := range rs.ScopeSpans[0].Spans {
			parent := zkmodel.ID(u64(sp.ParentSpanId))
			m := &zkmodel.SpanModel{
				SpanContext: zkmodel.SpanContext{
					TraceID: zkmodel.TraceID{High: u64(sp.TraceId[:8]), Low: u64(sp.TraceId)}, ID: zkmodel.ID(u64(sp.SpanId)), ParentID: &parent,
				},
				Name: sp.Name, Kind: zkmodel.Server,
				Timestamp: time.Unix(0, int64(sp.StartTimeUnixNano)), Duration: time.Duration(sp.EndTimeUnixNano - sp.StartTimeUnixNano),
				LocalEndpoint:  &zkmodel.Endpoint{ServiceName: svc, IPv4: net.IPv4(10, 1, 2, 3).To4(), Port: 8080},
				RemoteEndpoint: &zkmodel.Endpoint{ServiceName: "postgres"},
				Tags:           map[string]string{"otel.scope.name": "net/http", "otel.scope.version": "1.2.3"},
			}
			for _, kv := range sp.Attributes {
				m.Tags[kv.Key] = anyString(kv.Value)
			}
			for _, ev := range sp.Events {
				m.Annotations = append(m.Annotations, zkmodel.Annotation{Timestamp: time.Unix(0, int64(ev.TimeUnixNano)), Value: ev.Name})
			}
			out = append(out, m)
		}
	}
	return out
}

func jaegerTag(kv *commonpb.KeyValue) *jt.Tag {
	switch v := kv.Value.GetValue().(type) {
	case *commonpb.AnyValue_IntValue:
		return &jt.Tag{Key: kv.Key, VType: jt.TagType_LONG, VLong: &v.IntValue}
	case *commonpb.AnyValue_DoubleValue:
		return &jt.Tag{Key: kv.Key, VType: jt.TagType_DOUBLE, VDouble: &v.DoubleValue}
	case *commonpb.AnyValue_BoolValue:
		return &jt.Tag{Key: kv.Key, VType: jt.TagType_BOOL, VBool: &v.BoolValue}
	}
	s := anyString(kv.Value)
	return &jt.Tag{Key: kv.Key, VType: jt.TagType_STRING, VStr: &s}
}

// jaegerBatch renders the benchmark request's first resource as a Thrift batch.
func jaegerBatch(req *coltracepb.ExportTraceServiceRequest) *jt.Batch {
	b := &jt.Batch{Process: &jt.Process{ServiceName: "svc"}}
	for _, kv := range req.ResourceSpans[0].Resource.Attributes[1:] {
		b.Process.Tags = append(b.Process.Tags, jaegerTag(kv))
	}
	for _, rs := range req.ResourceSpans {
		for _, sp := range rs.ScopeSpans[0].Spans {
			js := &jt.Span{
				TraceIdHigh: int64(u64(sp.TraceId[:8])), TraceIdLow: int64(u64(sp.TraceId)), SpanId: int64(u64(sp.SpanId)), ParentSpanId: int64(u64(sp.ParentSpanId)),
				OperationName: sp.Name, StartTime: int64(sp.StartTimeUnixNano / 1000), Duration: int64((sp.EndTimeUnixNano - sp.StartTimeUnixNano) / 1000),
			}
			kind := "server"
			js.Tags = append(js.Tags, &jt.Tag{Key: "span.kind", VType: jt.TagType_STRING, VStr: &kind})
			for _, kv := range sp.Attributes {
				js.Tags = append(js.Tags, jaegerTag(kv))
			}
			for _, ev := range sp.Events {
				name := ev.Name
				l := &jt.Log{Timestamp: int64(ev.TimeUnixNano / 1000), Fields: []*jt.Tag{{Key: "event", VType: jt.TagType_STRING, VStr: &name}}}
				for _, kv := range ev.Attributes {
					l.Fields = append(l.Fields, jaegerTag(kv))
				}
				js.Logs = append(js.Logs, l)
			}
			for _, l := range sp.Links {
				js.References = append(js.References, &jt.SpanRef{RefType: jt.SpanRefType_FOLLOWS_FROM, TraceIdLow: int64(u64(l.TraceId)), SpanId: int64(u64(l.SpanId))})
			}
			b.Spans = append(b.Spans, js)
		}
	}
	return b
}

func protoBatch(tb *jt.Batch) *jmodel.Batch {
	conv := func(tags []*jt.Tag) []jmodel.KeyValue {
		var out []jmodel.KeyValue
		for _, t := range tags {
			switch t.VType {
			case jt.TagType_STRING:
				out = append(out, jmodel.String(t.Key, t.GetVStr()))
			case jt.TagType_BOOL:
				out = append(out, jmodel.Bool(t.Key, t.GetVBool()))
			case jt.TagType_LONG:
				out = append(out, jmodel.Int64(t.Key, t.GetVLong()))
			case jt.TagType_DOUBLE:
				out = append(out, jmodel.Float64(t.Key, t.GetVDouble()))
			}
		}
		return out
	}
	out := &jmodel.Batch{Process: &jmodel.Process{ServiceName: tb.Process.ServiceName, Tags: conv(tb.Process.Tags)}}
	for _, s := range tb.Spans {
		ps := &jmodel.Span{
			TraceID: jmodel.NewTraceID(uint64(s.TraceIdHigh), uint64(s.TraceIdLow)), SpanID: jmodel.NewSpanID(uint64(s.SpanId)),
			OperationName: s.OperationName, StartTime: time.UnixMicro(s.StartTime), Duration: time.Duration(s.Duration) * time.Microsecond, Tags: conv(s.Tags),
		}
		ps.References = append(ps.References, jmodel.NewChildOfRef(ps.TraceID, jmodel.NewSpanID(uint64(s.ParentSpanId))))
		for _, r := range s.References {
			ps.References = append(ps.References, jmodel.NewFollowsFromRef(jmodel.NewTraceID(0, uint64(r.TraceIdLow)), jmodel.NewSpanID(uint64(r.SpanId))))
		}
		for _, l := range s.Logs {
			ps.Logs = append(ps.Logs, jmodel.Log{Timestamp: time.UnixMicro(l.Timestamp), Fields: conv(l.Fields)})
		}
		out.Spans = append(out.Spans, ps)
	}
	return out
}

func run(b *testing.B, payload []byte, decode func([]byte) error) {
	b.Helper()
	if err := decode(payload); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for b.Loop() {
		if err := decode(payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSpans), "ns/span")
}

// BenchmarkDecode measures decode-and-convert to OTLP per protocol for the
// same 100 realistic spans; OTLPProtobuf (proto.Unmarshal) is the reference.
func BenchmarkDecode(b *testing.B) {
	ctx := context.Background()
	req := modeltest.Request(1, benchSpans)
	otlpPB, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	otlpJSON, err := modeltest.JSON(req, modeltest.JSONOptions{})
	if err != nil {
		b.Fatal(err)
	}
	zm := zipkinModels(req)
	zJSON, err := json.Marshal(zm)
	if err != nil {
		b.Fatal(err)
	}
	zPB, err := zipkin_proto3.SpanSerializer{}.Serialize(zm)
	if err != nil {
		b.Fatal(err)
	}
	tb := jaegerBatch(req)
	tBinary, err := thrift.NewTSerializer().Write(ctx, tb)
	if err != nil {
		b.Fatal(err)
	}
	buf := thrift.NewTMemoryBuffer()
	if err := agent.NewAgentClientFactory(buf, thrift.NewTCompactProtocolFactoryConf(nil)).EmitBatch(ctx, tb); err != nil {
		b.Fatal(err)
	}
	tCompact := buf.Bytes()
	jPB, err := (&api_v2.PostSpansRequest{Batch: *protoBatch(tb)}).Marshal()
	if err != nil {
		b.Fatal(err)
	}

	b.Run("OTLPProtobuf", func(b *testing.B) {
		run(b, otlpPB, func(p []byte) error {
			return proto.Unmarshal(p, &coltracepb.ExportTraceServiceRequest{})
		})
	})
	b.Run("OTLPJSON", func(b *testing.B) {
		run(b, otlpJSON, func(p []byte) error { _, err := otlpjson.Decode(p); return err })
	})
	b.Run("ZipkinJSONV2", func(b *testing.B) {
		run(b, zJSON, func(p []byte) error { _, err := zipkin.ParseJSONV2(p); return err })
	})
	b.Run("ZipkinProto", func(b *testing.B) {
		run(b, zPB, func(p []byte) error { _, err := zipkin.ParseProtoV2(p); return err })
	})
	b.Run("JaegerThriftBinary", func(b *testing.B) {
		run(b, tBinary, func(p []byte) error {
			batch, err := jaeger.DecodeThriftBatch(p)
			if err == nil {
				jaeger.ThriftToOTLP(batch)
			}
			return err
		})
	})
	b.Run("JaegerThriftCompact", func(b *testing.B) {
		run(b, tCompact, func(p []byte) error {
			batch, err := jaeger.DecodeAgentMessage(p, jaeger.Compact)
			if err == nil {
				jaeger.ThriftToOTLP(batch)
			}
			return err
		})
	})
	b.Run("JaegerProto", func(b *testing.B) {
		run(b, jPB, func(p []byte) error {
			r, err := jaeger.DecodePostSpans(p)
			if err == nil {
				jaeger.ProtoToOTLP(&r.Batch)
			}
			return err
		})
	})
}
