package compactor_test

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/compactor"
	"github.com/rubatodb/rubato/integration/minio"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/backend/s3"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/blocklist"
)

// indexRecorder counts, per tenant, the index writes that went through it.
type indexRecorder struct {
	backend.Backend
	mu      sync.Mutex
	indexes map[string]int
}

func (r *indexRecorder) Put(ctx context.Context, key string, rd io.Reader, size int64) error {
	if strings.HasSuffix(key, "/"+blocklist.IndexName) {
		r.mu.Lock()
		r.indexes[strings.Split(key, "/")[0]]++
		r.mu.Unlock()
	}
	return r.Backend.Put(ctx, key, rd, size)
}

// shardedCompactor is one of several compactors sharing a KV and a backend;
// jobs records the jobs it committed.
type shardedCompactor struct {
	*compactor.Compactor
	rec  *indexRecorder
	mu   sync.Mutex
	jobs []compactor.Job
}

func (s *shardedCompactor) committed() []compactor.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]compactor.Job(nil), s.jobs...)
}

// newSharded starts n compactors on one in-memory consul KV over be, and
// waits until each sees all n ACTIVE.
func newSharded(t *testing.T, be backend.Backend, n int, tune func(*compactor.Config)) []*shardedCompactor {
	t.Helper()
	kvc, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	var out []*shardedCompactor
	for i := range n {
		cfg := testConfig(t)
		cfg.Ring.KVStore.Mock = kvc
		cfg.Ring.InstanceID = fmt.Sprintf("compactor-%d", i)
		cfg.Ring.InstanceAddr = "127.0.0.1"
		cfg.Ring.InstancePort = 9000 + i
		cfg.Ring.HeartbeatPeriod = 100 * time.Millisecond
		if tune != nil {
			tune(&cfg)
		}
		rec := &indexRecorder{Backend: be, indexes: map[string]int{}}
		s := &shardedCompactor{Compactor: newCompactor(t, cfg, rec), rec: rec}
		compactor.SetBeforeCommit(s.Compactor, func(j compactor.Job) {
			s.mu.Lock()
			s.jobs = append(s.jobs, j)
			s.mu.Unlock()
		})
		require.NoError(t, compactor.StartRing(context.Background(), s.Compactor))
		t.Cleanup(func() { require.NoError(t, compactor.StopRing(s.Compactor)) })
		out = append(out, s)
	}
	waitInstances(t, out, n)
	return out
}

func waitInstances(t *testing.T, cs []*shardedCompactor, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, c := range cs {
			if c.Ring().InstancesWithTokensCount() != n {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond)
}

// shardedData writes, for each tenant and each of `windows` closed
// one-hour windows, `perWindow` overlapping blocks; it returns the ground
// truth per tenant.
func shardedData(t *testing.T, rng *rand.Rand, be backend.Backend, tenants []string, windows, perWindow int) map[string][]*universe {
	t.Helper()
	now := time.Now().Truncate(time.Hour)
	truth := map[string][]*universe{}
	for _, tn := range tenants {
		for w := range windows {
			u := newUniverse(now.Add(-time.Duration(w+3) * time.Hour).Add(10 * time.Minute))
			u.randomBlocks(t, rng, be, tn, perWindow, 30, 15)
			truth[tn] = append(truth[tn], u)
		}
	}
	return truth
}

// requireExactSpans reads every live block of every tenant: each span of
// the ground truth is stored exactly once, and nothing else is stored.
func requireExactSpans(t *testing.T, be backend.Backend, truth map[string][]*universe) {
	t.Helper()
	ctx := context.Background()
	p := blocklist.New(blocklist.Config{BuildIndex: true}, be, log.NewNopLogger(), nil)
	require.NoError(t, p.Poll(ctx))
	for tn, us := range truth {
		got := map[string]map[uint64]int{}
		for _, m := range p.Metas(tn) {
			require.NoError(t, block.Open(be, m, nil).Iterate(ctx, func(id []byte, td *tracev1.TracesData) error {
				if got[string(id)] == nil {
					got[string(id)] = map[uint64]int{}
				}
				for _, rs := range td.ResourceSpans {
					for _, ss := range rs.ScopeSpans {
						for _, sp := range ss.Spans {
							got[string(id)][binary.BigEndian.Uint64(sp.SpanId)]++
						}
					}
				}
				return nil
			}))
		}
		want := 0
		for _, u := range us {
			for id, spans := range u.traces {
				want += len(spans)
				for sid := range spans {
					require.Equal(t, 1, got[string(id)][sid], "tenant %s trace %x span %x", tn, id, sid)
				}
			}
		}
		stored := 0
		for _, spans := range got {
			for _, n := range spans {
				stored += n
			}
		}
		require.Equal(t, want, stored, "tenant %s: spans stored", tn)
	}
}

// TestShardedCompactors runs two compactors over one backend and ring:
// both compact, no block is an input of two jobs, every job and tenant
// index is its owner's, nothing is lost or duplicated; then one leaves and
// the other takes over its share.
func TestShardedCompactors(t *testing.T) { testShardedCompactors(t, inmem.New(), 8) }

// TestShardedCompactorsMinIO runs the same over S3 (MinIO).
func TestShardedCompactorsMinIO(t *testing.T) {
	srv := minio.Start(t)
	var cfg s3.Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	cfg.Endpoint, cfg.Insecure, cfg.Region = srv.Endpoint, true, "us-east-1"
	cfg.Bucket = srv.NewBucket(t, "sharded")
	cfg.AccessKey, cfg.SecretKey = srv.AccessKey, flagext.SecretWithValue(srv.SecretKey)
	cfg.ForcePathStyle = true
	be, err := s3.New(cfg, log.NewNopLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = be.Close() })
	testShardedCompactors(t, be, 5)
}

