package block

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TestSearchSameSpan compares SameSpan searches (every predicate on one
// span) with a brute force over random traces: no match may be missed, and
// the span-level check must prune traces whose predicates hold only on
// different spans (v2 as written, v1 scanned, and v2 copied from rows).
func TestSearchSameSpan(t *testing.T) {
	be := testBackends(t)["inmem"]
	cfg := searchTestConfig(t)
	v2 := writeSearchBlock(t, be, cfg, 11, 250)
	v1 := toV1(t, be, writeSearchBlock(t, be, cfg, 11, 250))
	copied := copyBlock(t, be, cfg, v1)
	for variant, b := range map[string]*searchBlock{"v2": v2, "v1": v1, "compacted": copied} {
		t.Run(variant, func(t *testing.T) {
			rng := seededRand(t, 5)
			var matched, traceLevel, candidates, loose int
			for q := 0; q < 120; q++ {
				req := SearchRequest{All: true, SameSpan: true}
				for range 2 + rng.IntN(2) {
					p := genPredicate(rng)
					for p.Scope == PredTraceIntrinsic && rng.IntN(3) > 0 {
						p = genPredicate(rng)
					}
					if p.Op == PredNe || p.Op == PredNotRegex || p.Op == PredExists {
						p.Op = PredEq // selective operators show the pruning
					}
					req.Predicates = append(req.Predicates, p)
				}
				got, _ := searchIDs(t, b.r, req)
				lreq := req
				lreq.SameSpan = false
				lgot, _ := searchIDs(t, b.r, lreq)
				loose += len(lgot)
				for i, id := range b.ids {
					if bfMatch(lreq, b.traces[i]) {
						traceLevel++
					}
					if !bfMatch(req, b.traces[i]) {
						continue
					}
					matched++
					if _, ok := got[[16]byte(id)]; !ok {
						t.Fatalf("query %d %s: trace %x matches on one span but is not a candidate", q, predString(req.Predicates), id)
					}
				}
				candidates += len(got)
			}
			// Attributes holding bytes or no value may match anything, so
			// candidates stay well above the matches either way.
			t.Logf("%d same-span matches, %d trace-level matches; candidates: %d same-span, %d trace-level", matched, traceLevel, candidates, loose)
			require.Greater(t, traceLevel, matched+matched/5, "the queries must tell spans apart")
			require.Less(t, candidates, loose-loose/10, "the span-level check must prune")
		})
	}
}

// TestSearchSameSpanResource pins the case the check is for: a resource
// condition and a span condition that hold in different ResourceSpans of
// one trace do not make it a candidate; in the same one they do.
func TestSearchSameSpanResource(t *testing.T) {
	be := testBackends(t)["inmem"]
	cfg := searchTestConfig(t)
	rs := func(svc string, code int64) *tracev1.ResourceSpans {
		return &tracev1.ResourceSpans{
			Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{strKV("service.name", svc)}},
			ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{Name: "s", SpanId: []byte{1, 2, 3, 4, 5, 6, 7, byte(code)},
				StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + 1,
				Attributes: []*commonv1.KeyValue{intKV("http.response.status_code", code), intKV("n", code)}}}}},
		}
	}
	apart := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{rs("payments", 200), rs("cart", 503)}}
	together := &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{rs("cart", 200), rs("payments", 503)}}
	w, err := NewWriter(t.Context(), be, cfg, testTenant, uuid.New(), 0, 2, t.TempDir())
	require.NoError(t, err)
	require.NoError(t, w.Add(make([]byte, 16), apart))
	require.NoError(t, w.Add(append(make([]byte, 15), 1), together))
	m, err := w.Close(t.Context())
	require.NoError(t, err)
	r := Open(be, m, NewCache(1<<20))
	for _, key := range []string{"http.response.status_code", "n"} { // dedicated and generic
		req := SearchRequest{All: true, SameSpan: true, Predicates: []Predicate{
			strPred(PredResource, "service.name", "payments"),
			{Scope: PredSpan, Key: key, Op: PredEq, Value: PredValue{Type: ValInt, Int: 503}},
		}}
		got, _ := searchIDs(t, r, req)
		require.Len(t, got, 1, key)
		require.Contains(t, got, [16]byte(append(make([]byte, 15), 1)), key)
		req.SameSpan = false
		got, _ = searchIDs(t, r, req)
		require.Len(t, got, 2, key)
	}
}

