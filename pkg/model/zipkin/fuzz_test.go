package zipkin

import (
	"net"
	"testing"
	"time"

	zkmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
)

// fuzzSeedMax bounds the size of every seed. Go's fuzzer minimizes each
// input that finds new coverage, trying every removable byte range
// (quadratic in the input's length, up to -fuzzminimizetime = 60s by
// default) and reports no executions meanwhile: mutants of a multi-kilobyte
// seed made the targets look stuck at a handful of execs. Small seeds that
// still reach every conversion rule keep minimization short.
const fuzzSeedMax = 512

func addSeed(f *testing.F, b []byte) {
	f.Helper()
	if len(b) > fuzzSeedMax {
		f.Fatalf("seed of %d bytes is over %d", len(b), fuzzSeedMax)
	}
	f.Add(b)
}

// seedModel is one small span with both endpoints, an annotation and tags.
func seedModel() []*zkmodel.SpanModel {
	parent := zkmodel.ID(1)
	return []*zkmodel.SpanModel{{
		SpanContext: zkmodel.SpanContext{TraceID: zkmodel.TraceID{High: 1, Low: 2}, ID: 3, ParentID: &parent},
		Name:        "get", Kind: zkmodel.Client, Timestamp: time.UnixMicro(1_700_000_000_000_004), Duration: 5 * time.Microsecond,
		LocalEndpoint:  &zkmodel.Endpoint{ServiceName: "a", IPv4: net.IPv4(10, 0, 0, 1).To4(), Port: 80},
		RemoteEndpoint: &zkmodel.Endpoint{ServiceName: "b", IPv6: net.ParseIP("::1"), Port: 81},
		Annotations:    []zkmodel.Annotation{{Timestamp: time.UnixMicro(1_700_000_000_000_006), Value: "e"}},
		Tags:           map[string]string{"error": "true", "k": "v"},
	}}
}

func FuzzZipkinJSONV2(f *testing.F) {
	js, err := seedModel()[0].MarshalJSON()
	if err != nil {
		f.Fatal(err)
	}
	addSeed(f, append(append([]byte{'['}, js...), ']'))
	addSeed(f, []byte(`[{"traceId":"1","id":"2","tags":{"error":"true","otel.status_code":"ERROR"},"annotations":[{"timestamp":1,"value":"a|{\"x\":1}|0"}]}]`))
	addSeed(f, []byte(`[{"traceId":"1","id":"2","kind":"SERVER","tags":{"w3c.tracestate":"a=b","otel.scope.name":"s","host.name":"h"},"annotations":[{"timestamp":1,"value":"a: {\"x\":1.5,\"y\":true}"}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseJSONV2(data)
		if err == nil && req == nil {
			t.Fatal("nil request without error")
		}
	})
}

func FuzzZipkinJSONV1(f *testing.F) {
	addSeed(f, []byte(`[{"traceId":"1","id":"2","name":"x","annotations":[{"timestamp":1,"value":"cs","endpoint":{"serviceName":"a"}},{"timestamp":3,"value":"sr","endpoint":{"serviceName":"b","ipv4":"10.0.0.1","port":80}}],"binaryAnnotations":[{"key":"sa","value":true,"endpoint":{"serviceName":"c"}},{"key":"k","value":"v"}]}]`))
	addSeed(f, []byte(`[{"traceId":"1","id":"2","annotations":[{"value":"ms"}],"binaryAnnotations":[{"key":"ma","value":true}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseJSONV1(data)
		if err == nil && req == nil {
			t.Fatal("nil request without error")
		}
	})
}

func FuzzZipkinProto(f *testing.F) {
	pb, err := zipkin_proto3.SpanSerializer{}.Serialize(seedModel())
	if err != nil {
		f.Fatal(err)
	}
	addSeed(f, pb)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseProtoV2(data)
		if err == nil && req == nil {
			t.Fatal("nil request without error")
		}
	})
}
