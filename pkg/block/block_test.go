package block

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

const testTenant = "tenant-1"

func testConfig(tb testing.TB) Config {
	tb.Helper()
	var cfg Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("test", flag.PanicOnError))
	require.NoError(tb, cfg.Validate())
	return cfg
}

type testBlock struct {
	be     *memBackend
	meta   *Meta
	ids    [][]byte
	traces []*tracev1.TracesData
}

// writeTestBlock writes n realistic traces (plus the exotic one when
// exotic is set) and returns the block.
func writeTestBlock(tb testing.TB, cfg Config, n int, exotic bool) *testBlock {
	tb.Helper()
	rng := seededRand(tb, 42)
	ids := genTraceIDs(rng, n)
	traces := make([]*tracev1.TracesData, n)
	for i, id := range ids {
		traces[i] = genRealisticTrace(rng, id, 1_700_000_000_000_000_000)
	}
	if exotic {
		i := n / 2
		traces[i] = genExoticTrace(ids[i])
	}
	be := newMemBackend()
	w, err := NewWriter(context.Background(), be, cfg, testTenant, uuid.New(), 0, n, tb.TempDir())
	require.NoError(tb, err)
	for i := range ids {
		require.NoError(tb, w.Add(ids[i], traces[i]))
	}
	meta, err := w.Close(context.Background())
	require.NoError(tb, err)
	return &testBlock{be: be, meta: meta, ids: ids, traces: traces}
}

func requireProtoEqual(tb testing.TB, want, got proto.Message) {
	tb.Helper()
	if !proto.Equal(want, got) {
		require.Fail(tb, "proto messages differ", "want %v\ngot  %v", want, got)
	}
}

func TestRoundTripExoticFields(t *testing.T) {
	b := writeTestBlock(t, testConfig(t), 50, true)
	r := Open(b.be, b.meta, NewCache(1<<20))
	for i, id := range b.ids {
		got, err := r.FindTraceByID(context.Background(), id)
		require.NoError(t, err)
		require.NotNil(t, got, "trace %d", i)
		requireProtoEqual(t, b.traces[i], got)
	}
}

func TestMeta(t *testing.T) {
	b := writeTestBlock(t, testConfig(t), 200, false)
	m := b.meta
	require.Equal(t, VersionV2, m.Version)
	require.Equal(t, int64(len(b.be.object(SearchIndexKey(testTenant, m.BlockID)))), m.SearchIndexSize)
	require.Equal(t, testTenant, m.TenantID)
	require.Equal(t, []byte(m.MinID), b.ids[0])
	require.Equal(t, []byte(m.MaxID), b.ids[len(b.ids)-1])
	require.Equal(t, 200, m.TotalObjects)
	require.EqualValues(t, 2000, m.TotalSpans)
	require.Equal(t, int64(len(b.be.object(DataKey(testTenant, m.BlockID)))), m.Size)
	require.False(t, m.EndTime.Before(m.StartTime))
	require.Equal(t, 1, m.BloomShardCount)

	stored, err := ParseMeta(b.be.object(MetaKey(testTenant, m.BlockID)))
	require.NoError(t, err)
	require.Equal(t, m.BlockID, stored.BlockID)
	require.True(t, m.StartTime.Equal(stored.StartTime))
	require.Equal(t, m.FooterSize, stored.FooterSize)
}

func TestMetaIsLastPut(t *testing.T) {
	cfg := testConfig(t)
	cfg.BloomShardSizeBytes = minShardSizeBytes + 64 // force several shards
	b := writeTestBlock(t, cfg, 300, false)
	keys := b.be.putKeys()
	require.Greater(t, b.meta.BloomShardCount, 1)
	require.Len(t, keys, 3+b.meta.BloomShardCount)
	require.Contains(t, keys, SearchIndexKey(testTenant, b.meta.BlockID))
	require.Equal(t, DataKey(testTenant, b.meta.BlockID), keys[0])
	require.Equal(t, MetaKey(testTenant, b.meta.BlockID), keys[len(keys)-1])
	for i := 0; i < b.meta.BloomShardCount; i++ {
		require.Contains(t, keys, BloomKey(testTenant, b.meta.BlockID, i))
	}
}

