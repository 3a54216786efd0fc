package ingester

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/overrides"
)

// backendBlocks returns the tenant's blocks in the backend that have a
// meta.json, and the block directories that do not.
func backendBlocks(t *testing.T, store backend.Backend) (metas []*block.Meta, partial int) {
	t.Helper()
	ctx := context.Background()
	dirs, err := store.List(ctx, "t1/")
	require.NoError(t, err)
	for _, d := range dirs {
		id, err := uuid.Parse(strings.TrimSuffix(path.Base(d), "/"))
		require.NoError(t, err)
		data, err := backend.ReadAll(ctx, store, block.MetaKey("t1", id))
		if errors.Is(err, backend.ErrNotFound) {
			partial++
			continue
		}
		require.NoError(t, err)
		m, err := block.ParseMeta(data)
		require.NoError(t, err)
		metas = append(metas, m)
	}
	return metas, partial
}

// spansInBackend counts trace id's spans over every backend block: after
// everything is flushed, exactly the spans pushed, none twice.
func spansInBackend(t *testing.T, store backend.Backend, id byte) int {
	t.Helper()
	n := 0
	metas, _ := backendBlocks(t, store)
	tid := make([]byte, 16)
	tid[0] = id
	for _, m := range metas {
		td, err := block.Open(store, m, nil).FindTraceByID(context.Background(), tid)
		if errors.Is(err, backend.ErrNotFound) {
			continue
		}
		require.NoError(t, err)
		for _, rs := range td.GetResourceSpans() {
			for _, ss := range rs.ScopeSpans {
				n += len(ss.Spans)
			}
		}
	}
	return n
}

// TestCrashAfterUpload: the ingester stops after a block's upload but
// before the WAL truncation (as a crash there would). After restart the
// block is not built and uploaded again, its WAL is truncated, and every
// span is found exactly once, including spans pushed after the cut that
// share WAL segments and traces with the block.
func TestCrashAfterUpload(t *testing.T) {
	dir := t.TempDir()
	store := &gatedBackend{Backend: inmem.New(), gate: make(chan struct{})}
	ctx := context.Background()
	ing := newTestIngester(t, dir, store, overrides.Limits{})
	for i := byte(1); i <= 5; i++ {
		pushTrace(t, ing, i, 3)
	}
	// Cut and upload. The block's meta.json is held until the tick is
	// over, so this tick cannot see the upload finished and truncates
	// nothing.
	ing.tick(ctx, true)
	close(store.gate)
	ing.flushWG.Wait()
	metas, _ := backendBlocks(t, store)
	require.Len(t, metas, 1, "uploaded")
	pushTrace(t, ing, 1, 2) // more spans of a trace in the block: live
	pushTrace(t, ing, 6, 4) // a new trace: live
	// Crash: no tick after the upload, so the WAL still holds everything.
	require.NoError(t, services.StopAndAwaitTerminated(ctx, ing))
	require.GreaterOrEqual(t, segments(t, dir), 2)

	ing = newTestIngester(t, dir, store, overrides.Limits{})
	require.Equal(t, 2, find(t, ing, 1), "only the spans pushed after the cut are replayed")
	require.Equal(t, 0, find(t, ing, 2), "in the backend, not replayed")
	require.Equal(t, 4, find(t, ing, 6))
	ing.tick(ctx, true)
	ing.flushWG.Wait()
	ing.tick(ctx, false)
	metas, partial := backendBlocks(t, store)
	require.Len(t, metas, 2, "the first block once, and one for the spans pushed after it")
	require.Zero(t, partial)
	want := map[byte]int{1: 5, 2: 3, 3: 3, 4: 3, 5: 3, 6: 4}
	for id, n := range want {
		require.Equal(t, n, spansInBackend(t, store, id), "trace %d", id)
	}
	require.Equal(t, 1, segments(t, dir), "wal truncated")
	marks, err := os.ReadDir(filepath.Join(dir, "flushed"))
	require.NoError(t, err)
	require.Empty(t, marks, "marks deleted with their segments")
}

