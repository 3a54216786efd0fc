package ingester

import (
	"context"
	mrand "math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
)

func searchIDs(t *testing.T, ing *Ingester, q string) map[string]uint32 {
	t.Helper()
	resp, err := ing.SearchRecent(tenantCtx(), &rubatopb.IngesterSearchRequest{Request: &rubatopb.SearchRequest{Query: q}})
	require.NoError(t, err)
	out := map[string]uint32{}
	for _, tr := range resp.Traces {
		_, dup := out[tr.TraceID]
		require.False(t, dup, "trace %s listed twice", tr.TraceID)
		out[tr.TraceID] = tr.SpanSets[0].Matched
	}
	return out
}

// TestSearchEveryStage: a trace is found by search when live, in a complete
// block, flushed, with a new live part after its block was cut (found once,
// spans of both parts), and after a restart.
func TestSearchEveryStage(t *testing.T) {
	dir := t.TempDir()
	store := inmem.New()
	ing := newTestIngester(t, dir, store, overrides.Limits{})
	for i := byte(1); i <= 5; i++ {
		pushTrace(t, ing, i, 2)
	}
	const q = `{ span.k = "v" }`
	require.Len(t, searchIDs(t, ing, q), 5, "live")
	require.Empty(t, searchIDs(t, ing, `{ span.k = "nope" }`))

	ing.tick(context.Background(), true) // cut everything and flush
	ing.flushWG.Wait()
	ing.tick(context.Background(), false)
	require.Len(t, searchIDs(t, ing, q), 5, "complete block")

	pushTrace(t, ing, 1, 3) // a new part of trace 1, live
	got := searchIDs(t, ing, q)
	require.Len(t, got, 5)
	require.Equal(t, uint32(5), got["1000000000000000000000000000000"], "spans of the block part and the live part")

	resp, err := ing.SearchTagValues(tenantCtx(), &rubatopb.SearchTagValuesRequest{TagName: "span.k"})
	require.NoError(t, err)
	require.Equal(t, []*rubatopb.TagValue{{Type: "string", Value: "v"}}, resp.TagValues)
	tags, err := ing.SearchTags(tenantCtx(), &rubatopb.SearchTagsRequest{Scope: "span"})
	require.NoError(t, err)
	require.Len(t, tags.Scopes, 1)
	require.Equal(t, []string{"k"}, tags.Scopes[0].Tags)

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	ing = newTestIngester(t, dir, store, overrides.Limits{})
	require.Len(t, searchIDs(t, ing, q), 1, "after restart: only the WAL part not yet flushed is in the ingester")
}

// TestSearchNoBlindWindow: while traces move live → head → cutting →
// complete → flushed and the WAL is truncated, every search sees every
// trace exactly once (and every tag value), and never fails reading a
// truncated segment.
func TestSearchNoBlindWindow(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	const n = 20
	for i := byte(1); i <= n; i++ {
		pushTrace(t, ing, i, 2)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Bounded: every pass cuts a block and every search reads them
		// all, so an unbounded loop makes the searches slower and slower
		// (under -race it ran past the test timeout).
		for k := 0; !stop.Load() && k < 60; k++ {
			// Re-push so there is always something live to move.
			pushTrace(t, ing, byte(1+k%n), 1)
			ing.tick(context.Background(), true)
			ing.flushWG.Wait()
		}
	}()
	for range 60 {
		got := searchIDs(t, ing, `{ span.k = "v" }`)
		require.Len(t, got, n)
		// Tag values too, through the tag-value cache as segments go.
		vals, err := ing.SearchTagValues(tenantCtx(), &rubatopb.SearchTagValuesRequest{TagName: "span.k"})
		require.NoError(t, err)
		require.Equal(t, []*rubatopb.TagValue{{Type: "string", Value: "v"}}, vals.TagValues)
	}
	stop.Store(true)
	wg.Wait()
}