// testShardedCompactors: windows closed windows per tenant, 3 tenants.
func testShardedCompactors(t *testing.T, be backend.Backend, windows int) {
	rng := rand.New(rand.NewPCG(11, 5))
	tenants := []string{"ta", "tb", "tc"}
	truth := shardedData(t, rng, be, tenants, windows, 4)
	cs := newSharded(t, be, 2, nil)
	ctx := context.Background()

	for range 2 {
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				require.NoError(t, c.RunOnce(ctx))
			}()
		}
		wg.Wait()
	}
	requireExactSpans(t, be, truth)

	inputOf := map[string]string{} // block ID → compactor
	keys := map[string]bool{}
	for i, c := range cs {
		jobs := c.committed()
		require.NotEmpty(t, jobs, "compactor %d did no job", i)
		for _, j := range jobs {
			key := compactor.JobKey(j)
			require.True(t, compactor.Owns(c.Compactor, key), "compactor %d ran a job it does not own", i)
			require.False(t, keys[key], "(tenant, window) %q compacted twice", key)
			keys[key] = true
			for _, m := range j.Inputs {
				prev, dup := inputOf[m.BlockID.String()]
				require.False(t, dup, "block %s compacted by %s and compactor %d", m.BlockID, prev, i)
				inputOf[m.BlockID.String()] = fmt.Sprint(i)
			}
		}
	}
	require.Len(t, keys, len(tenants)*windows, "one job per (tenant, window)")
	// Exactly one compactor writes each tenant's index: its owner.
	for _, tn := range tenants {
		writers := 0
		for _, c := range cs {
			if c.rec.indexes[tn] > 0 {
				writers++
				require.True(t, compactor.Owns(c.Compactor, compactor.TenantKey(tn)))
			}
		}
		require.Equal(t, 1, writers, "tenant %s index writers", tn)
	}

	// compactor-1 leaves: compactor-0 owns every job of the new blocks.
	require.NoError(t, compactor.LeaveRing(cs[1].Compactor))
	waitInstances(t, cs[:1], 1)
	more := shardedData(t, rng, be, tenants, windows, 3)
	for tn, us := range more {
		truth[tn] = append(truth[tn], us...)
	}
	before := len(cs[0].committed())
	require.NoError(t, cs[0].RunOnce(ctx))
	require.NoError(t, cs[0].RunOnce(ctx))
	require.NoError(t, cs[1].RunOnce(ctx)) // owns nothing now
	require.GreaterOrEqual(t, len(cs[0].committed())-before, len(tenants)*windows)
	requireExactSpans(t, be, truth)
	for _, tn := range tenants {
		require.Positive(t, cs[0].rec.indexes[tn], "tenant %s index after the other compactor left", tn)
	}
}

