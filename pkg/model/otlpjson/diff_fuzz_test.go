package otlpjson

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodeMatchesProtojson is the differential check of Decode against
// referenceDecode (encoding/json's validity rules plus protojson, IDs
// mapped from hex): an input one accepts and the other refuses fails, and
// so does an input both accept into different messages.
func FuzzDecodeMatchesProtojson(f *testing.F) {
	for _, seed := range diffSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstReference(t, data)
	})
}

func checkAgainstReference(t *testing.T, data []byte) {
	t.Helper()
	got, err := Decode(data)
	want, refErr := referenceDecode(data)
	switch {
	case err == nil && refErr != nil:
		t.Fatalf("Decode accepts what the reference refuses (%v): %q", refErr, data)
	case err != nil && refErr == nil:
		t.Fatalf("Decode refuses what the reference accepts (%v): %q", err, data)
	case err == nil && !proto.Equal(got, want):
		t.Fatalf("Decode and the reference read %q differently:\n got  %v\n want %v", data, got, want)
	}
}

var diffSeeds = []string{
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}]},"scopeSpans":[{"scope":{"name":"n","version":"1"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b173","parentSpanId":"","name":"op","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1","endTimeUnixNano":"2","status":{"code":"STATUS_CODE_ERROR","message":"m"}}]}]}]}`,
	`{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"5B8EFFF798038103D269B633813FC60C","span_id":"eee19b7ec3c1b173","kind":3,"start_time_unix_nano":1,"events":[{"time_unix_nano":1,"name":"e"}],"links":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"0000000000000001","flags":1}],"status":{"code":2}}]}]}]}`,
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"arrayValue":{"values":[{"intValue":"1"},{"doubleValue":"NaN"},{"boolValue":true},{"bytesValue":"AQI="},{"kvlistValue":{"values":[{"key":"k","value":{"doubleValue":1.5}}]}}]}}}]}}]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","kind":2}]}]}]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":01}]}]}]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","name":"b"}]}]}]}`,
	"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"\xff\"}]}]}]}",
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"intValue":1,"stringValue":"x"}}]}}]}`,
	`{"unknown":{"traceId":"zz"},"resourceSpans":null}`,
	`{}`, `null`, `[]`, `{"resourceSpans":[]} x`,
	`{"resourceSpans":[null]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[null]}]}]}`,
	`{"resourceSpans":[{"resource":{"attributes":[null]}}]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_FOO"}]}]}]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":2147483648}]}]}]}`, // out of int32: refused by both
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"status":{"code":-2147483649}}]}]}]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"1e3","endTimeUnixNano":1.0}]}]}]}`,
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"boolValue":"true"}}]}}]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"flags":-1}]}]}]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":null,"status":null,"events":null}]}]}]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"\ud800x"}]}]}]}`,
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"doubleValue":1e400}}]}}]}`,
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"intValue":"01"}}]}}]}`,
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"intValue":" 1"}}]}}]}`,
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"bytesValue":"AQI"}}]}}]}`,
	`{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"eee19b7ec3c1b173eee19b7ec3c1b173"}]}]}]}`,
	// The dictionary references of newer OTLP (meant for profiles), legal in any AnyValue and KeyValue.
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","keyStrindex":3,"value":{"stringValueStrindex":5}}]}}]}`,
	`{"resourceSpans":[{"resource":{"attributes":[{"key_strindex":"3","value":{"string_value_strindex":"-5"}}]}}]}`,
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"stringValue":"x","stringValueStrindex":5}}]}}]}`,
	`{"resourceSpans":[{"resource":{"attributes":[{"key":"a","keyStrindex":2147483648,"value":{"stringValueStrindex":null}}]}}]}`,
}

// TestDecodeMatchesProtojsonSeeds runs the differential check on the seeds
// in every test run (the fuzz target explores beyond them).
func TestDecodeMatchesProtojsonSeeds(t *testing.T) {
	for _, s := range diffSeeds {
		t.Run("", func(t *testing.T) { checkAgainstReference(t, []byte(s)) })
	}
}
