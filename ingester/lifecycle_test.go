package ingester

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

func ringDesc(t *testing.T, ing *Ingester) *ring.Desc {
	t.Helper()
	v, err := ing.lifecycler.KVStore.Get(context.Background(), ing.lifecycler.RingKey)
	require.NoError(t, err)
	if v == nil {
		return ring.NewDesc()
	}
	return v.(*ring.Desc)
}

// TestForgetDeadInstances: an instance whose heartbeat is older than
// auto_forget_unhealthy_periods heartbeat timeouts leaves the ring; a
// merely late one, and the ingester itself, stay.
func TestForgetDeadInstances(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{}, func(c *Config) {
		c.AutoForgetUnhealthyPeriods = 2
		c.LifecyclerConfig.HeartbeatTimeout = time.Minute
	})
	// The lifecycler registers from its loop, after it reports Running.
	require.Eventually(t, func() bool {
		_, ok := ringDesc(t, ing).Ingesters[ing.lifecycler.ID]
		return ok
	}, 5*time.Second, 10*time.Millisecond)
	now := time.Now()
	require.NoError(t, ing.lifecycler.KVStore.CAS(context.Background(), ing.lifecycler.RingKey, func(in any) (any, bool, error) {
		d := ring.GetOrCreateRingDesc(in)
		d.AddIngester("dead", "127.0.0.2:1", "", []uint32{1}, ring.ACTIVE, now.Add(-time.Hour), false, time.Time{}, nil)
		d.Ingesters["dead"] = withTimestamp(d.Ingesters["dead"], now.Add(-3*time.Minute))
		d.AddIngester("late", "127.0.0.3:1", "", []uint32{2}, ring.ACTIVE, now.Add(-time.Hour), false, time.Time{}, nil)
		d.Ingesters["late"] = withTimestamp(d.Ingesters["late"], now.Add(-90*time.Second))
		return d, true, nil
	}))
	t.Cleanup(func() {
		_ = ing.lifecycler.KVStore.CAS(context.Background(), ing.lifecycler.RingKey, func(in any) (any, bool, error) {
			d := ring.GetOrCreateRingDesc(in)
			d.RemoveIngester("late")
			return d, true, nil
		})
	})
	ing.forgetDead(context.Background())
	d := ringDesc(t, ing)
	require.NotContains(t, d.Ingesters, "dead", "3 min without heartbeat > 2 × 1 min")
	require.Contains(t, d.Ingesters, "late", "90 s without heartbeat < 2 × 1 min")
	require.Contains(t, d.Ingesters, ing.lifecycler.ID)
}

func withTimestamp(d ring.InstanceDesc, at time.Time) ring.InstanceDesc {
	d.Timestamp = at.Unix()
	return d
}

// TestFlushAllOnShutdown: with flush_all_on_shutdown, a clean stop uploads
// every trace held (as a block whose meta.json is in the backend) before
// the ingester leaves the ring; without it, nothing is uploaded and the
// WAL keeps the trace for the next start.
func TestFlushAllOnShutdown(t *testing.T) {
	for _, flush := range []bool{true, false} {
		store := inmem.New()
		dir := t.TempDir()
		ing := newTestIngester(t, dir, store, overrides.Limits{}, func(c *Config) { c.FlushAllOnShutdown = flush })
		pushTrace(t, ing, 7, 3)
		require.NoError(t, services.StopAndAwaitTerminated(context.Background(), ing))
		blocks, err := store.List(context.Background(), "t1")
		require.NoError(t, err)
		if !flush {
			require.Empty(t, blocks, "nothing uploaded without flush_all_on_shutdown")
			ing = newTestIngester(t, dir, store, overrides.Limits{})
			require.Equal(t, 3, find(t, ing, 7), "the WAL kept the trace")
			continue
		}
		require.Len(t, blocks, 1, "one block uploaded on leaving")
		_, err = store.Size(context.Background(), strings.TrimSuffix(blocks[0], "/")+"/meta.json")
		require.NoError(t, err, "the block is complete: meta.json written")
		require.NotContains(t, ringDesc(t, ing).Ingesters, ing.lifecycler.ID, "left the ring")
	}
}

// TestInflightPushBytes: a push that would take the ingester over
// max_inflight_push_bytes is refused with ResourceExhausted and counted,
// and appends nothing; once the bytes in flight drop, pushes pass.
func TestInflightPushBytes(t *testing.T) {
	ing := newTestIngester(t, t.TempDir(), inmem.New(), overrides.Limits{}, func(c *Config) { c.MaxInflightPushBytes = 1000 })
	ing.inflight.Store(990) // other pushes being appended
	tid := make([]byte, 16)
	tid[0] = 9
	_, err := ing.PushBytes(tenantCtx(), &rubatopb.PushBytesRequest{Ids: [][]byte{tid}, Traces: [][]byte{make([]byte, 20)}, Spans: []uint32{1}})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.EqualValues(t, 990, ing.inflight.Load())
	require.Zero(t, find(t, ing, 9))
	ing.inflight.Store(0)
	pushTrace(t, ing, 9, 2)
	require.Equal(t, 2, find(t, ing, 9))
	require.Zero(t, ing.inflight.Load())
}