func TestManyRowGroupsFindAndIterate(t *testing.T) {
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 32 << 10
	cfg.PageSizeBytes = 4 << 10
	b := writeTestBlock(t, cfg, 3000, true)
	require.Greater(t, b.meta.RowGroups, 5)

	r := Open(b.be, b.meta, NewCache(16<<20))
	ctx := context.Background()
	for i := 0; i < len(b.ids); i += 37 {
		got, err := r.FindTraceByID(ctx, b.ids[i])
		require.NoError(t, err)
		require.NotNil(t, got, "trace %d", i)
		requireProtoEqual(t, b.traces[i], got)
	}
	// The last trace of the block, and of each neighbour of a boundary.
	for _, i := range []int{0, len(b.ids) - 1} {
		got, err := r.FindTraceByID(ctx, b.ids[i])
		require.NoError(t, err)
		requireProtoEqual(t, b.traces[i], got)
	}

	var n int
	err := r.Iterate(ctx, func(id []byte, tr *tracev1.TracesData) error {
		require.Equal(t, b.ids[n], id)
		requireProtoEqual(t, b.traces[n], tr)
		n++
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, len(b.ids), n)

	stop := errors.New("stop")
	n = 0
	err = r.Iterate(ctx, func([]byte, *tracev1.TracesData) error {
		n++
		if n == 10 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
}

func TestFindAbsent(t *testing.T) {
	b := writeTestBlock(t, testConfig(t), 500, false)
	r := Open(b.be, b.meta, NewCache(1<<20))
	ctx := context.Background()

	below := make([]byte, TraceIDSize)
	above := bytes.Repeat([]byte{0xff}, TraceIDSize)
	require.True(t, bytes.Compare(below, b.meta.MinID) < 0 && bytes.Compare(above, b.meta.MaxID) > 0)
	gets, ranges := b.be.counts()
	for _, id := range [][]byte{below, above} {
		got, err := r.FindTraceByID(ctx, id)
		require.NoError(t, err)
		require.Nil(t, got)
	}
	g2, r2 := b.be.counts()
	require.Equal(t, gets, g2, "out-of-range lookups must not touch the backend")
	require.Equal(t, ranges, r2)

	// Inside the range but absent: neighbours of present IDs.
	rng := seededRand(t, 7)
	present := map[string]bool{}
	for _, id := range b.ids {
		present[string(id)] = true
	}
	var bloomNegatives, bloomPositives int
	for i := 0; i < 2000; i++ {
		id := randBytes(rng, TraceIDSize)
		if present[string(id)] || bytes.Compare(id, b.meta.MinID) < 0 || bytes.Compare(id, b.meta.MaxID) > 0 {
			continue
		}
		_, before := b.be.counts()
		got, err := r.FindTraceByID(ctx, id)
		require.NoError(t, err)
		require.Nil(t, got)
		_, after := b.be.counts()
		h := HashID(id)
		shard, err := r.bloomShard(ctx, ShardOf(h, b.meta.BloomShardCount))
		require.NoError(t, err)
		if !shard.Test(h) {
			bloomNegatives++
			require.Equal(t, before, after, "a bloom negative must cost no GetRange")
		} else {
			bloomPositives++
		}
	}
	require.Greater(t, bloomNegatives, 1000)
	// Also an ID that passes the bloom filter but is absent: a neighbour of
	// a present ID is very unlikely to; scan for a bloom false positive.
	t.Logf("bloom negatives %d, false positives %d", bloomNegatives, bloomPositives)
}

func TestFindAbsentPastBloom(t *testing.T) {
	// With a bloom filter that accepts everything the row group path must
	// still answer "absent" correctly.
	cfg := testConfig(t)
	cfg.BloomFP = 0.999
	cfg.RowGroupSizeBytes = 32 << 10
	b := writeTestBlock(t, cfg, 1000, false)
	r := Open(b.be, b.meta, NewCache(16<<20))
	for i := 0; i+1 < len(b.ids); i += 50 {
		id := bytes.Clone(b.ids[i])
		id[15]++ // between ids[i] and ids[i+1] unless adjacent
		if bytes.Equal(id, b.ids[i+1]) {
			continue
		}
		got, err := r.FindTraceByID(context.Background(), id)
		require.NoError(t, err)
		require.Nil(t, got)
	}
}

func TestFoundLookupCostsOneGetRangeWhenWarm(t *testing.T) {
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 32 << 10
	b := writeTestBlock(t, cfg, 2000, false)
	require.Greater(t, b.meta.RowGroups, 2)
	require.Equal(t, 1, b.meta.BloomShardCount)
	r := Open(b.be, b.meta, NewCache(16<<20))
	ctx := context.Background()

	// Cold: bloom shard (one Get), footer (one GetRange), row group (one GetRange).
	g0, r0 := b.be.counts()
	got, err := r.FindTraceByID(ctx, b.ids[0])
	require.NoError(t, err)
	requireProtoEqual(t, b.traces[0], got)
	g1, r1 := b.be.counts()
	require.Equal(t, 1, g1-g0)
	require.Equal(t, 2, r1-r0)

	for _, i := range []int{len(b.ids) / 2, len(b.ids) - 1, 17} {
		g0, r0 := b.be.counts()
		got, err := r.FindTraceByID(ctx, b.ids[i])
		require.NoError(t, err)
		requireProtoEqual(t, b.traces[i], got)
		g1, r1 := b.be.counts()
		require.Equal(t, 0, g1-g0, "warm lookup must not Get")
		require.Equal(t, 1, r1-r0, "warm lookup must cost exactly one GetRange")
	}

	// Without a cache every lookup pays for bloom and footer again.
	nr := Open(b.be, b.meta, nil)
	g0, r0 = b.be.counts()
	got, err = nr.FindTraceByID(ctx, b.ids[5])
	require.NoError(t, err)
	requireProtoEqual(t, b.traces[5], got)
	g1, r1 = b.be.counts()
	require.Equal(t, 1, g1-g0)
	require.Equal(t, 2, r1-r0)
}

func TestConcurrentLookups(t *testing.T) {
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 32 << 10
	b := writeTestBlock(t, cfg, 600, false)
	r := Open(b.be, b.meta, NewCache(16<<20))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(b.ids); i += 13 {
				got, err := r.FindTraceByID(context.Background(), b.ids[i])
				if err != nil {
					errs <- err
					return
				}
				if !proto.Equal(b.traces[i], got) {
					errs <- errors.New("trace mismatch")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

func TestWriterRejects(t *testing.T) {
	ctx := context.Background()
	be := newMemBackend()
	cfg := testConfig(t)
	dir := t.TempDir()
	w, err := NewWriter(ctx, be, cfg, testTenant, uuid.New(), 0, 10, dir)
	require.NoError(t, err)
	id := func(b byte) []byte { return bytes.Repeat([]byte{b}, TraceIDSize) }
	td := &tracev1.TracesData{}
	require.NoError(t, w.Add(id(5), td))
	require.ErrorIs(t, w.Add(id(5), td), ErrOutOfOrder)
	require.ErrorIs(t, w.Add(id(4), td), ErrOutOfOrder)
	require.ErrorIs(t, w.Add(id(6)[:8], td), ErrInvalidTraceID)
	require.Error(t, w.Add(id(7), nil))
	require.NoError(t, w.Add(id(6), td))
	w.Abort()
	require.ErrorIs(t, w.Add(id(9), td), ErrWriterClosed)
	_, err = w.Close(ctx)
	require.ErrorIs(t, err, ErrWriterClosed)
	require.Empty(t, be.putKeys(), "abort uploads nothing")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "abort removes the temp file")

	w, err = NewWriter(ctx, be, cfg, testTenant, uuid.New(), 0, 0, dir)
	require.NoError(t, err)
	_, err = w.Close(ctx)
	require.ErrorIs(t, err, ErrEmptyBlock)
	require.Empty(t, be.putKeys())

	_, err = NewWriter(ctx, be, cfg, "../evil", uuid.New(), 0, 0, dir)
	require.Error(t, err)
	_, err = NewWriter(ctx, be, cfg, testTenant, uuid.Nil, 0, 0, dir)
	require.Error(t, err)
	bad := cfg
	bad.BloomFP = 0
	_, err = NewWriter(ctx, be, bad, testTenant, uuid.New(), 0, 0, dir)
	require.Error(t, err)
}

func TestCloseRemovesTempFile(t *testing.T) {
	dir := t.TempDir()
	be := newMemBackend()
	w, err := NewWriter(context.Background(), be, testConfig(t), testTenant, uuid.New(), 2, 1, dir)
	require.NoError(t, err)
	require.NoError(t, w.Add(bytes.Repeat([]byte{1}, 16), genExoticTrace(bytes.Repeat([]byte{1}, 16))))
	m, err := w.Close(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 2, m.CompactionLevel)
	matches, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	require.Empty(t, matches)
}

func TestCorruptData(t *testing.T) {
	cfg := testConfig(t)
	cfg.RowGroupSizeBytes = 32 << 10
	b := writeTestBlock(t, cfg, 400, false)
	key := DataKey(testTenant, b.meta.BlockID)
	orig := bytes.Clone(b.be.object(key))
	ctx := context.Background()

	flip := func(data []byte, from, to int64) []byte {
		out := bytes.Clone(data)
		for i := from; i < to && i < int64(len(out)); i++ {
			out[i] ^= 0x5a
		}
		return out
	}
	tailOff := b.meta.Size - b.meta.FooterSize
	cases := map[string][]byte{
		"truncated":       orig[:len(orig)/2],
		"empty":           {},
		"garbage tail":    flip(orig, tailOff, b.meta.Size-8),
		"bad magic":       flip(orig, b.meta.Size-4, b.meta.Size),
		"garbage data":    flip(orig, 4, tailOff),
		"garbage half rg": flip(orig, tailOff/3, tailOff/2),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			b.be.set(key, data)
			t.Cleanup(func() { b.be.set(key, orig) })
			r := Open(b.be, b.meta, nil)
			var findErr error
			for _, id := range b.ids {
				got, err := r.FindTraceByID(ctx, id)
				if err != nil {
					findErr = err
					break
				}
				// Damage may miss the row we asked for; it must then be intact.
				if got != nil && !proto.Equal(got, b.traces[indexOf(b.ids, id)]) {
					findErr = errors.New("silently wrong trace")
					break
				}
			}
			iterErr := r.Iterate(ctx, func([]byte, *tracev1.TracesData) error { return nil })
			require.Error(t, errors.Join(findErr, iterErr))
			require.Error(t, iterErr)
		})
	}
}

func indexOf(ids [][]byte, id []byte) int {
	for i := range ids {
		if bytes.Equal(ids[i], id) {
			return i
		}
	}
	return -1
}

func TestCorruptBloomShard(t *testing.T) {
	b := writeTestBlock(t, testConfig(t), 20, false)
	key := BloomKey(testTenant, b.meta.BlockID, 0)
	data := bytes.Clone(b.be.object(key))
	data[len(data)/2] ^= 1
	b.be.set(key, data)
	_, err := Open(b.be, b.meta, nil).FindTraceByID(context.Background(), b.ids[3])
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorIs(t, err, ErrInvalidBloom)
}

func TestMissingObjects(t *testing.T) {
	b := writeTestBlock(t, testConfig(t), 20, false)
	require.NoError(t, b.be.Delete(context.Background(), DataKey(testTenant, b.meta.BlockID)))
	_, err := Open(b.be, b.meta, nil).FindTraceByID(context.Background(), b.ids[3])
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrCorrupt)
}