// TestSearchFieldsKeepWhatIsRead: with SearchFields, every candidate still
// holds what the caller said it reads, as the whole trace has it: the
// first value of each key read (per span and resource, as TraceQL looks
// it up), span IDs, names, times and statuses, and links; on v2, v1 and
// compacted blocks, whose indexes say different things.
func TestSearchFieldsKeepWhatIsRead(t *testing.T) {
	be := testBackends(t)["inmem"]
	cfg := searchTestConfig(t)
	v2 := writeSearchBlock(t, be, cfg, 13, 150)
	v1 := toV1(t, be, writeSearchBlock(t, be, cfg, 13, 150))
	copied := copyBlock(t, be, cfg, v1)
	first := func(kvs []*commonv1.KeyValue, k string) string {
		for _, kv := range kvs {
			if kv.Key == k {
				return kv.GetValue().String()
			}
		}
		return "<none>"
	}
	for variant, b := range map[string]*searchBlock{"v2": v2, "v1": v1, "compacted": copied} {
		for _, f := range []*SearchFields{
			{ResourceKeys: []string{"service.name"}, SpanKeys: []string{"http.method"}},
			{SpanKeys: []string{"http.status_code", "url.full"}},
			{ResourceKeys: []string{"a"}, SpanKeys: []string{"a"}, ScopeAttrs: true, Events: true},
		} {
			full := map[[16]byte]*tracev1.TracesData{}
			for i, id := range b.ids {
				full[[16]byte(id)] = b.traces[i]
			}
			got, _ := searchIDs(t, b.r, SearchRequest{Fields: f})
			require.Len(t, got, len(b.ids), variant)
			for id, td := range got {
				// Compared span by span: the parts of a multi-row trace may
				// join into fewer ResourceSpans and ScopeSpans when their
				// headers differ only in what was left out.
				w, g := flatSpans(full[id]), flatSpans(td)
				require.Len(t, g, len(w), variant)
				for k := range g {
					ws, gs := w[k], g[k]
					require.True(t, bytes.Equal(ws.sp.SpanId, gs.sp.SpanId))
					require.True(t, bytes.Equal(ws.sp.ParentSpanId, gs.sp.ParentSpanId))
					require.Equal(t, ws.sp.Name, gs.sp.Name)
					require.Equal(t, ws.sp.StartTimeUnixNano, gs.sp.StartTimeUnixNano)
					require.Equal(t, ws.sp.EndTimeUnixNano, gs.sp.EndTimeUnixNano)
					require.Equal(t, ws.sp.GetStatus().GetCode(), gs.sp.GetStatus().GetCode())
					require.Equal(t, ws.ss.GetScope().GetName(), gs.ss.GetScope().GetName())
					require.Equal(t, ws.ss.GetScope().GetVersion(), gs.ss.GetScope().GetVersion())
					if f.ScopeAttrs {
						requireProtoEqual(t, ws.ss.GetScope(), gs.ss.GetScope())
					}
					require.Len(t, gs.sp.Links, len(ws.sp.Links))
					for l := range gs.sp.Links {
						requireProtoEqual(t, ws.sp.Links[l], gs.sp.Links[l])
					}
					if f.Events {
						require.Len(t, gs.sp.Events, len(ws.sp.Events))
					}
					for _, key := range f.SpanKeys {
						require.Equal(t, first(ws.sp.Attributes, key), first(gs.sp.Attributes, key), "%s: span %s", variant, key)
					}
					for _, key := range append(f.ResourceKeys, "service.name") {
						require.Equal(t, first(ws.rs.GetResource().GetAttributes(), key), first(gs.rs.GetResource().GetAttributes(), key), "%s: resource %s", variant, key)
					}
					// What is left out is absent, never read wrong: every
					// attribute decoded is one of the original's.
					has := func(kvs []*commonv1.KeyValue, kv *commonv1.KeyValue) bool {
						return slices.ContainsFunc(kvs, func(o *commonv1.KeyValue) bool { return proto.Equal(o, kv) })
					}
					for _, kv := range gs.sp.Attributes {
						require.True(t, has(ws.sp.Attributes, kv), "%s: span attribute %v", variant, kv)
					}
					for _, kv := range gs.rs.GetResource().GetAttributes() {
						require.True(t, has(ws.rs.GetResource().GetAttributes(), kv), "%s: resource attribute %v", variant, kv)
					}
				}
			}
		}
	}
}