// gatedBackend holds every Put of a meta.json until gate is closed.
type gatedBackend struct {
	backend.Backend
	gate chan struct{}
}

func (b *gatedBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if path.Base(key) == block.MetaName {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.Backend.Put(ctx, key, r, size)
}

// metaFailBackend fails every Put of a meta.json while failMeta is set, so
// an upload leaves data and blooms but no block.
type metaFailBackend struct {
	backend.Backend
	failMeta atomic.Bool
}

func (b *metaFailBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if b.failMeta.Load() && path.Base(key) == block.MetaName {
		return errors.New("injected: meta.json upload failed")
	}
	return b.Backend.Put(ctx, key, r, size)
}

// TestCrashDuringUpload: an upload that stopped before meta.json is not
// trusted after a restart: the data is replayed and uploaded as a new block.
func TestCrashDuringUpload(t *testing.T) {
	dir := t.TempDir()
	store := &metaFailBackend{Backend: inmem.New()}
	store.failMeta.Store(true)
	ctx := context.Background()
	ing := newTestIngester(t, dir, store, overrides.Limits{})
	for i := byte(1); i <= 4; i++ {
		pushTrace(t, ing, i, 2)
	}
	ing.tick(ctx, true)
	ing.flushWG.Wait()
	metas, partial := backendBlocks(t, store)
	require.Empty(t, metas)
	require.Equal(t, 1, partial, "data without meta.json")
	require.NoError(t, services.StopAndAwaitTerminated(ctx, ing))

	store.failMeta.Store(false)
	ing = newTestIngester(t, dir, store, overrides.Limits{})
	for i := byte(1); i <= 4; i++ {
		require.Equal(t, 2, find(t, ing, i), "replayed")
	}
	ing.tick(ctx, true)
	ing.flushWG.Wait()
	ing.tick(ctx, false)
	metas, partial = backendBlocks(t, store)
	require.Len(t, metas, 1)
	require.Equal(t, 1, partial, "the old partial block is the compactor janitor's")
	for i := byte(1); i <= 4; i++ {
		require.Equal(t, 2, spansInBackend(t, store, i), "trace %d", i)
	}
	require.Equal(t, 1, segments(t, dir))
}

// TestFlushMarkEncoding: marks round-trip, and any damage is refused
// rather than skipping the wrong fragments.
func TestFlushMarkEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	m := &flushMark{tenant: "t-1", id: uuid.New()}
	seg, off := uint64(3), int64(0)
	for range 500 {
		if rng.IntN(10) == 0 {
			seg += uint64(1 + rng.IntN(3))
			off = 0
		}
		off += int64(1 + rng.IntN(5000))
		m.parts = append(m.parts, part{seg: seg, off: off, n: uint32(rng.IntN(1 << 20))})
	}
	b := m.marshal()
	got, err := parseFlushMark(b)
	require.NoError(t, err)
	require.Equal(t, m, got)
	for i := range b {
		bad := append([]byte(nil), b...)
		bad[i] ^= 1 << (i % 8)
		_, err := parseFlushMark(bad)
		require.Error(t, err, "flipped byte %d", i)
	}
	for n := range len(b) {
		_, err := parseFlushMark(b[:n])
		require.Error(t, err, "truncated to %d", n)
	}
}

func FuzzParseFlushMark(f *testing.F) {
	f.Add((&flushMark{tenant: "t", id: uuid.New(), parts: []part{{1, 10, 5}, {1, 20, 3}, {4, 8, 1}}}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseFlushMark(b)
		if err != nil {
			return
		}
		again, err := parseFlushMark(m.marshal())
		require.NoError(t, err)
		require.Equal(t, m, again)
	})
}

// flushOnce runs one tick that schedules due uploads and waits for them.
func flushOnce(t *testing.T, ing *Ingester, immediate bool) {
	t.Helper()
	time.Sleep(5 * time.Millisecond) // past the retry backoff (1ms in tests)
	ing.tick(context.Background(), immediate)
	ing.flushWG.Wait()
}

