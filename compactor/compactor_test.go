package compactor_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/compactor"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/blocklist"
	"github.com/rubatodb/rubato/querier"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const tenantID = "t1"

func testConfig(t testing.TB) compactor.Config {
	t.Helper()
	var cfg compactor.Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	cfg.Compaction.MaxInputBlocks = 4
	cfg.Compaction.CompactedBlockRetention = 0
	cfg.Compaction.BlockRetention = 0
	cfg.Compaction.TmpDir = t.TempDir()
	return cfg
}

func newCompactor(t testing.TB, cfg compactor.Config, be backend.Backend) *compactor.Compactor {
	t.Helper()
	c, err := compactor.New(cfg, smallBlockConfig(), time.Minute, be, nil, log.NewNopLogger(), nil)
	require.NoError(t, err)
	return c
}

// liveBlocks lists the tenant by reading the backend the slow way.
func liveBlocks(t testing.TB, be backend.Backend) []*block.Meta {
	t.Helper()
	p := blocklist.New(blocklist.Config{BuildIndex: true}, be, log.NewNopLogger(), nil)
	require.NoError(t, p.Poll(context.Background()))
	return p.Metas(tenantID)
}

// checkBlocks reads every live block row by row: no row holds a span twice,
// every span is the universe's, and the union over blocks is the universe.
func checkBlocks(t testing.TB, u *universe, be backend.Backend) {
	t.Helper()
	union := map[string]map[uint64]bool{}
	for _, m := range liveBlocks(t, be) {
		err := block.Open(be, m, nil).Iterate(context.Background(), func(id []byte, td *tracev1.TracesData) error {
			seen := map[uint64]bool{}
			if union[string(id)] == nil {
				union[string(id)] = map[uint64]bool{}
			}
			for _, rs := range td.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, sp := range ss.Spans {
						sid := binary.BigEndian.Uint64(sp.SpanId)
						require.False(t, seen[sid], "block %s trace %x: span %x twice", m.BlockID, id, sid)
						seen[sid] = true
						require.True(t, proto.Equal(u.traces[string(id)][sid], sp), "trace %x span %x", id, sid)
						union[string(id)][sid] = true
					}
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	require.Len(t, union, len(u.traces))
	for id, spans := range u.traces {
		require.Len(t, union[id], len(spans), "trace %x", id)
	}
}

// TestRandomizedCompaction writes random overlapping blocks, compacts
// them round after round, and checks after every round that every trace is
// the union of its input copies with no span twice.
func TestRandomizedCompaction(t *testing.T) {
	for seed := range uint64(4) {
		t.Run("seed"+string(rune('0'+seed)), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			be := inmem.New()
			u := newUniverse(time.Now().Add(-time.Minute))
			initial := u.randomBlocks(t, rng, be, tenantID, 6+rng.IntN(10), 200+rng.IntN(300), 40+rng.IntN(120))
			cfg := testConfig(t)
			cfg.Compaction.MaxInputBlocks = 2 + rng.IntN(4)
			c := newCompactor(t, cfg, be)
			ctx := context.Background()
			for round := 0; round < 6; round++ {
				require.NoError(t, c.RunOnce(ctx))
				checkBlocks(t, u, be)
			}
			after := liveBlocks(t, be)
			require.Less(t, len(after), len(initial))
			// Converged: no job left, and no compacted block left over.
			require.Empty(t, compactor.Plan(after, compactor.PlanConfig{
				Window: cfg.Compaction.CompactionWindow, MaxBlockBytes: cfg.Compaction.MaxBlockBytes,
				MaxObjects: cfg.Compaction.MaxCompactionObjects, MinInputBlocks: 2, MaxInputBlocks: cfg.Compaction.MaxInputBlocks,
			}, time.Now()))
			require.Empty(t, c.Poller().CompactedMetas(tenantID))
		})
	}
}

var errCrash = errors.New("crashed")

// crashingBackend lets `budget` mutating operations through, then fails
// every Put and Delete: from the backend's point of view the compactor
// died at that step. Reads keep working, as they have no effect.
type crashingBackend struct {
	backend.Backend
	mu     sync.Mutex
	budget int
	ops    int
}

func (b *crashingBackend) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops++
	return b.budget < 0 || b.ops <= b.budget
}

func (b *crashingBackend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if !b.allow() {
		return errCrash
	}
	return b.Backend.Put(ctx, key, r, size)
}

func (b *crashingBackend) Delete(ctx context.Context, key string) error {
	if !b.allow() {
		return errCrash
	}
	return b.Backend.Delete(ctx, key)
}

// checkQueries looks every trace up through the querier, once through the
// tenant index and once by listing, and requires exact answers.
func checkQueries(t testing.TB, u *universe, be backend.Backend) {
	t.Helper()
	ctx := context.Background()
	for _, mode := range []string{"index", "listing"} {
		if mode == "listing" {
			require.NoError(t, be.Delete(ctx, blocklist.IndexKey(tenantID)))
		}
		q := querier.New(querier.Config{ConcurrentBlockReads: 4, QueryIngestersTimeout: time.Second},
			querier.StoreConfig{BlocklistPoll: time.Minute, BlockCacheBytes: 256 << 20}, nil, nil, be, nil, log.NewNopLogger(), nil)
		require.NoError(t, q.PollNow(ctx))
		for id := range u.traces {
			got, err := q.FindTraceByID(ctx, tenantID, [16]byte([]byte(id)), querier.TimeRange{})
			require.NoError(t, err, mode)
			u.requireExact(t, []byte(id), got)
		}
	}
}

// TestCrashAtEveryStep kills the compactor after each of its backend
// writes in turn (output objects, meta.json, each meta.compacted.json,
// the index, each deletion), checks that queries are exact in the state
// left behind, then lets a new compactor finish and checks again.
func TestCrashAtEveryStep(t *testing.T) {
	setup := func(t *testing.T) (*universe, backend.Backend) {
		rng := rand.New(rand.NewPCG(42, 42))
		be := inmem.New()
		u := newUniverse(time.Now().Add(-time.Minute))
		u.randomBlocks(t, rng, be, tenantID, 4, 120, 60)
		return u, be
	}
	ctx := context.Background()
	// Count the writes of an uninterrupted run: round 1 compacts, round 2
	// deletes the inputs (compacted_block_retention is 0).
	u, be := setup(t)
	cb := &crashingBackend{Backend: be, budget: -1}
	c := newCompactor(t, testConfig(t), cb)
	require.NoError(t, c.RunOnce(ctx))
	require.NoError(t, c.RunOnce(ctx))
	total := cb.ops
	require.Len(t, liveBlocks(t, be), 1)
	checkQueries(t, u, be)
	t.Logf("an uninterrupted compaction makes %d backend writes", total)

	for k := 0; k < total; k++ {
		u, be := setup(t)
		cb := &crashingBackend{Backend: be, budget: k}
		c := newCompactor(t, testConfig(t), cb)
		_ = c.RunOnce(ctx)
		_ = c.RunOnce(ctx)
		checkQueries(t, u, be)

		// A new compactor recovers.
		c2 := newCompactor(t, testConfig(t), be)
		for range 3 {
			require.NoError(t, c2.RunOnce(ctx), "crash after %d writes", k)
		}
		checkQueries(t, u, be)
		// The output plus, when the crash came between marking inputs,
		// the inputs not yet marked: they hold copies the output also
		// has, which queries deduplicate and which the next compaction
		// of the window merges.
		live := liveBlocks(t, be)
		require.NotEmpty(t, live)
		require.Less(t, len(live), 4, "crash after %d writes", k)
		isLive := map[string]bool{}
		for _, m := range live {
			isLive[tenantID+"/"+m.BlockID.String()+"/"] = true
		}
		// Nothing else is left behind: every block directory is live.
		entries, err := be.List(ctx, tenantID+"/")
		require.NoError(t, err)
		for _, e := range entries {
			if strings.HasSuffix(e, "/") {
				require.True(t, isLive[e], "crash after %d writes: leftover %s", k, e)
			}
		}
	}
}

// TestQuerierSeesBothCopies stops right after the output's meta.json: the
// output and all its inputs are live at once, and a querier reading both
// returns every span once.
func TestQuerierSeesBothCopies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	be := inmem.New()
	u := newUniverse(time.Now().Add(-time.Minute))
	inputs := u.randomBlocks(t, rng, be, tenantID, 3, 100, 70)
	cfg := testConfig(t)
	c := newCompactor(t, cfg, be)
	ctx := context.Background()
	job := compactor.Job{Tenant: tenantID, Level: 1, Inputs: inputs}
	out, err := c.Compact(ctx, job)
	require.NoError(t, err)
	// Undo the marks: the state of a compactor killed before marking.
	for _, m := range inputs {
		require.NoError(t, be.Delete(ctx, block.CompactedMetaKey(tenantID, m.BlockID)))
	}
	require.NoError(t, be.Delete(ctx, blocklist.IndexKey(tenantID)))
	require.Len(t, liveBlocks(t, be), 4)
	checkQueries(t, u, be)

	// Retrying the same job finds the finished output and only marks.
	c2 := newCompactor(t, cfg, be)
	out2, err := c2.Compact(ctx, job)
	require.NoError(t, err)
	require.Equal(t, out.BlockID, out2.BlockID)
	require.Equal(t, out.CreatedAt, out2.CreatedAt, "output rewritten")
	require.Len(t, liveBlocks(t, be), 1)
}

