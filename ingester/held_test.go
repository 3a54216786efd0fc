package ingester

import (
	"context"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

const testPush = 0x5eed

// pushReplicated pushes one fragment of spans spans for each trace, as the
// distributor sends a replicated push: pushID push, hold as given.
func pushReplicated(t *testing.T, ing *Ingester, push uint64, ids []byte, hold []bool, spans int) {
	t.Helper()
	req := &rubatopb.PushBytesRequest{PushID: push, Hold: hold}
	for _, id := range ids {
		tid := make([]byte, 16)
		tid[0] = id
		req.Ids = append(req.Ids, tid)
		req.Traces = append(req.Traces, fragmentBody(t, tid, spans))
		req.Spans = append(req.Spans, uint32(spans))
	}
	resp, err := ing.PushBytes(tenantCtx(), req)
	require.NoError(t, err)
	require.Empty(t, resp.ErrorsByTrace)
}

func heldReq(push uint64, ids ...byte) *rubatopb.HeldFragments {
	req := &rubatopb.HeldFragments{}
	for _, id := range ids {
		tid := make([]byte, 16)
		tid[0] = id
		req.Ids = append(req.Ids, tid)
		req.PushIDs = append(req.PushIDs, push)
	}
	return req
}

// flushAll cuts and uploads everything, then truncates the WAL.
func flushAll(t *testing.T, ing *Ingester) {
	t.Helper()
	ing.tick(context.Background(), true)
	ing.flushWG.Wait()
	ing.tick(context.Background(), false)
}

// TestHeldFragmentsKeptNotBuilt: a held fragment is found by ID and by
// search, is never built into a block, and keeps its WAL segment until it
// is released and then for complete_block_timeout, answering reads (a
// querier may not list the builder's block yet); a release of another push
// of the same trace, or of a pair the ingester does not hold, changes
// nothing.
func TestHeldFragmentsKeptNotBuilt(t *testing.T) {
	dir := t.TempDir()
	store := inmem.New()
	ing := newTestIngester(t, dir, store, overrides.Limits{})
	now := time.Now()
	ing.now = func() time.Time { return now }
	pushReplicated(t, ing, testPush, []byte{1, 2}, []bool{false, true}, 3)
	require.Equal(t, 3, find(t, ing, 1))
	require.Equal(t, 3, find(t, ing, 2), "a held fragment answers lookups")
	resp, err := ing.SearchRecent(tenantCtx(), &rubatopb.IngesterSearchRequest{Request: &rubatopb.SearchRequest{Query: "{}", Limit: 10}})
	require.NoError(t, err)
	require.Len(t, resp.Traces, 2, "and searches")

	flushAll(t, ing)
	require.Equal(t, 3, spansInBackend(t, store, 1), "the built trace is flushed")
	require.Zero(t, spansInBackend(t, store, 2), "the held one is not")
	require.Equal(t, 3, find(t, ing, 2))
	require.GreaterOrEqual(t, segments(t, dir), 2, "its WAL segment stays")

	r, err := ing.ReleaseHeld(tenantCtx(), heldReq(testPush+1, 2, 1))
	require.NoError(t, err)
	require.Zero(t, r.Matched, "another push, and a trace not held")
	flushAll(t, ing)
	require.GreaterOrEqual(t, segments(t, dir), 2)

	r, err = ing.ReleaseHeld(tenantCtx(), heldReq(testPush, 2))
	require.NoError(t, err)
	require.EqualValues(t, 1, r.Matched)
	r, err = ing.PromoteHeld(tenantCtx(), heldReq(testPush, 2))
	require.NoError(t, err)
	require.Zero(t, r.Matched, "a released fragment is never promoted")
	flushAll(t, ing)
	require.Equal(t, 3, find(t, ing, 2), "released, still readable")
	require.GreaterOrEqual(t, segments(t, dir), 2)

	now = now.Add(ing.cfg.CompleteBlockTimeout + time.Second)
	flushAll(t, ing)
	require.Zero(t, find(t, ing, 2), "complete_block_timeout after its release")
	require.Equal(t, 1, segments(t, dir), "the WAL drops it")
	require.Empty(t, ing.instances["t1"].held)
	require.Empty(t, ing.instances["t1"].heldSegs)
	require.Zero(t, spansInBackend(t, store, 2))
}

// TestHeldStateSurvivesRestart: held, released and promoted fragments
// come back from the WAL as they were.
func TestHeldStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	store := inmem.New()
	ing := newTestIngester(t, dir, store, overrides.Limits{})
	pushReplicated(t, ing, testPush, []byte{1, 2, 3}, []bool{true, true, true}, 2)
	_, err := ing.ReleaseHeld(tenantCtx(), heldReq(testPush, 1))
	require.NoError(t, err)
	_, err = ing.PromoteHeld(tenantCtx(), heldReq(testPush, 2))
	require.NoError(t, err)

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	ing = newTestIngester(t, dir, store, overrides.Limits{})
	require.Equal(t, 2, find(t, ing, 1), "released before the restart: readable for complete_block_timeout")
	require.Equal(t, 2, find(t, ing, 2))
	require.Equal(t, 2, find(t, ing, 3), "still held")
	inst := ing.instances["t1"]
	inst.mu.RLock()
	require.Equal(t, 1, inst.heldCount, "only trace 3 is held")
	inst.mu.RUnlock()
	flushAll(t, ing)
	require.Zero(t, spansInBackend(t, store, 1))
	require.Equal(t, 2, spansInBackend(t, store, 2), "promoted before the restart: built")
	require.Zero(t, spansInBackend(t, store, 3), "held: not built")
}

