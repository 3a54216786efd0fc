package search

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

func TestParseTag(t *testing.T) {
	for in, want := range map[string]Tag{
		"resource.service.name": {Scope: ScopeResource, Name: "service.name"},
		"span.http.method":      {Scope: ScopeSpan, Name: "http.method"},
		".foo":                  {Name: "foo"},
		"service.name":          {Name: "service.name"},
		"event.x":               {Scope: ScopeEvent, Name: "x"},
		"link.x":                {Scope: ScopeLink, Name: "x"},
		"instrumentation.x":     {Scope: ScopeInstrumentation, Name: "x"},
		"name":                  {Scope: ScopeIntrinsic, Name: "name"},
		"span:status":           {Scope: ScopeIntrinsic, Name: "status"},
		"trace:rootService":     {Scope: ScopeIntrinsic, Name: "rootServiceName"},
	} {
		got, err := ParseTag(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "span:nope", "{", `a"b`} {
		_, err := ParseTag(bad)
		require.ErrorIs(t, err, ErrInvalid, bad)
	}
}

func FuzzParseTag(f *testing.F) {
	for _, s := range []string{"resource.a", "span.", ".", "name", "span:id", "x:y", "ünï.códe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tag, err := ParseTag(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%q: error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if tag.Name == "" {
			t.Fatalf("%q: empty name", s)
		}
	})
}

func TestIDStrings(t *testing.T) {
	id := make([]byte, 16)
	id[15] = 0xab
	require.Equal(t, "ab", TraceIDString(id))
	id[0] = 0x01
	require.Equal(t, "1"+strings.Repeat("0", 28)+"ab", TraceIDString(id))
	require.Equal(t, "00000000000000ff", SpanIDString([]byte{0, 0, 0, 0, 0, 0, 0, 0xff}))
	require.Equal(t, "0102030405060708", SpanIDString([]byte{1, 2, 3, 4, 5, 6, 7, 8}))
}

func kvs(kv ...string) []*commonv1.KeyValue {
	var out []*commonv1.KeyValue
	for i := 0; i < len(kv); i += 2 {
		out = append(out, strKV(kv[i], kv[i+1]))
	}
	return out
}

func TestMetadataAndTags(t *testing.T) {
	td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{Attributes: kvs("service.name", "svc", "region", "eu")},
		ScopeSpans: []*tracev1.ScopeSpans{{Scope: &commonv1.InstrumentationScope{Name: "lib", Attributes: kvs("lib.a", "1")}, Spans: []*tracev1.Span{
			{SpanId: []byte{0, 0, 0, 0, 0, 0, 0, 1}, Name: "root", StartTimeUnixNano: 1_000_000_000, EndTimeUnixNano: 1_005_000_000, Attributes: kvs("k", "v")},
			{SpanId: []byte{0, 0, 0, 0, 0, 0, 0, 2}, ParentSpanId: []byte{0, 0, 0, 0, 0, 0, 0, 1}, Name: "child", StartTimeUnixNano: 1_001_000_000, EndTimeUnixNano: 1_009_000_000,
				Attributes: kvs("k", "w"), Status: &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR},
				Events: []*tracev1.Span_Event{{Name: "ev", Attributes: kvs("e", "1")}}},
		}}},
	}}}
	q, err := ParseQuery(`{ span.k = "w" }`)
	require.NoError(t, err)
	md, err := Match(q, []byte{0, 0, 1}, td, 0)
	require.NoError(t, err)
	require.Equal(t, "1", md.TraceID)
	require.Equal(t, "svc", md.RootServiceName)
	require.Equal(t, "root", md.RootTraceName)
	require.Equal(t, uint64(1_000_000_000), md.StartTimeUnixNano)
	require.Equal(t, uint32(9), md.DurationMs)
	require.Equal(t, &rubatopb.ServiceStats{SpanCount: 2, ErrorCount: 1}, md.ServiceStats["svc"])
	require.Len(t, md.SpanSets, 1)
	require.Same(t, md.SpanSet, md.SpanSets[0])
	require.Equal(t, uint32(1), md.SpanSet.Matched)
	require.Equal(t, "0000000000000002", md.SpanSet.Spans[0].SpanID)
	require.Equal(t, uint64(8_000_000), md.SpanSet.Spans[0].DurationNanos)

	none, err := ParseQuery(`{ span.k = "zzz" }`)
	require.NoError(t, err)
	md, err = Match(none, []byte{1}, td, 0)
	require.NoError(t, err)
	require.Nil(t, md)

	names := NewTagNames(0, 0)
	require.NoError(t, names.AddTrace(nil, td))
	resp := names.Response("")
	got := map[string][]string{}
	for _, s := range resp.Scopes {
		got[s.Name] = s.Tags
	}
	require.Equal(t, []string{"region", "service.name"}, got["resource"])
	require.Equal(t, []string{"k"}, got["span"])
	require.Equal(t, []string{"e"}, got["event"])
	require.Equal(t, []string{"lib.a"}, got["instrumentation"])
	require.NotEmpty(t, got["intrinsic"])

	vals := NewTagValues(0, 0)
	tag, _ := ParseTag("span.k")
	require.NoError(t, vals.AddTrace(tag, q, td))
	require.Equal(t, []*rubatopb.TagValue{{Type: "string", Value: "w"}}, vals.Response().TagValues, "q keeps only the matching span")
	vals = NewTagValues(0, 0)
	tag, _ = ParseTag("status")
	require.NoError(t, vals.AddTrace(tag, nil, td))
	require.Equal(t, []*rubatopb.TagValue{{Type: "keyword", Value: "error"}, {Type: "keyword", Value: "unset"}}, vals.Response().TagValues)

	small := NewTagValues(1, 0)
	require.True(t, small.Add("string", "a"))
	require.False(t, small.Add("string", "b"))
	require.True(t, small.Full())
}
