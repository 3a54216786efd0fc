package otlpwire

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func kv(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

// genRequest builds a request whose traces interleave across resources and
// scopes, with every kind of nested attribute value.
func genRequest(r *rand.Rand, traces int) *coltracepb.ExportTraceServiceRequest {
	ids := make([][]byte, traces)
	for i := range ids {
		ids[i] = make([]byte, 16)
		for j := range ids[i] {
			ids[i][j] = byte(r.IntN(256))
		}
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	for rsi := 0; rsi < 3; rsi++ {
		rs := &tracev1.ResourceSpans{Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{kv("service.name", fmt.Sprint("svc", rsi))}}, SchemaUrl: "s"}
		for ssi := 0; ssi < 2; ssi++ {
			ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: fmt.Sprint("lib", ssi), Version: "1"}}
			for k := 0; k < 1+r.IntN(6); k++ {
				sp := &tracev1.Span{
					TraceId: ids[r.IntN(len(ids))], SpanId: []byte{byte(rsi), byte(ssi), byte(k), 1, 2, 3, 4, 5},
					Name: "op", Kind: tracev1.Span_SPAN_KIND_CLIENT, StartTimeUnixNano: 1, EndTimeUnixNano: 2,
					Attributes: []*commonv1.KeyValue{kv("a", "b"), {Key: "arr", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{
						ArrayValue: &commonv1.ArrayValue{Values: []*commonv1.AnyValue{{Value: &commonv1.AnyValue_IntValue{IntValue: 7}},
							{Value: &commonv1.AnyValue_KvlistValue{KvlistValue: &commonv1.KeyValueList{Values: []*commonv1.KeyValue{kv("x", "y")}}}}}}}}}},
					Events: []*tracev1.Span_Event{{Name: "e", Attributes: []*commonv1.KeyValue{kv("c", "d")}}},
					Links:  []*tracev1.Span_Link{{TraceId: ids[0], SpanId: []byte{9, 9, 9, 9, 9, 9, 9, 9}, TraceState: "t=1"}},
					Status: &tracev1.Status{Code: tracev1.Status_STATUS_CODE_ERROR, Message: "bad"},
				}
				switch r.IntN(20) {
				case 0:
					sp.TraceId = nil
				case 1:
					sp.TraceId = make([]byte, 16)
				}
				ss.Spans = append(ss.Spans, sp)
			}
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		req.ResourceSpans = append(req.ResourceSpans, rs)
	}
	return req
}

// TestSplitMatchesDecoding: the fragments, decoded, hold exactly the valid
// spans of the request, one trace each, with their resource and scope.
func TestSplitMatchesDecoding(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		req := genRequest(r, 1+r.IntN(5))
		body, err := proto.Marshal(req)
		require.NoError(t, err)
		res, err := Split(body)
		require.NoError(t, err)

		type key struct{ res, scope, span string }
		want := map[key]int{}
		total, invalid := 0, 0
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					total++
					if !validTraceID(sp.TraceId) {
						invalid++
						continue
					}
					want[key{rs.Resource.String(), ss.Scope.String(), sp.String()}]++
				}
			}
		}
		require.Equal(t, total, res.Total)
		require.Equal(t, invalid, res.Invalid)
		got := map[key]int{}
		seen := map[[16]byte]bool{}
		for _, f := range res.Fragments {
			require.False(t, seen[f.ID], "one fragment per trace")
			seen[f.ID] = true
			require.Equal(t, len(f.Bytes), cap(f.Bytes), "a fragment is allocated at its exact size")
			var td tracev1.TracesData
			require.NoError(t, proto.Unmarshal(f.Bytes, &td))
			n := 0
			for _, rs := range td.ResourceSpans {
				require.Equal(t, "s", rs.SchemaUrl)
				for _, ss := range rs.ScopeSpans {
					for _, sp := range ss.Spans {
						require.Equal(t, f.ID[:], sp.TraceId)
						got[key{rs.Resource.String(), ss.Scope.String(), sp.String()}]++
						n++
					}
				}
			}
			require.Equal(t, int(f.Spans), n)
		}
		require.Equal(t, want, got)
	}
}