func TestSearchBadRequests(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	pushTrace(t, ing, 1, 1)
	_, err := ing.SearchRecent(tenantCtx(), &rubatopb.IngesterSearchRequest{Request: &rubatopb.SearchRequest{Query: `{ span.k = `}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	_, err = ing.SearchTagValues(tenantCtx(), &rubatopb.SearchTagValuesRequest{TagName: "span:nope"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	_, err = ing.SearchTags(tenantCtx(), &rubatopb.SearchTagsRequest{Scope: "bogus"})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	_, err = ing.SearchRecent(context.Background(), &rubatopb.IngesterSearchRequest{Request: &rubatopb.SearchRequest{}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "no tenant: %v", err)
}

// TestSearchSnapshotPinsWAL: a search's snapshot stays readable while its
// traces are cut, flushed and their WAL segments would be truncated.
func TestSearchSnapshotPinsWAL(t *testing.T) {
	dir := t.TempDir()
	ing := newTestIngester(t, dir, inmem.New(), overrides.Limits{})
	for i := byte(1); i <= 3; i++ {
		pushTrace(t, ing, i, 2)
	}
	inst := ing.instanceList()[0]
	snap, release := inst.snapshot()
	ing.tick(context.Background(), true)
	ing.flushWG.Wait()
	ing.tick(context.Background(), false) // truncation: the snapshot's segment is pinned
	require.GreaterOrEqual(t, segments(t, dir), 2, "pinned segment kept")
	var st search.Stats
	n := 0
	require.NoError(t, ing.eachWALTrace(context.Background(), snap, 0, 0, &st, func([16]byte, *tracev1.TracesData) bool { n++; return true }))
	require.Equal(t, 3, n)
	release()
	ing.tick(context.Background(), false)
	require.Equal(t, 1, segments(t, dir), "released: truncated")
}

// TestRetriedPushCountedOnce: a write the distributor retried (its first
// attempt reached this ingester but not a quorum) appends the same spans
// twice. Search counts and lists each span once, live and after the cut
// to a complete block, as trace-by-ID does.
func TestRetriedPushCountedOnce(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	tid := make([]byte, 16)
	tid[0] = 7
	ss := &tracev1.ScopeSpans{}
	for i := range 4 {
		ss.Spans = append(ss.Spans, &tracev1.Span{TraceId: tid, SpanId: []byte{7, 0, 0, 0, 0, 0, 0, byte(i + 1)}, Name: "op",
			StartTimeUnixNano: 1e18, EndTimeUnixNano: 1e18 + 1,
			Attributes: []*commonv1.KeyValue{{Key: "k", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "v"}}}}})
	}
	res := &resourcev1.Resource{Attributes: []*commonv1.KeyValue{{Key: "service.name", Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: "svc"}}}}}
	raw, err := proto.Marshal(&tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{Resource: res, ScopeSpans: []*tracev1.ScopeSpans{ss}}}})
	require.NoError(t, err)
	for range 2 {
		_, err := ing.PushBytes(tenantCtx(), &rubatopb.PushBytesRequest{Ids: [][]byte{tid}, Traces: [][]byte{raw}, Spans: []uint32{4}})
		require.NoError(t, err)
	}
	check := func(stage string) {
		t.Helper()
		resp, err := ing.SearchRecent(tenantCtx(), &rubatopb.IngesterSearchRequest{Request: &rubatopb.SearchRequest{Query: `{ span.k = "v" }`}})
		require.NoError(t, err)
		require.Len(t, resp.Traces, 1, stage)
		tr := resp.Traces[0]
		require.Equal(t, uint32(4), tr.SpanSets[0].Matched, stage)
		require.Len(t, tr.SpanSets[0].Spans, 4, stage)
		seen := map[string]bool{}
		for _, sp := range tr.SpanSets[0].Spans {
			require.False(t, seen[sp.SpanID], "%s: span %s listed twice", stage, sp.SpanID)
			seen[sp.SpanID] = true
		}
		require.Equal(t, uint32(4), tr.ServiceStats["svc"].GetSpanCount(), stage)
		require.Equal(t, 4, find(t, ing, 7), stage)
	}
	check("live")
	ing.tick(context.Background(), true) // cut and flush
	ing.flushWG.Wait()
	check("complete block")
}

