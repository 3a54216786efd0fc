package otlpjson

import (
	"testing"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/model/modeltest"
)

func TestDecodeSpellings(t *testing.T) {
	want := modeltest.Request(1, 40)
	for _, o := range []modeltest.JSONOptions{
		{},
		{ProtoNames: true},
		{EnumNumbers: true},
		{UpperHex: true, Int64Numbers: true},
		{ProtoNames: true, EnumNumbers: true, UpperHex: true, Int64Numbers: true},
	} {
		t.Run("", func(t *testing.T) {
			doc, err := modeltest.JSON(want, o)
			require.NoError(t, err)
			got, err := Decode(doc)
			require.NoError(t, err)
			require.True(t, proto.Equal(want, got), "options %+v\ngot  %v\nwant %v", o, got, want)
		})
	}
}

func TestDecodeValues(t *testing.T) {
	doc := `{"resourceSpans":[{"resource":{"attributes":[
	  {"key":"s","value":{"stringValue":"a\"b\u00e9\ud83d\ude00"}},
	  {"key":"i","value":{"intValue":"-9223372036854775808"}},
	  {"key":"i2","value":{"intValue":42}},
	  {"key":"d","value":{"doubleValue":"NaN"}},
	  {"key":"d2","value":{"doubleValue":1.5e3}},
	  {"key":"b","value":{"boolValue":true}},
	  {"key":"by","value":{"bytesValue":"AQID"}},
	  {"key":"by2","value":{"bytes_value":"_-8"}},
	  {"key":"arr","value":{"arrayValue":{"values":[{"intValue":"1"},{"stringValue":"x"}]}}},
	  {"key":"kv","value":{"kvlistValue":{"values":[{"key":"n","value":{"boolValue":false}}]}}},
	  {"key":"nil","value":null}
	]},"scopeSpans":[{"scope":{"name":"sc","version":"v"},"spans":[{
	  "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"",
	  "name":"op","kind":"SPAN_KIND_CLIENT","startTimeUnixNano":1544712660000000000,"endTimeUnixNano":"1544712661000000000",
	  "status":{"code":"STATUS_CODE_ERROR","message":"bad"},"unknownField":{"x":[1,2,{"y":null}]},
	  "events":[{"timeUnixNano":"1","name":"e","attributes":[]}],"links":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","flags":256}],
	  "flags":1, "droppedAttributesCount": 3
	}]}]}]}`
	got, err := Decode([]byte(doc))
	require.NoError(t, err)
	attrs := got.ResourceSpans[0].Resource.Attributes
	require.Equal(t, "a\"bé😀", attrs[0].Value.GetStringValue())
	require.Equal(t, int64(-9223372036854775808), attrs[1].Value.GetIntValue())
	require.Equal(t, int64(42), attrs[2].Value.GetIntValue())
	require.NotEqual(t, attrs[3].Value.GetDoubleValue(), attrs[3].Value.GetDoubleValue()) // NaN
	require.Equal(t, 1500.0, attrs[4].Value.GetDoubleValue())
	require.True(t, attrs[5].Value.GetBoolValue())
	require.Equal(t, []byte{1, 2, 3}, attrs[6].Value.GetBytesValue())
	require.Equal(t, []byte{0xff, 0xef}, attrs[7].Value.GetBytesValue())
	require.Len(t, attrs[8].Value.GetArrayValue().Values, 2)
	require.Equal(t, "n", attrs[9].Value.GetKvlistValue().Values[0].Key)
	require.Nil(t, attrs[10].Value)
	sp := got.ResourceSpans[0].ScopeSpans[0].Spans[0]
	require.Equal(t, []byte{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}, sp.TraceId)
	require.Nil(t, sp.ParentSpanId)
	require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, sp.Kind)
	require.Equal(t, uint64(1544712660000000000), sp.StartTimeUnixNano)
	require.Equal(t, uint64(1544712661000000000), sp.EndTimeUnixNano)
	require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, sp.Status.Code)
	require.Equal(t, uint32(1), sp.Flags)
	require.Equal(t, uint32(3), sp.DroppedAttributesCount)
	require.Equal(t, uint32(256), sp.Links[0].Flags)
	require.Equal(t, sp.TraceId, sp.Links[0].TraceId)
	require.Equal(t, "sc", got.ResourceSpans[0].ScopeSpans[0].Scope.Name)
	var _ *commonpb.KeyValue
}

func TestDecodeErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":            ``,
		"not json":         `hello`,
		"null":             `null`,
		"array":            `[]`,
		"trailing":         `{} {}`,
		"base64 trace id":  `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA=="}]}]}]}`,
		"short span id":    `{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"abcd"}]}]}]}`,
		"non hex id":       `{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"zzzzzzzzzzzzzzzz"}]}]}]}`,
		"leading zero":     `{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":01}]}]}]}`,
		"quoted zero":      `{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"01"}]}]}]}`,
		"invalid utf-8":    "{\"resourceSpans\":[{\"schemaUrl\":\"a\xff\"}]}",
		"duplicate field":  `{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"a","name":"b"}]}]}]}`,
		"both spellings":   `{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"eee19b7ec3c1b173","span_id":"eee19b7ec3c1b173"}]}]}]}`,
		"oneof twice":      `{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"intValue":1,"stringValue":"x"}}]}}]}`,
		"null element":     `{"resourceSpans":[null]}`,
		"string bool":      `{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"boolValue":"true"}}]}}]}`,
		"bad int":          `{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"12x"}]}]}]}`,
		"negative uint":    `{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":-1}]}]}]}`,
		"overflow uint32":  `{"resourceSpans":[{"scopeSpans":[{"spans":[{"flags":4294967296}]}]}]}`,
		"unterminated":     `{"resourceSpans":[{"scopeSpans":[`,
		"trailing comma":   `{"resourceSpans":[],}`,
		"wrong type":       `{"resourceSpans":{}}`,
		"bad bytes":        `{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"bytesValue":"!!"}}]}}]}`,
		"control char":     "{\"resourceSpans\":[{\"schemaUrl\":\"a\x01\"}]}",
		"deep nesting":     `{"x":` + repeat("[", 100) + repeat("]", 100) + `}`,
		"bad escape":       `{"resourceSpans":[{"schemaUrl":"\q"}]}`,
		"missing colon":    `{"resourceSpans" []}`,
		"bad literal":      `{"x": tru}`,
		"garbage number":   `{"x": 1-2}`,
		"string for array": `{"resourceSpans":"x"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Decode([]byte(doc))
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func TestDecodeEmpty(t *testing.T) {
	got, err := Decode([]byte(`{}`))
	require.NoError(t, err)
	require.True(t, proto.Equal(&coltracepb.ExportTraceServiceRequest{}, got))
}

// TestDecodeLikeProtojson pins where OTLP/JSON leaves protojson's reading
// as it is: an enum name this OTLP version does not know reads as unset
// (forward compatibility, as protojson ignoring unknown fields reads it),
// and a oneof member given as null is absent.
func TestDecodeLikeProtojson(t *testing.T) {
	req, err := Decode([]byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":{"intValue":null,"stringValue":"x"}}]},"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_FROM_THE_FUTURE"}]}]}]}`))
	require.NoError(t, err)
	require.Equal(t, "x", req.ResourceSpans[0].Resource.Attributes[0].Value.GetStringValue())
	require.Zero(t, req.ResourceSpans[0].ScopeSpans[0].Spans[0].Kind)
}
