package ingester

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	mrand "math/rand"
	"strings"
	"testing"

	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
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

// BenchmarkSearchLive measures a search over live traces held in the WAL
// (2,000 traces of 1–12 spans, pushed in 1–3 parts each): with the search
// summaries cached (the steady state: a part is summarised by the first
// search after its push), with the cache emptied before every search
// (every part read and summarised), and, for comparison, decoding and
// evaluating every trace as the ingester did before summaries.
func BenchmarkSearchLive(b *testing.B) {
	ing := newTestIngester(b, b.TempDir(), inmem.New(), overrides.Limits{})
	pushGenTraces(b, ing, genTraces(mrand.New(mrand.NewSource(1)), 2000))
	inst := ing.instanceList()[0]
	queries := map[string]string{
		"nothing-resource": `{ resource.service.name = "no-such-service" }`,
		"nothing-span":     `{ span.db.system = "mysql" }`,
		"selective":        `{ resource.service.name = "cart" && span.http.status_code = 503 }`,
		"structural-l20":   `{ kind = server && resource.service.name = "checkout" } > { span.db.system = "postgresql" }`,
	}
	for name, qs := range queries {
		q, err := search.ParseQuery(qs)
		if err != nil {
			b.Fatal(err)
		}
		limit := 0
		if strings.HasSuffix(name, "-l20") {
			limit = 20
		}
		req := search.Request{Query: q}
		run := func(b *testing.B, cold bool) {
			if !cold { // warm the cache (b.Loop times from its first call)
				if _, err := ing.searchSnapshotData(context.Background(), inst, req, nil, search.NewCombiner(limit, 3)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if cold {
					inst.summaries = newSummaryCache(ing.cfg.SearchSummaryBytes, ing.metrics)
				}
				if _, err := ing.searchSnapshotData(context.Background(), inst, req, nil, search.NewCombiner(limit, 3)); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(name+"/cached", func(b *testing.B) { run(b, false) })
		b.Run(name+"/uncached", func(b *testing.B) { run(b, true) })
		b.Run(name+"/decode-all", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				snap, release := inst.snapshot()
				comb := search.NewCombiner(limit, 3)
				var st search.Stats
				err := ing.eachWALTrace(context.Background(), snap, 0, 0, &st, func(id [16]byte, td *tracev1.TracesData) bool {
					md, _ := search.Match(q, id[:], td, 3)
					comb.Add(md)
					return !comb.Full()
				})
				release()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSummaryScan measures building a part's search summary from its
// bytes (what a push pays per part while searches are recent, and a
// search per part not yet summarised), per span.
func BenchmarkSummaryScan(b *testing.B) {
	r := mrand.New(mrand.NewSource(1))
	var raws [][]byte
	spans, size := 0, 0
	for _, tr := range genTraces(r, 500) {
		raw, _ := proto.Marshal(tr.td)
		raws = append(raws, raw)
		spans += search.CountSpans(tr.td)
		size += len(raw)
	}
	var sb summaryBuilder
	b.SetBytes(int64(size / len(raws)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := sb.scan(raws[i%len(raws)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)*float64(len(raws))/float64(spans), "ns/span")
}

// BenchmarkSnapshot measures taking a search snapshot of 100,000 live
// traces of two parts each (what a search or tag call pays before reading
// anything), whole and the part of it taken with the instance lock held
// (pushes wait for that).
func BenchmarkSnapshot(b *testing.B) {
	ing := newTestIngester(b, b.TempDir(), inmem.New(), overrides.Limits{})
	const traces = 100_000
	var ids, raws [][]byte
	var spans []uint32
	for i := range traces {
		id := make([]byte, 16)
		binary.BigEndian.PutUint64(id, uint64(i)+1)
		td := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{
			TraceId: id, SpanId: []byte{1, 2, 3, 4, 5, 6, 7, 8}, StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + 1}}}}}}}
		raw, _ := proto.Marshal(td)
		ids, raws, spans = append(ids, id), append(raws, raw), append(spans, 1)
	}
	for range 2 {
		for k := 0; k < traces; k += 1000 {
			if _, err := ing.PushBytes(tenantCtx(), &rubatopb.PushBytesRequest{Ids: ids[k : k+1000], Traces: raws[k : k+1000], Spans: spans[k : k+1000]}); err != nil {
				b.Fatal(err)
			}
		}
	}
	inst := ing.instanceList()[0]
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			snap, release := inst.snapshot()
			if len(snap.traces) != traces {
				b.Fatalf("%d traces in the snapshot", len(snap.traces))
			}
			release()
		}
	})
	// What pushes wait for: the part taken with the lock held.
	b.Run("locked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			inst.mu.RLock()
			stages := inst.collectStagesLocked()
			inst.mu.RUnlock()
			if len(stages[0]) != traces {
				b.Fatalf("%d live traces", len(stages[0]))
			}
		}
	})
}

// BenchmarkTagValuesWAL measures a tag-values call over 2,000 WAL-held
// traces (1–12 spans in 1–3 parts each): with the tag cache filled (the
// steady state of repeated autocompletion calls: no part read), and with
// it emptied before every call (every part read and scanned, what the
// parts pushed since the last call cost), per span.
func BenchmarkTagValuesWAL(b *testing.B) {
	ing := newTestIngester(b, b.TempDir(), inmem.New(), overrides.Limits{})
	traces := genTraces(mrand.New(mrand.NewSource(1)), 2000)
	pushGenTraces(b, ing, traces)
	spans := 0
	for _, tr := range traces {
		spans += search.CountSpans(tr.td)
	}
	inst := ing.instanceList()[0]
	for _, name := range []string{"resource.service.name", "span.http.method"} {
		req := &rubatopb.SearchTagValuesRequest{TagName: name}
		for _, cold := range []bool{false, true} {
			label := name + "/cached"
			if cold {
				label = name + "/uncached"
			}
			b.Run(label, func(b *testing.B) {
				if _, err := ing.SearchTagValues(tenantCtx(), req); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if cold {
						inst.tagValues = newTagValueCache()
					}
					if _, err := ing.SearchTagValues(tenantCtx(), req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(spans), "ns/span")
			})
		}
	}
}