// TestPromotedFragmentIsBuilt: PromoteHeld makes the replica build the
// fragment, and the block it flushes lists the push for release.
func TestPromotedFragmentIsBuilt(t *testing.T) {
	store := &flakyBackend{Backend: inmem.New()}
	store.down.Store(true) // the block stays unflushed, its release list kept
	ing := newTestIngester(t, t.TempDir(), store, overrides.Limits{})
	pushReplicated(t, ing, testPush, []byte{7}, []bool{true}, 4)
	r, err := ing.PromoteHeld(tenantCtx(), heldReq(testPush, 7))
	require.NoError(t, err)
	require.EqualValues(t, 1, r.Matched)
	r, err = ing.PromoteHeld(tenantCtx(), heldReq(testPush, 7))
	require.NoError(t, err)
	require.Zero(t, r.Matched, "promoted once")
	require.Equal(t, 4, find(t, ing, 7))
	ing.tick(context.Background(), true)
	inst := ing.instances["t1"]
	inst.mu.RLock()
	require.Len(t, inst.complete, 1)
	require.Equal(t, []heldKey{{id: [16]byte{7}, push: testPush}}, inst.complete[0].released)
	inst.mu.RUnlock()
	ing.flushWG.Wait()
	store.down.Store(false)
	flushOnce(t, ing, false)
	require.Equal(t, 4, spansInBackend(t, store, 7))
	inst.mu.RLock()
	require.Nil(t, inst.complete[0].released, "released once flushed")
	inst.mu.RUnlock()
}

// TestHoldTimeoutBuildsUnreleased: a fragment no builder released within
// hold_timeout is built here: its builder may have lost its disk.
func TestHoldTimeoutBuildsUnreleased(t *testing.T) {
	store := inmem.New()
	ing := newTestIngester(t, t.TempDir(), store, overrides.Limits{}, func(c *Config) { c.HoldTimeout = time.Hour })
	now := time.Now()
	ing.now = func() time.Time { return now }
	pushReplicated(t, ing, testPush, []byte{5}, []bool{true}, 3)
	flushAll(t, ing)
	require.Zero(t, spansInBackend(t, store, 5), "within hold_timeout")
	now = now.Add(time.Hour + time.Second)
	flushAll(t, ing)
	require.Equal(t, 3, spansInBackend(t, store, 5), "past it")
	require.Equal(t, 3, find(t, ing, 5), "found once")
}

// TestHoldRequiresPushID: hold flags must match the traces and come with
// a pushID, or the push is refused as malformed.
func TestHoldRequiresPushID(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{})
	tid := make([]byte, 16)
	for _, req := range []*rubatopb.PushBytesRequest{
		{Ids: [][]byte{tid}, Traces: [][]byte{nil}, Spans: []uint32{0}, Hold: []bool{true}},
		{Ids: [][]byte{tid}, Traces: [][]byte{nil}, Spans: []uint32{0}, Hold: []bool{true, false}, PushID: 1},
	} {
		_, err := ing.PushBytes(tenantCtx(), req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	}
	_, err := ing.ReleaseHeld(tenantCtx(), &rubatopb.HeldFragments{Ids: [][]byte{tid}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = ing.PromoteHeld(tenantCtx(), &rubatopb.HeldFragments{Ids: [][]byte{{1}}, PushIDs: []uint64{1}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

// TestPromotedOlderPartKeepsItsSegment: a promoted held part may be older
// than the live parts of its trace; the block cut from them keeps every
// segment it was read from until its upload, across a crash.
func TestPromotedOlderPartKeepsItsSegment(t *testing.T) {
	dir := t.TempDir()
	store := &flakyBackend{Backend: inmem.New()}
	store.down.Store(true)
	ing := newTestIngester(t, dir, store, overrides.Limits{})
	pushReplicated(t, ing, testPush, []byte{9}, []bool{true}, 2)
	require.NoError(t, ing.wal.rotate())
	pushReplicated(t, ing, testPush+1, []byte{9}, []bool{false}, 3)
	_, err := ing.PromoteHeld(tenantCtx(), heldReq(testPush, 9))
	require.NoError(t, err)
	require.NoError(t, ing.wal.rotate())
	flushAll(t, ing) // cut; the upload fails; truncation runs
	require.Equal(t, 5, find(t, ing, 9))

	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
	ing = newTestIngester(t, dir, store, overrides.Limits{})
	require.Equal(t, 5, find(t, ing, 9), "after a crash before the upload")
	store.down.Store(false)
	flushAll(t, ing)
	require.Equal(t, 5, spansInBackend(t, store, 9))
}