// TestRetryUploadsUnderNewID: each retry writes a new block directory and
// first deletes the previous attempt's objects, so no attempt ever writes
// where the compactor's janitor may be deleting; a crash after a retried
// upload still finds the block, under its retry ID.
func TestRetryUploadsUnderNewID(t *testing.T) {
	dir := t.TempDir()
	store := &metaFailBackend{Backend: inmem.New()}
	store.failMeta.Store(true)
	ctx := context.Background()
	ing := newTestIngester(t, dir, store, overrides.Limits{})
	for i := byte(1); i <= 3; i++ {
		pushTrace(t, ing, i, 2)
	}
	flushOnce(t, ing, true)
	dirs := func() []string {
		d, err := store.List(ctx, "t1/")
		require.NoError(t, err)
		return d
	}
	first := dirs()
	require.Len(t, first, 1, "attempt 0 left a partial block")
	flushOnce(t, ing, false)
	second := dirs()
	require.Len(t, second, 1, "attempt 1 deleted attempt 0's objects")
	require.NotEqual(t, first, second, "attempt 1 wrote a new directory")

	store.failMeta.Store(false)
	flushOnce(t, ing, false)
	metas, partial := backendBlocks(t, store)
	require.Len(t, metas, 1)
	require.Zero(t, partial)
	local := ing.instanceList()[0].complete[0].meta.BlockID
	require.Equal(t, uploadID(local, 2), metas[0].BlockID)
	for i := byte(1); i <= 3; i++ {
		require.Equal(t, 2, spansInBackend(t, store, i))
	}

	// Crash before the WAL truncation: the block is found under its retry ID.
	require.NoError(t, services.StopAndAwaitTerminated(ctx, ing))
	ing = newTestIngester(t, dir, store, overrides.Limits{})
	require.Equal(t, 0, find(t, ing, 1), "not replayed")
	flushOnce(t, ing, true)
	ing.tick(ctx, false)
	metas, _ = backendBlocks(t, store)
	require.Len(t, metas, 1, "not uploaded again")
	require.Equal(t, 1, segments(t, dir))
}

// lostAnswerBackend stores the first meta.json but answers with an error,
// as when the response of a successful upload is lost.
type lostAnswerBackend struct {
	backend.Backend
	lost atomic.Bool
}

func (b *lostAnswerBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	err := b.Backend.Put(ctx, key, r, size)
	if err == nil && path.Base(key) == block.MetaName && b.lost.CompareAndSwap(false, true) {
		return errors.New("injected: answer lost")
	}
	return err
}

// TestRetryFindsLostUpload: a retry whose previous attempt did complete
// takes it as the flush instead of uploading a second copy.
func TestRetryFindsLostUpload(t *testing.T) {
	dir := t.TempDir()
	store := &lostAnswerBackend{Backend: inmem.New()}
	ing := newTestIngester(t, dir, store, overrides.Limits{})
	pushTrace(t, ing, 1, 2)
	flushOnce(t, ing, true)
	flushOnce(t, ing, false)
	ing.tick(context.Background(), false)
	metas, partial := backendBlocks(t, store)
	require.Len(t, metas, 1)
	require.Zero(t, partial)
	require.Equal(t, ing.instanceList()[0].complete[0].meta.BlockID, metas[0].BlockID, "the first upload is the flush")
	require.Equal(t, 1, segments(t, dir), "flushed, wal truncated")
}

// BenchmarkFlushMark encodes and decodes the mark of a block of one million
// WAL fragments (a large block), reporting the file size per fragment.
func BenchmarkFlushMark(b *testing.B) {
	m := &flushMark{tenant: "t", id: uuid.New()}
	seg, off := uint64(1), int64(0)
	for i := range 1_000_000 {
		if i%20_000 == 0 {
			seg++
			off = 0
		}
		off += 700
		m.parts = append(m.parts, part{seg: seg, off: off, n: 650})
	}
	b.ReportAllocs()
	var size int
	for b.Loop() {
		data := m.marshal()
		size = len(data)
		if _, err := parseFlushMark(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)/float64(len(m.parts)), "bytes/fragment")
}
