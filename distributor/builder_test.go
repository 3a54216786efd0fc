package distributor

import (
	"context"
	"flag"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/kv/consul"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/pkg/model/otlpwire"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
)

const builderTenant = "t"

// fakeIngester is an ingester gRPC server on 127.0.0.1 that records what
// it is sent. Its behaviour is set before the push under test.
type fakeIngester struct {
	rubatopb.UnimplementedIngesterServer
	addr string

	pushFail    bool          // PushBytes answers Unavailable
	pushDelay   time.Duration // PushBytes sleeps first (or until its deadline)
	promoteFail bool          // PromoteHeld answers Unavailable
	refuseBuilt bool          // PushBytes refuses (TRACE_TOO_LARGE) every fragment it is to build
	forget      bool          // record nothing (benchmarks)

	mu       sync.Mutex
	pushes   []*rubatopb.PushBytesRequest
	promotes []*rubatopb.HeldFragments
	releases []*rubatopb.HeldFragments
	tenants  [][]string   // x-scope-orgid of each PromoteHeld
	answered atomic.Int32 // PushBytes calls that have returned
}

func (f *fakeIngester) PushBytes(ctx context.Context, req *rubatopb.PushBytesRequest) (*rubatopb.PushResponse, error) {
	defer f.answered.Add(1)
	if !f.forget {
		f.mu.Lock()
		f.pushes = append(f.pushes, req)
		f.mu.Unlock()
	}
	if f.pushDelay > 0 {
		select {
		case <-time.After(f.pushDelay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.pushFail {
		return nil, status.Error(codes.Unavailable, "fake ingester: push refused")
	}
	if f.refuseBuilt {
		reasons := make([]rubatopb.PushErrorReason, len(req.Ids))
		for j := range reasons {
			if len(req.Hold) == 0 || !req.Hold[j] {
				reasons[j] = rubatopb.PushErrorReason_TRACE_TOO_LARGE
			}
		}
		return &rubatopb.PushResponse{ErrorsByTrace: reasons}, nil
	}
	return &rubatopb.PushResponse{}, nil
}

func (f *fakeIngester) ReleaseHeld(_ context.Context, req *rubatopb.HeldFragments) (*rubatopb.HeldResponse, error) {
	f.mu.Lock()
	f.releases = append(f.releases, req)
	f.mu.Unlock()
	return &rubatopb.HeldResponse{Matched: uint32(len(req.Ids))}, nil
}

func (f *fakeIngester) PromoteHeld(ctx context.Context, req *rubatopb.HeldFragments) (*rubatopb.HeldResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.promotes = append(f.promotes, req)
	f.tenants = append(f.tenants, md.Get("x-scope-orgid"))
	f.mu.Unlock()
	if f.promoteFail {
		return nil, status.Error(codes.Unavailable, "fake ingester: promote refused")
	}
	return &rubatopb.HeldResponse{Matched: uint32(len(req.Ids))}, nil
}

func (f *fakeIngester) recorded() ([]*rubatopb.PushBytesRequest, []*rubatopb.HeldFragments) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*rubatopb.PushBytesRequest(nil), f.pushes...), append([]*rubatopb.HeldFragments(nil), f.promotes...)
}

// testCluster is n fake ingesters on a real dskit ring (in-memory KV) and
// a distributor pushing to them through the real ingester client pool.
type testCluster struct {
	ings   []*fakeIngester
	byAddr map[string]*fakeIngester
	ring   *ring.Ring
	d      *Distributor
	reg    *prometheus.Registry
}

func newTestCluster(t testing.TB, n, rf int, cfg Config, tune func(i int, f *fakeIngester)) *testCluster {
	t.Helper()
	c := &testCluster{byAddr: map[string]*fakeIngester{}, reg: prometheus.NewRegistry()}
	desc := ring.NewDesc()
	gen := ring.NewRandomTokenGenerator()
	var taken []uint32
	for i := range n {
		f := &fakeIngester{}
		if tune != nil {
			tune(i, f)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := grpc.NewServer()
		rubatopb.RegisterIngesterServer(srv, f)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		f.addr = lis.Addr().String()
		c.ings = append(c.ings, f)
		c.byAddr[f.addr] = f
		tokens := gen.GenerateTokens(128, taken)
		taken = append(taken, tokens...)
		desc.AddIngester(fmt.Sprintf("ingester-%d", i), f.addr, "", tokens, ring.ACTIVE, time.Now(), false, time.Time{}, nil)
	}
	kvc, closer := consul.NewInMemoryClient(ring.GetCodec(), log.NewNopLogger(), nil)
	t.Cleanup(func() { _ = closer.Close() })
	require.NoError(t, kvc.CAS(context.Background(), client.RingKey, func(any) (any, bool, error) { return desc, true, nil }))
	var rcfg ring.Config
	rcfg.KVStore.Mock = kvc
	rcfg.HeartbeatTimeout = time.Hour
	rcfg.ReplicationFactor = rf
	r, err := ring.NewWithStoreClientAndStrategy(rcfg, client.RingName, client.RingKey, kvc, ring.NewDefaultReplicationStrategy(), nil, log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	require.Eventually(t, func() bool { return r.InstancesCount() == n }, 5*time.Second, 10*time.Millisecond)
	c.ring = r

	pool := client.NewPool(client.PoolConfig{CheckInterval: time.Minute}, r, log.NewNopLogger(), nil)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), pool))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), pool) })

	var lim overrides.Limits
	require.NoError(t, lim.Validate())
	d, err := New(cfg, r, overrides.New(overrides.Config{Defaults: lim}), pool, log.NewNopLogger(), c.reg)
	require.NoError(t, err)
	c.d = d
	return c
}

