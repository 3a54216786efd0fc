package otlpjson

import (
	"testing"
)

// fuzzSeedMax bounds the size of every seed. Go's fuzzer minimizes each
// input that finds new coverage, trying every removable byte range
// (quadratic in the input's length, up to -fuzzminimizetime = 60s by
// default) and reports no executions meanwhile: mutants of multi-kilobyte
// generated requests made the target look stuck. Small hand-written seeds
// that still reach every spelling keep minimization short.
const fuzzSeedMax = 512

func FuzzOTLPJSON(f *testing.F) {
	for _, seed := range []string{
		// lowerCamelCase, enum names, 64-bit integers as strings.
		`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeSpans":[{"scope":{"name":"n","version":"1"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b173","parentSpanId":"","name":"op","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1","endTimeUnixNano":"2","status":{"code":"STATUS_CODE_ERROR","message":"m"}}]}]}]}`,
		// snake_case, enum numbers, integers as numbers, events and links.
		`{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"5B8EFFF798038103D269B633813FC60C","span_id":"eee19b7ec3c1b173","kind":3,"start_time_unix_nano":1,"events":[{"time_unix_nano":1,"name":"e"}],"links":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"0000000000000001","flags":1}],"status":{"code":2}}]}]}]}`,
		// every value type.
		`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"arrayValue":{"values":[{"intValue":"1"},{"doubleValue":"NaN"},{"boolValue":true},{"bytesValue":"AQI="},{"kvlistValue":{"values":[{"key":"k","value":{"doubleValue":1.5}}]}}]}}}]}}]}`,
		`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","kind":2}]}]}]}`,
	} {
		if len(seed) > fuzzSeedMax {
			f.Fatalf("seed of %d bytes is over %d", len(seed), fuzzSeedMax)
		}
		if _, err := Decode([]byte(seed)); err != nil {
			f.Fatalf("seed does not decode: %v", err)
		}
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := Decode(data)
		if err == nil && req == nil {
			t.Fatal("nil request without error")
		}
	})
}