func TestSplitRejectsWhatProtoRejects(t *testing.T) {
	good, err := proto.Marshal(genRequest(rand.New(rand.NewPCG(3, 4)), 2))
	require.NoError(t, err)
	badUTF8, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{Name: "ok"}}}}}}})
	require.NoError(t, err)
	badUTF8 = bytes.Replace(badUTF8, []byte("ok"), []byte{0xff, 0xfe}, 1)
	badEntity, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{EntityRefs: []*commonv1.EntityRef{{Type: "ok"}}}}}})
	require.NoError(t, err)
	badEntity = bytes.Replace(badEntity, []byte("ok"), []byte{0xc3, 0x28}, 1)
	for name, b := range map[string][]byte{
		"bad utf8 in entity ref": badEntity,
		"truncated":              good[:len(good)-3],
		"bad utf8":               badUTF8,
		"bad tag":                {0x00},
		"bad len":                {0x0a, 0x7f},
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, proto.Unmarshal(b, &coltracepb.ExportTraceServiceRequest{}), "sanity: proto refuses it")
			_, err := Split(b)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
}

func FuzzSplit(f *testing.F) {
	// Small seeds: Go's minimizer is quadratic in input size, and large
	// seeds stall the fuzzer for minutes.
	small := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{kv("s", "a")}},
		ScopeSpans: []*tracev1.ScopeSpans{{Scope: &commonv1.InstrumentationScope{Name: "l"}, Spans: []*tracev1.Span{
			{TraceId: bytes.Repeat([]byte{1}, 16), SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Name: "x",
				Attributes: []*commonv1.KeyValue{{Key: "a", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_ArrayValue{
					ArrayValue: &commonv1.ArrayValue{Values: []*commonv1.AnyValue{{Value: &commonv1.AnyValue_StringValue{StringValue: "v"}}}}}}}},
				Events: []*tracev1.Span_Event{{Name: "e"}}, Links: []*tracev1.Span_Link{{TraceState: "t"}}, Status: &tracev1.Status{Message: "m"}},
			{TraceId: bytes.Repeat([]byte{2}, 16), Name: "y"},
		}}},
	}}}
	b, _ := proto.Marshal(small)
	f.Add(b)
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00})
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := Split(body)
		perr := proto.Unmarshal(body, &coltracepb.ExportTraceServiceRequest{})
		if err != nil {
			if perr == nil {
				require.Contains(t, err.Error(), "nested deeper", "Split refused what proto accepts: %v", err)
			}
			return
		}
		require.NoError(t, perr, "Split accepted what proto refuses")
		n := res.Invalid
		for _, fr := range res.Fragments {
			var td tracev1.TracesData
			require.NoError(t, proto.Unmarshal(fr.Bytes, &td))
			n += int(fr.Spans)
		}
		require.Equal(t, res.Total, n)
	})
}

func BenchmarkSplit(b *testing.B) {
	req := genRequest(rand.New(rand.NewPCG(7, 8)), 20)
	body, _ := proto.Marshal(req)
	spans := 0
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			spans += len(ss.Spans)
		}
	}
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			if _, err := Split(body); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	})
	b.Run("decode-split-encode", func(b *testing.B) {
		// The reference: what the distributor did before otlpwire.
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for i := 0; i < b.N; i++ {
			var req coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				b.Fatal(err)
			}
			byTrace := map[string]*tracev1.TracesData{}
			for _, rs := range req.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, sp := range ss.Spans {
						td := byTrace[string(sp.TraceId)]
						if td == nil {
							td = &tracev1.TracesData{}
							byTrace[string(sp.TraceId)] = td
						}
						td.ResourceSpans = append(td.ResourceSpans, &tracev1.ResourceSpans{Resource: rs.Resource,
							ScopeSpans: []*tracev1.ScopeSpans{{Scope: ss.Scope, Spans: []*tracev1.Span{sp}}}})
					}
				}
			}
			for _, td := range byTrace {
				if _, err := proto.Marshal(td); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
	})
}