// push sends n one-span traces through ConsumeRaw and returns its error.
func (c *testCluster) push(t testing.TB, n int) error {
	t.Helper()
	body, err := proto.Marshal(exportRequest(n, 0))
	require.NoError(t, err)
	_, _, _, err = c.d.ConsumeRaw(tenant.WithTenant(context.Background(), builderTenant), body)
	return err
}

// waitAnswered waits until the ingesters have answered n pushes in all:
// replicas slower than the quorum receive the write after Push returns.
func (c *testCluster) waitAnswered(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		got := 0
		for _, f := range c.ings {
			got += int(f.answered.Load())
		}
		return got == n
	}, 5*time.Second, 5*time.Millisecond)
}

// replicas returns, for trace id, the addresses of its replication set in
// the order ring.Get returns them (the builder first).
func (c *testCluster) replicas(t *testing.T, id []byte) []string {
	t.Helper()
	rs, err := c.ring.Get(client.TokenFor(builderTenant, id), ring.WriteNoExtend, nil, nil, nil)
	require.NoError(t, err)
	var out []string
	for _, inst := range rs.Instances {
		out = append(out, inst.Addr)
	}
	return out
}

// copyOf is one fragment as one replica received it.
type copyOf struct {
	addr   string
	hold   bool
	pushID uint64
}

// copies returns every fragment received, by trace ID, from every
// replica's successful or failed push.
func (c *testCluster) copies(t *testing.T) map[string][]copyOf {
	t.Helper()
	out := map[string][]copyOf{}
	for _, f := range c.ings {
		pushes, _ := f.recorded()
		for _, req := range pushes {
			require.Len(t, req.Spans, len(req.Ids))
			if len(req.Hold) != 0 {
				require.Len(t, req.Hold, len(req.Ids), "hold is empty or one per fragment")
			}
			for j, id := range req.Ids {
				out[string(id)] = append(out[string(id)], copyOf{addr: f.addr, hold: len(req.Hold) > 0 && req.Hold[j], pushID: req.PushID})
			}
		}
	}
	return out
}

// promoted returns the (trace ID, pushID) pairs each replica was asked to
// promote, as "hex/pushID" strings.
func (c *testCluster) promoted() map[string][]string {
	out := map[string][]string{}
	for _, f := range c.ings {
		_, promotes := f.recorded()
		for _, p := range promotes {
			for j, id := range p.Ids {
				out[f.addr] = append(out[f.addr], fmt.Sprintf("%x/%d", id, p.PushIDs[j]))
			}
		}
	}
	return out
}

