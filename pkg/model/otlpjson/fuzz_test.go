package otlpjson

import (
	"testing"

	"github.com/rubatodb/rubato/pkg/model/modeltest"
)

func FuzzOTLPJSON(f *testing.F) {
	for i, o := range []modeltest.JSONOptions{{}, {ProtoNames: true, EnumNumbers: true, Int64Numbers: true}} {
		doc, err := modeltest.JSON(modeltest.Request(uint64(i), 3), o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(doc)
	}
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","kind":2}]}]}]}`))
	f.Add([]byte(`{"resource_spans":[{"resource":{"attributes":[{"key":"a","value":{"arrayValue":{"values":[{"kvlistValue":{"values":[]}}]}}}]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := Decode(data)
		if err == nil && req == nil {
			t.Fatal("nil request without error")
		}
	})
}