// TestTagCallsReadBlockTagIndex: tag names and values of traces cut into a
// local complete block come from the block's tag index, and are the same
// as those of the traces still in the WAL.
func TestTagCallsReadBlockTagIndex(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	pushTrace(t, ing, 1, 2) // span attribute k = "v"
	ask := func() (values []string, names []string) {
		v, err := ing.SearchTagValues(tenantCtx(), &rubatopb.SearchTagValuesRequest{TagName: "span.k"})
		require.NoError(t, err)
		for _, tv := range v.TagValues {
			values = append(values, tv.Type+"="+tv.Value)
		}
		n, err := ing.SearchTags(tenantCtx(), &rubatopb.SearchTagsRequest{Scope: "span"})
		require.NoError(t, err)
		for _, sc := range n.Scopes {
			names = append(names, sc.Tags...)
		}
		return values, names
	}
	walValues, walNames := ask()
	require.Equal(t, []string{"string=v"}, walValues)
	require.Contains(t, walNames, "k")

	ing.tick(context.Background(), true) // into a local complete block
	ing.flushWG.Wait()
	inst := ing.instances["t1"]
	inst.mu.RLock()
	require.Empty(t, inst.live)
	require.Len(t, inst.complete, 1)
	inst.mu.RUnlock()
	blockValues, blockNames := ask()
	require.Equal(t, walValues, blockValues)
	require.Equal(t, walNames, blockNames)
}