func builderConfig() Config {
	return Config{BuildOnOneReplica: true, PushTimeout: 5 * time.Second}
}

// TestBuilderIsFirstReplica: with replication factor 3, every fragment
// reaches its 3 replicas under one nonzero pushID shared by the request;
// exactly one gets it without hold, and that one is the first instance
// ring.Get returns for the trace. A replica building all it is sent gets
// an empty hold.
func TestBuilderIsFirstReplica(t *testing.T) {
	c := newTestCluster(t, 3, 3, builderConfig(), nil)
	const traces = 60
	require.NoError(t, c.push(t, traces))
	c.waitAnswered(t, 3)

	all := c.copies(t)
	require.Len(t, all, traces)
	var pushID uint64
	builders := map[string]int{}
	held := 0
	for id, copies := range all {
		require.Len(t, copies, 3, "trace %x", id)
		if pushID == 0 {
			pushID = copies[0].pushID
		}
		var building []string
		for _, cp := range copies {
			require.Equal(t, pushID, cp.pushID, "one pushID on every replica of the request")
			if !cp.hold {
				building = append(building, cp.addr)
			} else {
				held++
			}
		}
		require.Len(t, building, 1, "trace %x: exactly one replica builds it", id)
		require.Equal(t, c.replicas(t, []byte(id))[0], building[0], "trace %x: the builder is the first of ring.Get's set", id)
		builders[building[0]]++
	}
	require.NotZero(t, pushID)
	require.Greater(t, len(builders), 1, "builders spread over the ring: %v", builders)
	require.Equal(t, float64(held), counterValue(t, c.d.heldFragments))
	require.Equal(t, 2*traces, held)

	// A second request has a pushID of its own; with a single trace, its
	// builder's request holds nothing and carries no hold at all.
	for _, f := range c.ings {
		f.mu.Lock()
		f.pushes = nil
		f.mu.Unlock()
	}
	require.NoError(t, c.push(t, 1))
	c.waitAnswered(t, 6)
	empty := 0
	for _, f := range c.ings {
		pushes, _ := f.recorded()
		require.Len(t, pushes, 1)
		require.NotZero(t, pushes[0].PushID)
		require.NotEqual(t, pushID, pushes[0].PushID, "each request draws its own pushID")
		if len(pushes[0].Hold) == 0 {
			empty++
		}
	}
	require.Equal(t, 1, empty, "only the builder's request has an empty hold")
}

// TestBuilderFailsPromoted: a replica failing every push is the builder of
// some traces; before Push returns, each of those is promoted, with its
// (id, pushID) pair, on the next replica of its set (which succeeded), and
// nothing else is promoted anywhere. The request succeeds.
func TestBuilderFailsPromoted(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(f *fakeIngester)
	}{
		{"error", func(f *fakeIngester) { f.pushFail = true }},
		// The builder answers after the push timeout: it timed out.
		{"timeout", func(f *fakeIngester) { f.pushDelay = 2 * time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := builderConfig()
			cfg.PushTimeout = 300 * time.Millisecond
			c := newTestCluster(t, 3, 3, cfg, func(i int, f *fakeIngester) {
				if i == 0 {
					tc.fail(f)
				}
			})
			bad := c.ings[0].addr
			const traces = 60
			require.NoError(t, c.push(t, traces))
			got := c.promoted() // read at once: promotion happens before Push returns

			want := map[string][]string{}
			all := c.copies(t)
			for id, copies := range all {
				reps := c.replicas(t, []byte(id))
				if reps[0] != bad {
					continue
				}
				want[reps[1]] = append(want[reps[1]], fmt.Sprintf("%x/%d", id, copies[0].pushID))
			}
			require.NotEmpty(t, want, "the failing replica builds some traces")
			require.NotContains(t, got, bad)
			require.Len(t, got, len(want))
			for addr, pairs := range want {
				require.ElementsMatch(t, pairs, got[addr], "promoted on %s", addr)
			}
			require.Equal(t, float64(len(want)), counterValue(t, c.d.promotions.WithLabelValues("ok")), "one PromoteHeld per replica")
			require.Zero(t, counterValue(t, c.d.promotions.WithLabelValues("failed")))
			for _, f := range c.ings {
				f.mu.Lock()
				for _, ten := range f.tenants {
					require.Equal(t, []string{builderTenant}, ten, "PromoteHeld carries the tenant once")
				}
				f.mu.Unlock()
			}
		})
	}
}

