package jaeger

import (
	"context"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/jaegertracing/jaeger-idl/thrift-gen/agent"
)

func agentPacket(f *testing.F, pf thrift.TProtocolFactory) []byte {
	buf := thrift.NewTMemoryBuffer()
	if err := agent.NewAgentClientFactory(buf, pf).EmitBatch(context.Background(), Batch(3)); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

func FuzzJaegerThriftCompact(f *testing.F) {
	f.Add(agentPacket(f, thrift.NewTCompactProtocolFactoryConf(nil)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if b, err := DecodeAgentMessage(data, Compact); err == nil {
			ThriftToOTLP(b)
		}
	})
}

func FuzzJaegerThriftBinary(f *testing.F) {
	f.Add(agentPacket(f, thrift.NewTBinaryProtocolFactoryConf(nil)))
	body, err := thrift.NewTSerializer().Write(context.Background(), Batch(3))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
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
	pb, err := (&api_v2.PostSpansRequest{Batch: *thriftToProto(Batch(3))}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pb)
	f.Fuzz(func(t *testing.T, data []byte) {
		if req, err := DecodePostSpans(data); err == nil {
			ProtoToOTLP(&req.Batch)
		}
	})
}
