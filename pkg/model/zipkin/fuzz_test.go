package zipkin

import (
	"encoding/json"
	"testing"

	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
)

func FuzzZipkinJSONV2(f *testing.F) {
	js, err := json.Marshal(models(3))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(js)
	f.Add([]byte(`[{"traceId":"1","id":"2","tags":{"error":"true","otel.status_code":"ERROR"},"annotations":[{"timestamp":1,"value":"a|{\"x\":1}|0"}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseJSONV2(data)
		if err == nil && req == nil {
			t.Fatal("nil request without error")
		}
	})
}

func FuzzZipkinJSONV1(f *testing.F) {
	f.Add([]byte(v1Doc))
	f.Add([]byte(`[{"traceId":"1","id":"2","annotations":[{"value":"ms"}],"binaryAnnotations":[{"key":"ma","value":true}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseJSONV1(data)
		if err == nil && req == nil {
			t.Fatal("nil request without error")
		}
	})
}

func FuzzZipkinProto(f *testing.F) {
	pb, err := zipkin_proto3.SpanSerializer{}.Serialize(models(3))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pb)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := ParseProtoV2(data)
		if err == nil && req == nil {
			t.Fatal("nil request without error")
		}
	})
}