// TestBuilderAndPromotionsFail: the builder fails its push and both
// replicas holding its traces fail PromoteHeld: the request fails with
// Unavailable (retryable), after each held trace was tried on both.
func TestBuilderAndPromotionsFail(t *testing.T) {
	c := newTestCluster(t, 3, 3, builderConfig(), func(i int, f *fakeIngester) {
		f.pushFail = i == 0
		f.promoteFail = i != 0
	})
	err := c.push(t, 60)
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)

	got := c.promoted()
	n := 0
	for id, copies := range c.copies(t) {
		reps := c.replicas(t, []byte(id))
		if reps[0] != c.ings[0].addr {
			continue
		}
		n++
		pair := fmt.Sprintf("%x/%d", id, copies[0].pushID)
		require.Contains(t, got[reps[1]], pair, "tried first on the next replica")
		require.Contains(t, got[reps[2]], pair, "then on the last")
	}
	require.NotZero(t, n)
	require.NotEmpty(t, got[c.ings[1].addr])
	require.NotEmpty(t, got[c.ings[2].addr])
	require.Positive(t, counterValue(t, c.d.promotions.WithLabelValues("failed")))
	require.Zero(t, counterValue(t, c.d.promotions.WithLabelValues("ok")))
}

// TestSlowBuilderAwaited: the builder of some traces answers well after
// the other two replicas (the quorum) but within the push timeout; Push
// returns only after the builder has answered, and promotes nothing.
func TestSlowBuilderAwaited(t *testing.T) {
	c := newTestCluster(t, 3, 3, builderConfig(), func(i int, f *fakeIngester) {
		if i == 0 {
			f.pushDelay = minBuilderWait / 2
		}
	})
	const traces = 60
	require.NoError(t, c.push(t, traces))
	require.EqualValues(t, 1, c.ings[0].answered.Load(), "Push returned before the slow builder answered")
	require.Empty(t, c.promoted())
	c.waitAnswered(t, 3)
	builds := 0
	for id := range c.copies(t) {
		if c.replicas(t, []byte(id))[0] == c.ings[0].addr {
			builds++
		}
	}
	require.NotZero(t, builds, "the slow replica builds some traces")
}

// TestNoHold: at replication factor 1, and with build_on_one_replica off
// at replication factor 3, pushes carry no pushID and no hold.
func TestNoHold(t *testing.T) {
	for _, tc := range []struct {
		name     string
		n, rf    int
		cfg      Config
		replicas int
	}{
		{"rf1", 1, 1, builderConfig(), 1},
		{"off", 3, 3, Config{PushTimeout: 5 * time.Second}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, tc.n, tc.rf, tc.cfg, nil)
			const traces = 20
			require.NoError(t, c.push(t, traces))
			c.waitAnswered(t, tc.n)
			all := c.copies(t)
			require.Len(t, all, traces)
			for id, copies := range all {
				require.Len(t, copies, tc.replicas, "trace %x", id)
				for _, cp := range copies {
					require.Zero(t, cp.pushID)
					require.False(t, cp.hold)
				}
			}
			for _, f := range c.ings {
				pushes, _ := f.recorded()
				for _, p := range pushes {
					require.Empty(t, p.Hold)
				}
			}
			require.Zero(t, counterValue(t, c.d.heldFragments))
		})
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