// TestSearchSkipsBlocksSearchedInBackend: a local complete block whose ID
// the caller lists in skipBlocks is left out (the querier reads it in the
// backend), the others and the WAL are still searched, and a malformed ID
// is InvalidArgument.
func TestSearchSkipsBlocksSearchedInBackend(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	pushTrace(t, ing, 1, 2)
	ing.tick(context.Background(), true) // into a local complete block, flushed
	ing.flushWG.Wait()
	pushTrace(t, ing, 2, 2) // live
	inst := ing.instances["t1"]
	inst.mu.RLock()
	require.Len(t, inst.complete, 1)
	blockID := inst.complete[0].meta.BlockID
	inst.mu.RUnlock()

	search := func(skip ...[]byte) []string {
		resp, err := ing.SearchRecent(tenantCtx(), &rubatopb.IngesterSearchRequest{
			Request: &rubatopb.SearchRequest{Query: `{ span.k = "v" }`}, SkipBlocks: skip})
		require.NoError(t, err)
		var ids []string
		for _, tr := range resp.Traces {
			ids = append(ids, tr.TraceID)
		}
		return ids
	}
	require.ElementsMatch(t, []string{"1000000000000000000000000000000", "2000000000000000000000000000000"}, search())
	other := uuid.New()
	require.ElementsMatch(t, []string{"1000000000000000000000000000000", "2000000000000000000000000000000"}, search(other[:]))
	require.Equal(t, []string{"2000000000000000000000000000000"}, search(blockID[:]))

	_, err := ing.SearchRecent(tenantCtx(), &rubatopb.IngesterSearchRequest{
		Request: &rubatopb.SearchRequest{Query: `{}`}, SkipBlocks: [][]byte{{1, 2}}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	_, err = ing.SearchRecent(tenantCtx(), &rubatopb.IngesterSearchRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
}

// TestSnapshotJoinsStages: a trace with parts in several stages (live,
// head, a block being cut, held fragments) is one trace of the snapshot
// with all its parts; a trace only held is one too; a trace with no part
// indexed yet is left out; minSeg covers every part.
func TestSnapshotJoinsStages(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	inst := ing.getOrCreateInstance("t1")
	p := func(seg uint64, off int64) part { return part{seg: seg, off: off, n: 10} }
	a, b, c, d := [16]byte{1}, [16]byte{2}, [16]byte{3}, [16]byte{4}
	inst.mu.Lock()
	inst.live[a] = &liveTrace{parts: []part{p(5, 0)}}
	inst.head.traces[a] = &liveTrace{parts: []part{p(4, 0)}}
	inst.head.traces[b] = &liveTrace{parts: []part{p(4, 10)}}
	cut := newHeadBlock(time.Now())
	cut.traces[a] = &liveTrace{parts: []part{p(3, 0)}}
	cut.traces[b] = &liveTrace{parts: []part{p(3, 10)}}
	cut.traces[c] = &liveTrace{parts: []part{p(3, 20)}}
	inst.cutting = append(inst.cutting, cut)
	inst.held[a] = []heldFrag{{part: p(2, 0)}}
	inst.held[d] = []heldFrag{{part: p(6, 0)}, {part: p(6, 10)}}
	inst.live[[16]byte{5}] = &liveTrace{inflight: 1} // first push not indexed yet: left out
	e := [16]byte{6}
	inst.live[e] = &liveTrace{parts: append(make([]part, 0, 4), p(8, 0))} // room to append in place
	for _, m := range []map[[16]byte]*liveTrace{inst.live, inst.head.traces, cut.traces} {
		for _, tr := range m {
			for _, q := range tr.parts {
				inst.segParts[q.seg]++
			}
		}
	}
	inst.heldSegs[2], inst.heldSegs[6] = &heldSeg{}, &heldSeg{}
	inst.mu.Unlock()

	snap, release := inst.snapshot()
	release()
	got := map[[16]byte][]part{}
	for _, tr := range snap.traces {
		_, dup := got[tr.id]
		require.False(t, dup, "trace %x twice", tr.id)
		got[tr.id] = tr.parts
	}
	require.ElementsMatch(t, []part{p(5, 0), p(4, 0), p(3, 0), p(2, 0)}, got[a])
	require.ElementsMatch(t, []part{p(4, 10), p(3, 10)}, got[b])
	require.ElementsMatch(t, []part{p(3, 20)}, got[c])
	require.ElementsMatch(t, []part{p(6, 0), p(6, 10)}, got[d])
	require.Equal(t, []part{p(8, 0)}, got[e])
	require.Len(t, got, 5)
	require.Equal(t, uint64(2), snap.minSeg)

	// The parts are shared with the instance's traces, capped at their
	// length: a push appending to a trace after the snapshot changes
	// nothing the snapshot holds.
	inst.mu.Lock()
	inst.addPartLocked(e, p(8, 10), 0, 1, 0)
	inst.mu.Unlock()
	require.Equal(t, []part{p(8, 0)}, got[e])
	require.Equal(t, 1, cap(got[e]), "capped: appending through the snapshot cannot reach the trace's array")

	inst.mu.Lock() // none of these is in the WAL: leave no trace of them
	clear(inst.live)
	clear(inst.head.traces)
	inst.cutting = nil
	clear(inst.held)
	clear(inst.segParts)
	clear(inst.heldSegs)
	inst.mu.Unlock()
}

// TestJoinStagesRandom: over random stages, where IDs repeat across
// stages, joinStages gives each ID once with its parts in stage order,
// as joining through one map of every ID would.
func TestJoinStagesRandom(t *testing.T) {
	r := mrand.New(mrand.NewSource(7))
	for round := 0; round < 300; round++ {
		stages := make([][]walTrace, 1+r.Intn(5))
		want := map[[16]byte][]part{}
		off := int64(0)
		for k := range stages {
			seen := map[[16]byte]bool{} // an ID once per stage, as in a map
			for range r.Intn(12) {
				id := [16]byte{byte(r.Intn(10))}
				if seen[id] {
					continue
				}
				seen[id] = true
				var parts []part
				for range 1 + r.Intn(3) {
					off++
					parts = append(parts, part{seg: uint64(k), off: off, n: 1})
				}
				stages[k] = append(stages[k], walTrace{id: id, parts: parts})
				want[id] = append(want[id], parts...)
			}
		}
		got := joinStages(stages)
		require.Len(t, got, len(want), "round %d", round)
		for _, tr := range got {
			require.Equal(t, want[tr.id], tr.parts, "round %d, trace %x", round, tr.id)
		}
	}
}