type flatSpan struct {
	rs *tracev1.ResourceSpans
	ss *tracev1.ScopeSpans
	sp *tracev1.Span
}

func flatSpans(td *tracev1.TracesData) []flatSpan {
	var out []flatSpan
	for _, rs := range td.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				out = append(out, flatSpan{rs, ss, sp})
			}
		}
	}
	return out
}

// TestSearchProjectionLeavesOutUnreadDedicated: on a block whose dedicated
// keys are only ever stored in their columns (realistic traffic), a search
// that reads service.name and http.method leaves the other dedicated
// columns out: their attributes are absent from the candidates, never read
// wrong, and the keys read are exact.
func TestSearchProjectionLeavesOutUnreadDedicated(t *testing.T) {
	be := testBackends(t)["inmem"]
	cfg := searchTestConfig(t)
	rng := seededRand(t, 21)
	ids := genTraceIDs(rng, 200)
	ctx := context.Background()
	w, err := NewWriter(ctx, be, cfg, testTenant, uuid.New(), 0, len(ids), t.TempDir())
	require.NoError(t, err)
	want := map[[16]byte]*tracev1.TracesData{}
	for _, id := range ids {
		td := genTrafficTrace(rng, id, 1e18)
		want[[16]byte(id)] = td
		require.NoError(t, w.Add(id, td))
	}
	meta, err := w.Close(ctx)
	require.NoError(t, err)
	r := Open(be, meta, NewCache(64<<20))
	f := &SearchFields{ResourceKeys: []string{"service.name"}, SpanKeys: []string{"http.method"}}
	got, _ := searchIDs(t, r, SearchRequest{Fields: f})
	require.Len(t, got, len(ids))
	first := func(kvs []*commonv1.KeyValue, k string) *commonv1.AnyValue {
		for _, kv := range kvs {
			if kv.Key == k {
				return kv.Value
			}
		}
		return nil
	}
	var leftOut, kept int
	for id, td := range got {
		w, g := flatSpans(want[id]), flatSpans(td)
		require.Len(t, g, len(w))
		for k := range g {
			ws, gs := w[k], g[k]
			require.True(t, proto.Equal(first(ws.sp.Attributes, "http.method"), first(gs.sp.Attributes, "http.method")))
			require.True(t, proto.Equal(first(ws.rs.Resource.Attributes, "service.name"), first(gs.rs.Resource.Attributes, "service.name")))
			for _, kv := range gs.sp.Attributes {
				require.True(t, proto.Equal(first(ws.sp.Attributes, kv.Key), kv.Value), "span attribute %v", kv)
			}
			for _, kv := range gs.rs.Resource.Attributes {
				require.True(t, proto.Equal(first(ws.rs.Resource.Attributes, kv.Key), kv.Value), "resource attribute %v", kv)
			}
			if first(ws.sp.Attributes, "http.method") != nil {
				kept++
			}
			if first(ws.sp.Attributes, "http.url") != nil || first(ws.sp.Attributes, "http.status_code") != nil {
				require.Nil(t, first(gs.sp.Attributes, "http.url"))
				require.Nil(t, first(gs.sp.Attributes, "http.status_code"))
				leftOut++
			}
			require.Nil(t, first(gs.rs.Resource.Attributes, "k8s.pod.name"))
		}
	}
	require.Positive(t, kept, "the traffic has http.method")
	require.Positive(t, leftOut, "the traffic has unread dedicated span attributes")
}