// TestShardedRetentionOwnership: a compactor expires, deletes and cleans
// (janitor) only the tenants it owns.
func TestShardedRetentionOwnership(t *testing.T) {
	be := inmem.New()
	rng := rand.New(rand.NewPCG(2, 9))
	ctx := context.Background()
	var tenants []string
	for i := range 16 {
		tn := fmt.Sprintf("ret%02d", i)
		tenants = append(tenants, tn)
		newUniverse(time.Now().Add(-time.Hour)).randomBlocks(t, rng, be, tn, 1, 10, 5)
		// A partial block (no meta.json).
		require.NoError(t, be.Put(ctx, tn+"/0a0a0a0a-0000-4000-8000-000000000000/"+block.DataName, strings.NewReader("x"), 1))
	}
	cs := newSharded(t, be, 2, func(cfg *compactor.Config) {
		cfg.Compaction.BlockRetention = time.Hour
		cfg.Compaction.MinInputBlocks = 2
	})
	future := time.Now().Add(48 * time.Hour)
	compactor.SetNow(cs[0].Compactor, func() time.Time { future = future.Add(time.Second); return future })
	require.NoError(t, cs[0].RunOnce(ctx))
	require.NoError(t, cs[0].RunOnce(ctx)) // deletes what the first round marked

	owned := 0
	for _, tn := range tenants {
		objs, err := be.List(ctx, tn+"/")
		require.NoError(t, err)
		if compactor.Owns(cs[0].Compactor, compactor.TenantKey(tn)) {
			owned++
			require.Equal(t, []string{tn + "/" + blocklist.IndexName}, objs, "owned tenant %s: expired and partial blocks deleted", tn)
		} else {
			require.Len(t, objs, 2, "tenant %s owned by the other compactor: untouched", tn)
		}
	}
	require.Positive(t, owned)
	require.Less(t, owned, len(tenants))
}

// TestOwnershipLostMidJob: the ring moves a job to another compactor while
// it runs; the first leaves its inputs unmarked, the new owner compacts
// them, and every span is stored once after the window converges.
func TestOwnershipLostMidJob(t *testing.T) {
	be := inmem.New()
	rng := rand.New(rand.NewPCG(4, 4))
	truth := shardedData(t, rng, be, []string{"tl"}, 6, 3)
	cs := newSharded(t, be, 2, nil)
	ctx := context.Background()
	var lost []string
	compactor.SetBeforeCommit(cs[0].Compactor, func(j compactor.Job) {
		if len(lost) > 0 {
			return
		}
		lost = append(lost, compactor.JobKey(j))
		// compactor-0 leaves the ring half way through its first job.
		require.NoError(t, compactor.LeaveRing(cs[0].Compactor))
		require.Eventually(t, func() bool { return !compactor.Owns(cs[0].Compactor, lost[0]) }, 10*time.Second, 10*time.Millisecond)
	})
	require.NoError(t, cs[0].RunOnce(ctx))
	require.Len(t, lost, 1, "compactor-0 started no job")
	// Its output is live, its inputs are not marked.
	p := blocklist.New(blocklist.Config{BuildIndex: true}, be, log.NewNopLogger(), nil)
	require.NoError(t, p.Poll(ctx))
	require.Empty(t, p.CompactedMetas("tl"), "an input was marked after ownership was lost")

	waitInstances(t, cs[1:], 1)
	for range 3 {
		require.NoError(t, cs[1].RunOnce(ctx))
	}
	requireExactSpans(t, be, truth)
}

