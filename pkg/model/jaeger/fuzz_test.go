package jaeger

import (
	"context"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
	jt "github.com/jaegertracing/jaeger-idl/thrift-gen/jaeger"
)

// fuzzSeedMax bounds the size of every seed. Go's fuzzer minimizes each
// input that finds new coverage, trying every removable byte range
// (quadratic in the input's length, up to -fuzzminimizetime = 60s by
// default) and reports no executions meanwhile: mutants of a multi-kilobyte
// seed made the targets look stuck at a handful of execs. Small seeds that
// still reach every conversion rule keep minimization short.
const fuzzSeedMax = 512

// seedBatch is a one-span batch touching every tag type, a log, a reference
// and the process rules, kept small (see fuzzSeedMax).
func seedBatch() *jt.Batch {
	return &jt.Batch{
		Process: &jt.Process{ServiceName: "s", Tags: []*jt.Tag{strTag("hostname", "h"), longTag("n", 1)}},
		Spans: []*jt.Span{{
			TraceIdLow: 1, TraceIdHigh: 2, SpanId: 3, ParentSpanId: 4, OperationName: "op", StartTime: 5, Duration: 6,
			Tags: []*jt.Tag{
				strTag("span.kind", "client"), boolTag("error", true), longTag("http.status_code", 500),
				{Key: "d", VType: jt.TagType_DOUBLE, VDouble: ptr(0.5)}, {Key: "b", VType: jt.TagType_BINARY, VBinary: []byte{1}},
			},
			Logs:       []*jt.Log{{Timestamp: 7, Fields: []*jt.Tag{strTag("event", "e"), longTag("k", 1)}}},
			References: []*jt.SpanRef{{RefType: jt.SpanRefType_FOLLOWS_FROM, TraceIdLow: 8, SpanId: 9}},
		}},
	}
}

func agentPacket(f *testing.F, pf thrift.TProtocolFactory) []byte {
	buf := thrift.NewTMemoryBuffer()
	if err := agent.NewAgentClientFactory(buf, pf).EmitBatch(context.Background(), seedBatch()); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

func addSeed(f *testing.F, b []byte) {
	f.Helper()
	if len(b) > fuzzSeedMax {
		f.Fatalf("seed of %d bytes is over %d", len(b), fuzzSeedMax)
	}
	f.Add(b)
}

func FuzzJaegerThriftCompact(f *testing.F) {
	addSeed(f, agentPacket(f, thrift.NewTCompactProtocolFactoryConf(nil)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if b, err := DecodeAgentMessage(data, Compact); err == nil {
			ThriftToOTLP(b)
		}
	})
}

func FuzzJaegerThriftBinary(f *testing.F) {
	addSeed(f, agentPacket(f, thrift.NewTBinaryProtocolFactoryConf(nil)))
	body, err := thrift.NewTSerializer().Write(context.Background(), seedBatch())
	if err != nil {
		f.Fatal(err)
	}
	addSeed(f, body)
	f.Fuzz(func(t *testing.T, data []byte) {
		if b, err := DecodeAgentMessage(data, Binary); err == nil {
			ThriftToOTLP(b)
		}
		if b, err := DecodeThriftBatch(data); err == nil {
			ThriftToOTLP(b)
		}
	})
}

func FuzzJaegerProto(f *testing.F) {
	pb, err := (&api_v2.PostSpansRequest{Batch: *thriftToProto(seedBatch())}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	addSeed(f, pb)
	f.Fuzz(func(t *testing.T, data []byte) {
		if req, err := DecodePostSpans(data); err == nil {
			ProtoToOTLP(&req.Batch)
		}
	})
}
