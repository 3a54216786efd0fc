package ingester

import (
	"crypto/rand"
	"testing"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// BenchmarkPushBytes measures the ingester's acknowledged-push path: limits,
// WAL append with fsync (group commit across parallel pushers) and indexing,
// for pushes of 50 traces × 10 spans as the distributor sends them.
func BenchmarkPushBytes(b *testing.B) {
	ing := newTestIngester(b, b.TempDir(), inmem.New(), overrides.Limits{})
	span := func(tid []byte) *tracev1.Span {
		sid := make([]byte, 8)
		_, _ = rand.Read(sid)
		return &tracev1.Span{TraceId: tid, SpanId: sid, Name: "GET /api/checkout/{cartId}", StartTimeUnixNano: 1, EndTimeUnixNano: 2,
			Attributes: []*commonv1.KeyValue{{Key: "http.request.method", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "GET"}}}}}
	}
	newReq := func() *rubatopb.PushBytesRequest {
		req := &rubatopb.PushBytesRequest{}
		for i := 0; i < 50; i++ {
			tid := make([]byte, 16)
			_, _ = rand.Read(tid)
			ss := &tracev1.ScopeSpans{}
			for j := 0; j < 10; j++ {
				ss.Spans = append(ss.Spans, span(tid))
			}
			bts, _ := proto.Marshal(&tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{ss}}}})
			req.Ids, req.Traces, req.Spans = append(req.Ids, tid), append(req.Traces, bts), append(req.Spans, 10)
		}
		return req
	}
	reqs := make([]*rubatopb.PushBytesRequest, 64)
	bytes := 0
	for i := range reqs {
		reqs[i] = newReq()
		for _, t := range reqs[i].Traces {
			bytes += len(t)
		}
	}
	b.SetBytes(int64(bytes / len(reqs)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := ing.PushBytes(tenantCtx(), reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/span")
}