func TestRetention(t *testing.T) {
	be := inmem.New()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	old := newUniverse(time.Now().Add(-48 * time.Hour))
	fresh := newUniverse(time.Now().Add(-time.Minute))
	oldBlocks := old.randomBlocks(t, rng, be, tenantID, 1, 50, 20)
	fresh.randomBlocks(t, rng, be, tenantID, 1, 50, 20)
	cfg := testConfig(t)
	cfg.Compaction.BlockRetention = 24 * time.Hour
	cfg.Compaction.CompactedBlockRetention = time.Hour
	c := newCompactor(t, cfg, be)
	require.NoError(t, c.RunOnce(ctx))
	// Marked, not yet deleted: still readable by queriers with old lists.
	live := liveBlocks(t, be)
	require.Len(t, live, 1)
	require.NotEqual(t, oldBlocks[0].BlockID, live[0].BlockID)
	_, err := be.Size(ctx, block.DataKey(tenantID, oldBlocks[0].BlockID))
	require.NoError(t, err)
	require.Len(t, c.Poller().CompactedMetas(tenantID), 1)

	// After compacted_block_retention it is gone.
	cfg.Compaction.CompactedBlockRetention = 0
	c2 := newCompactor(t, cfg, be)
	require.NoError(t, c2.RunOnce(ctx))
	entries, err := be.List(ctx, tenantID+"/")
	require.NoError(t, err)
	for _, e := range entries {
		require.False(t, strings.Contains(e, oldBlocks[0].BlockID.String()), "left: %s", e)
	}
	idx, err := blocklist.ReadIndex(ctx, be, tenantID)
	require.NoError(t, err)
	require.Len(t, idx.Metas, 1)
	require.Empty(t, idx.CompactedMetas)
}