// TestDoubleCompactionRace runs what two compactors with different views
// of the ring could run at once: the same job on both, and two jobs
// sharing inputs. Nothing is lost at any point (queries deduplicate), and
// once the window is compacted again every span is stored once.
func TestDoubleCompactionRace(t *testing.T) {
	for _, overlap := range []bool{false, true} {
		t.Run(fmt.Sprint("overlap=", overlap), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(8, 1))
			be := inmem.New()
			u := newUniverse(time.Now().Add(-3 * time.Hour))
			inputs := u.randomBlocks(t, rng, be, tenantID, 4, 80, 40)
			cfg := testConfig(t)
			c1, c2 := newCompactor(t, cfg, be), newCompactor(t, cfg, be)
			job1 := compactor.Job{Tenant: tenantID, Level: 1, Inputs: inputs}
			job2 := job1
			if overlap {
				job1.Inputs = inputs[:3]
				job2.Inputs = inputs[1:]
			}
			// Both write their outputs before either marks an input.
			var barrier sync.WaitGroup
			barrier.Add(2)
			for _, c := range []*compactor.Compactor{c1, c2} {
				compactor.SetBeforeCommit(c, func(compactor.Job) { barrier.Done(); barrier.Wait() })
			}
			var wg sync.WaitGroup
			outs := make([]*block.Meta, 2)
			for i, run := range []struct {
				c   *compactor.Compactor
				job compactor.Job
			}{{c1, job1}, {c2, job2}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := run.c.Compact(context.Background(), run.job)
					require.NoError(t, err)
					outs[i] = out
				}()
			}
			wg.Wait()
			checkQueries(t, u, be)
			live := liveBlocks(t, be)
			if overlap {
				require.NotEqual(t, outs[0].BlockID, outs[1].BlockID)
				require.Len(t, live, 2, "both outputs live, every input marked")
			} else {
				require.Equal(t, outs[0].BlockID, outs[1].BlockID, "one job, one output ID")
				require.Len(t, live, 1)
			}
			// The next compaction of the window removes the duplicates.
			compactor.SetBeforeCommit(c1, nil)
			for range 3 {
				require.NoError(t, c1.RunOnce(context.Background()))
			}
			checkBlocks(t, u, be)
			require.Len(t, liveBlocks(t, be), 1)
		})
	}
}

// TestJanitorSparesPlannedOutputs: the tenant owner's janitor does not
// delete the half-written output directory of a job another compactor
// owns (it may be retrying it), and still deletes other partial blocks.
func TestJanitorSparesPlannedOutputs(t *testing.T) {
	be := inmem.New()
	ctx := context.Background()
	cs := newSharded(t, be, 2, nil)
	base := time.Now().Add(-5 * time.Hour).Truncate(time.Hour)
	tn := ""
	for i := range 200 {
		cand := fmt.Sprintf("jp%03d", i)
		if compactor.Owns(cs[0].Compactor, compactor.TenantKey(cand)) &&
			!compactor.Owns(cs[0].Compactor, compactor.JobKey(compactor.Job{Tenant: cand, Window: base.UTC()})) {
			tn = cand
			break
		}
	}
	require.NotEmpty(t, tn, "no tenant owned by compactor-0 whose window is compactor-1's")
	rng := rand.New(rand.NewPCG(5, 5))
	newUniverse(base.Add(10*time.Minute)).randomBlocks(t, rng, be, tn, 2, 20, 10)

	p := blocklist.New(blocklist.Config{}, be, log.NewNopLogger(), nil)
	require.NoError(t, p.Poll(ctx))
	cfg := testConfig(t)
	jobs := compactor.Plan(p.Metas(tn), compactor.PlanConfig{
		Window: cfg.Compaction.CompactionWindow, MaxBlockBytes: cfg.Compaction.MaxBlockBytes,
		MaxObjects: cfg.Compaction.MaxCompactionObjects, MinInputBlocks: 2, MaxInputBlocks: cfg.Compaction.MaxInputBlocks,
	}, time.Now())
	require.Len(t, jobs, 1)
	planned := compactor.OutputID(jobs[0])
	orphan := "0b0b0b0b-0000-4000-8000-000000000000"
	for _, dir := range []string{planned.String(), orphan} {
		require.NoError(t, be.Put(ctx, tn+"/"+dir+"/"+block.DataName, strings.NewReader("x"), 1))
	}
	future := time.Now().Add(3 * time.Hour) // every object is past the grace period
	compactor.SetNow(cs[0].Compactor, func() time.Time { return future })
	require.NoError(t, cs[0].RunOnce(ctx))

	kept, err := be.List(ctx, tn+"/"+planned.String()+"/")
	require.NoError(t, err)
	require.NotEmpty(t, kept, "the planned output's directory was deleted")
	gone, err := be.List(ctx, tn+"/"+orphan+"/")
	require.NoError(t, err)
	require.Empty(t, gone, "an orphan partial block was kept")
	require.Empty(t, cs[0].committed(), "compactor-0 ran a job it does not own")
}