// TestPromoteSkipsFailedReplicas: promotion goes, for each fragment, to the
// first replica after its builder whose push succeeded, never to one whose
// push failed or has not answered. With ring.WriteNoExtend at replication
// factor 3 the quorum already implies that both holders succeeded when the
// builder failed, so the replication sets are written by hand here, as a
// larger set (an instance joining or leaving) can make them.
func TestPromoteSkipsFailedReplicas(t *testing.T) {
	c := newTestCluster(t, 3, 3, builderConfig(), nil)
	a, b, cc := c.ings[0].addr, c.ings[1].addr, c.ings[2].addr
	rec := &replicaRecorder{calls: map[string]*replicaCall{}}
	for _, addr := range []string{a, b, cc} {
		rec.calls[addr] = &replicaCall{done: make(chan struct{})}
	}
	// fragment 0: builder a, then b (failed), then c; fragment 1: builder
	// a, then c, then b; fragment 2: builder b (failed), then a (no answer
	// yet), then c.
	sets := [][]string{{a, b, cc}, {a, cc, b}, {b, a, cc}}
	rec.start = []int32{0}
	for _, s := range sets {
		rec.addrs = append(rec.addrs, s...)
		rec.start = append(rec.start, int32(len(rec.addrs)))
	}
	rec.finished(b, status.Error(codes.Unavailable, "down"))
	rec.finished(cc, nil)
	frags := make([]otlpwire.Fragment, len(sets))
	for i := range frags {
		frags[i].ID[0], frags[i].ID[15] = 9, byte(i)
	}
	const pushID = 42
	// a has not answered: ensureBuilt waits for it until pushCtx ends.
	pushCtx, cancel := context.WithTimeout(client.WithTenant(context.Background(), builderTenant), 100*time.Millisecond)
	defer cancel()
	err := c.d.ensureBuilt(pushCtx, builderTenant, rec, frags, pushID, func(int) bool { return false }, time.Second)
	require.NoError(t, err)
	require.Equal(t, map[string][]string{
		cc: {fmt.Sprintf("%x/42", frags[0].ID[:]), fmt.Sprintf("%x/42", frags[1].ID[:]), fmt.Sprintf("%x/42", frags[2].ID[:])},
	}, c.promoted())

	// A refused fragment is not acknowledged, so not promoted.
	c.ings[2].mu.Lock()
	c.ings[2].promotes = nil
	c.ings[2].mu.Unlock()
	err = c.d.ensureBuilt(pushCtx, builderTenant, rec, frags, pushID, func(i int) bool { return i != 1 }, time.Second)
	require.NoError(t, err)
	require.Equal(t, map[string][]string{cc: {fmt.Sprintf("%x/42", frags[1].ID[:])}}, c.promoted())
}

// TestPromoteFallsBackToNextReplica: the builder fails its push and one
// holder fails PromoteHeld; the traces it was asked for are promoted on
// the remaining holder, and the request succeeds.
func TestPromoteFallsBackToNextReplica(t *testing.T) {
	c := newTestCluster(t, 3, 3, builderConfig(), func(i int, f *fakeIngester) {
		f.pushFail = i == 0
		f.promoteFail = i == 1
	})
	require.NoError(t, c.push(t, 60))
	got := c.promoted()
	var viaFailed, direct int
	for id, copies := range c.copies(t) {
		reps := c.replicas(t, []byte(id))
		if reps[0] != c.ings[0].addr {
			continue
		}
		pair := fmt.Sprintf("%x/%d", id, copies[0].pushID)
		require.Contains(t, got[c.ings[2].addr], pair, "promoted on the replica that can")
		if reps[1] == c.ings[1].addr {
			require.Contains(t, got[c.ings[1].addr], pair, "tried first on the next replica")
			viaFailed++
		} else {
			require.NotContains(t, got[c.ings[1].addr], pair)
			direct++
		}
	}
	require.NotZero(t, viaFailed)
	require.Equal(t, 1.0, counterValue(t, c.d.promotions.WithLabelValues("failed")))
	wantOK := 1.0 // the second round, to the last replica
	if direct > 0 {
		wantOK++ // the first round's call to it
	}
	require.Equal(t, wantOK, counterValue(t, c.d.promotions.WithLabelValues("ok")))
	t.Logf("%d traces promoted after a failed promotion, %d directly", viaFailed, direct)
}