// TestMaxBytesPerTrace combines two halves of a big trace with a limit:
// the output is cut to the limit and the count of dropped spans is right.
func TestMaxBytesPerTrace(t *testing.T) {
	be := inmem.New()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 5))
	u := newUniverse(time.Now().Add(-time.Minute))
	id := bytes.Repeat([]byte{7}, 16)
	var a, b []*tracev1.Span
	for i := range 400 {
		sp := u.span(rng, id, i)
		if i%2 == 0 {
			a = append(a, sp)
		} else {
			b = append(b, sp)
		}
	}
	in1 := writeBlock(t, be, tenantID, 0, [][]byte{id}, []*tracev1.TracesData{u.traceOf(a)})
	in2 := writeBlock(t, be, tenantID, 0, [][]byte{id}, []*tracev1.TracesData{u.traceOf(b)})
	cfg := testConfig(t)
	const limit = 20_000
	cfg.Compaction.MaxBytesPerTrace = limit
	c := newCompactor(t, cfg, be)
	out, err := c.Compact(ctx, compactor.Job{Tenant: tenantID, Level: 1, Inputs: []*block.Meta{in1, in2}})
	require.NoError(t, err)
	td, err := block.Open(be, out, nil).FindTraceByID(ctx, id)
	require.NoError(t, err)
	size := proto.Size(td)
	require.LessOrEqual(t, size, limit)
	require.Greater(t, size, limit/2)
	require.Less(t, int64(countSpans(td)), int64(400))
	require.Equal(t, int64(countSpans(td)), out.TotalSpans)
}

func countSpans(td *tracev1.TracesData) int {
	n := 0
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}

// TestMaxCombineSpans: copies too big to combine are not decoded; the
// copy with the most spans is kept whole.
func TestMaxCombineSpans(t *testing.T) {
	be := inmem.New()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(6, 6))
	u := newUniverse(time.Now().Add(-time.Minute))
	id := bytes.Repeat([]byte{9}, 16)
	var a, b []*tracev1.Span
	for i := range 300 {
		sp := u.span(rng, id, i)
		if i < 200 {
			a = append(a, sp)
		}
		if i >= 150 {
			b = append(b, sp)
		}
	}
	in1 := writeBlock(t, be, tenantID, 0, [][]byte{id}, []*tracev1.TracesData{u.traceOf(a)})
	in2 := writeBlock(t, be, tenantID, 0, [][]byte{id}, []*tracev1.TracesData{u.traceOf(b)})
	for _, tc := range []struct {
		limit, want int
	}{{0, 300}, {400, 300}, {300, 200}} {
		cfg := testConfig(t)
		cfg.Compaction.MaxCombineSpans = tc.limit
		c := newCompactor(t, cfg, inmemCopy(t, be))
		out, err := c.Compact(ctx, compactor.Job{Tenant: tenantID, Level: 1, Inputs: []*block.Meta{in2, in1}})
		require.NoError(t, err)
		require.Equal(t, int64(tc.want), out.TotalSpans, "limit %d", tc.limit)
	}
}

// inmemCopy returns a new in-memory backend holding be's objects.
func inmemCopy(t testing.TB, be backend.Backend) backend.Backend {
	t.Helper()
	ctx := context.Background()
	out := inmem.New()
	var walk func(dir string)
	walk = func(dir string) {
		keys, err := be.List(ctx, dir)
		require.NoError(t, err)
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				walk(k)
				continue
			}
			data, err := backend.ReadAll(ctx, be, k)
			require.NoError(t, err)
			require.NoError(t, out.Put(ctx, k, bytes.NewReader(data), int64(len(data))))
		}
	}
	walk("")
	return out
}