// BenchmarkPushRF3 pushes requests of 100 one-span traces through
// ConsumeRaw to three gRPC ingesters on 127.0.0.1 at replication factor 3,
// with one builder per trace and with every replica building: the cost of
// the distributor's side of build_on_one_replica (push IDs, hold, waiting
// for the builders).
func BenchmarkPushRF3(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("build_on_one_replica=%v", on), func(b *testing.B) {
			cfg := builderConfig()
			cfg.BuildOnOneReplica = on
			c := newTestCluster(b, 3, 3, cfg, func(_ int, f *fakeIngester) { f.forget = true })
			body, err := proto.Marshal(exportRequest(100, 50))
			require.NoError(b, err)
			ctx := tenant.WithTenant(context.Background(), builderTenant)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for range b.N {
				if _, _, _, err := c.d.ConsumeRaw(ctx, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestBuildOnOneReplicaConfig: on by default (its flag), off by its YAML
// key or its flag.
func TestBuildOnOneReplicaConfig(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlagsAndApplyDefaults("distributor.", fs)
	require.True(t, cfg.BuildOnOneReplica)
	require.NoError(t, yaml.Unmarshal([]byte("build_on_one_replica: false\n"), &cfg))
	require.False(t, cfg.BuildOnOneReplica)
	require.NoError(t, fs.Parse([]string{"-distributor.build-on-one-replica=true"}))
	require.True(t, cfg.BuildOnOneReplica)
}

// TestBuilderSlowerThanWaitPromoted: a builder that answers long after the
// quorum (a stalled ingester the ring still counts healthy) costs the
// write minBuilderWait, not the push timeout: Push returns before it
// answers, with its fragments promoted on a holder.
func TestBuilderSlowerThanWaitPromoted(t *testing.T) {
	c := newTestCluster(t, 3, 3, builderConfig(), func(i int, f *fakeIngester) {
		if i == 0 {
			f.pushDelay = 20 * minBuilderWait
		}
	})
	start := time.Now()
	require.NoError(t, c.push(t, 60))
	require.Less(t, time.Since(start), 20*minBuilderWait, "Push waited for the stalled builder")
	require.Zero(t, c.ings[0].answered.Load())
	require.NotEmpty(t, c.promoted(), "its fragments are built elsewhere")
	require.NotContains(t, c.promoted(), c.ings[0].addr)
}

// TestRefusedFragmentsReleased: fragments their builder refused (a limit)
// are reported refused and released on the replicas holding them, so no
// hold timeout stores what the client was told is refused.
func TestRefusedFragmentsReleased(t *testing.T) {
	c := newTestCluster(t, 3, 3, builderConfig(), func(i int, f *fakeIngester) {
		if i == 0 {
			f.refuseBuilt = true
		}
	})
	require.NoError(t, c.push(t, 60))
	c.waitAnswered(t, 3)
	want := map[string][]string{}
	for id, copies := range c.copies(t) {
		reps := c.replicas(t, []byte(id))
		if reps[0] != c.ings[0].addr {
			continue
		}
		for _, h := range reps[1:] {
			want[h] = append(want[h], fmt.Sprintf("%x/%d", id, copies[0].pushID))
		}
	}
	require.NotEmpty(t, want)
	require.Empty(t, c.promoted(), "refused fragments are not promoted")
	require.Eventually(t, func() bool {
		for addr, pairs := range want {
			f := c.byAddr[addr]
			f.mu.Lock()
			var got []string
			for _, r := range f.releases {
				for j, id := range r.Ids {
					got = append(got, fmt.Sprintf("%x/%d", id, r.PushIDs[j]))
				}
			}
			f.mu.Unlock()
			if !assert.ElementsMatch(new(testing.T), pairs, got) {
				return false
			}
		}
		return true
	}, 5*time.Second, 10*time.Millisecond, "the holders of the refused fragments are told to release them")
}
