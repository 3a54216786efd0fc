package frontend

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/querier"
)

func tagJob(name string) *rubatopb.QueryJob {
	return &rubatopb.QueryJob{Kind: &rubatopb.QueryJob_Tags{Tags: &rubatopb.SearchTagsRequest{Query: name}}}
}

// value reads a gauge or counter.
func value(t testing.TB, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

func jobName(t *task) string { return t.tenant + ":" + t.job.GetTags().GetQuery() }

func mustDequeue(t *testing.T, q *Queue) *task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tk, err := q.Dequeue(ctx)
	require.NoError(t, err)
	return tk
}

// A tenant with many jobs queued does not starve the others: tenants are
// served one job per turn, in the order they first queued, and each
// tenant's jobs in FIFO order.
func TestQueueRoundRobinAcrossTenants(t *testing.T) {
	q := NewQueue(0, prometheus.NewRegistry())
	ctx := context.Background()
	for i := range 5 {
		require.NoError(t, q.Enqueue(newTask(ctx, "a", tagJob(fmt.Sprint(i)))))
	}
	require.NoError(t, q.Enqueue(newTask(ctx, "b", tagJob("0"))))
	require.NoError(t, q.Enqueue(newTask(ctx, "b", tagJob("1"))))
	require.NoError(t, q.Enqueue(newTask(ctx, "c", tagJob("0"))))

	var got []string
	for range 8 {
		got = append(got, jobName(mustDequeue(t, q)))
	}
	require.Equal(t, []string{"a:0", "b:0", "c:0", "a:1", "b:1", "a:2", "a:3", "a:4"}, got)
	require.Equal(t, 0, q.Len("a"))

	// A tenant arriving while another has a backlog joins the round at
	// its end: it waits at most one job per tenant ahead of it.
	for i := 5; i < 9; i++ {
		require.NoError(t, q.Enqueue(newTask(ctx, "a", tagJob(fmt.Sprint(i)))))
	}
	require.NoError(t, q.Enqueue(newTask(ctx, "b", tagJob("2"))))
	require.Equal(t, "a:5", jobName(mustDequeue(t, q)))
	require.NoError(t, q.Enqueue(newTask(ctx, "d", tagJob("0"))))
	got = got[:0]
	for range 5 {
		got = append(got, jobName(mustDequeue(t, q)))
	}
	require.Equal(t, []string{"b:2", "a:6", "d:0", "a:7", "a:8"}, got)
}

// Served fairly, each of N busy tenants gets 1/N of the dequeues, whatever
// its backlog.
func TestQueueFairShareUnderBacklog(t *testing.T) {
	q := NewQueue(0, nil)
	ctx := context.Background()
	backlog := map[string]int{"big": 1000, "mid": 100, "small": 30}
	for tenant, n := range backlog {
		for i := range n {
			require.NoError(t, q.Enqueue(newTask(ctx, tenant, tagJob(fmt.Sprint(i)))))
		}
	}
	served := map[string]int{}
	for range 90 {
		served[mustDequeue(t, q).tenant]++
	}
	require.Equal(t, map[string]int{"big": 30, "mid": 30, "small": 30}, served)
}

func TestQueueMaxOutstandingPerTenant(t *testing.T) {
	reg := prometheus.NewRegistry()
	q := NewQueue(2, reg)
	ctx := context.Background()
	require.NoError(t, q.Enqueue(newTask(ctx, "a", tagJob("0"))))
	require.NoError(t, q.Enqueue(newTask(ctx, "a", tagJob("1"))))
	err := q.Enqueue(newTask(ctx, "a", tagJob("2")))
	require.ErrorIs(t, err, querier.ErrTooManyRequests)
	require.Contains(t, err.Error(), "max_outstanding_per_tenant")
	// Other tenants have their own allowance.
	require.NoError(t, q.Enqueue(newTask(ctx, "b", tagJob("0"))))
	require.Equal(t, 2.0, value(t, q.length.WithLabelValues("a")))
	require.Equal(t, 1.0, value(t, q.discarded.WithLabelValues("a")))

	// A retry is admitted beyond the limit, at the front of its tenant.
	retry := newTask(ctx, "a", tagJob("retry"))
	require.NoError(t, q.Requeue(retry))
	require.Equal(t, 3, q.Len("a"))
	require.Equal(t, "a:retry", jobName(mustDequeue(t, q)))

	// Once the queue drains, the tenant may queue again.
	mustDequeue(t, q)
	mustDequeue(t, q)
	require.NoError(t, q.Enqueue(newTask(ctx, "a", tagJob("3"))))
}

// A job whose query ended leaves the queue (Remove, as the frontend does
// from the context), and one that ended unnoticed is dropped by Dequeue
// and answered with the context's error.
func TestQueueCancellation(t *testing.T) {
	q := NewQueue(0, prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	dead := newTask(ctx, "a", tagJob("dead"))
	removed := newTask(ctx, "a", tagJob("removed"))
	live := newTask(context.Background(), "a", tagJob("live"))
	other := newTask(context.Background(), "b", tagJob("other"))
	for _, tk := range []*task{dead, removed, live, other} {
		require.NoError(t, q.Enqueue(tk))
	}
	q.Remove(removed)
	q.Remove(removed) // twice is harmless
	require.Equal(t, 2, q.Len("a"))
	cancel()
	got := mustDequeue(t, q)
	require.Equal(t, "a:live", jobName(got))
	select {
	case a := <-dead.done:
		require.ErrorIs(t, a.err, context.Canceled)
	default:
		t.Fatal("a cancelled job was dropped without an answer")
	}
	require.Equal(t, "b:other", jobName(mustDequeue(t, q)))
	require.Equal(t, 0, q.Len("a"))
	require.Equal(t, 0.0, value(t, q.length.WithLabelValues("a")))

	// Removing the last job of a tenant takes it out of the round.
	x := newTask(context.Background(), "x", tagJob("0"))
	require.NoError(t, q.Enqueue(x))
	require.NoError(t, q.Enqueue(newTask(context.Background(), "y", tagJob("0"))))
	q.Remove(x)
	require.Equal(t, "y:0", jobName(mustDequeue(t, q)))
}

func TestQueueDequeueWaitsAndStops(t *testing.T) {
	q := NewQueue(0, nil)
	got := make(chan *task)
	go func() {
		tk, err := q.Dequeue(context.Background())
		if err == nil {
			got <- tk
		}
		close(got)
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, q.Enqueue(newTask(context.Background(), "a", tagJob("late"))))
	require.Equal(t, "a:late", jobName(<-got))

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	go func() { _, err := q.Dequeue(ctx); errc <- err }()
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)

	queued := newTask(context.Background(), "a", tagJob("0"))
	require.NoError(t, q.Enqueue(queued))
	go func() {
		// Drain the queued job, then wait for Close.
		if _, err := q.Dequeue(context.Background()); err != nil {
			errc <- err
			return
		}
		_, err := q.Dequeue(context.Background())
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	q.Close()
	require.ErrorIs(t, <-errc, ErrStopped)
	require.ErrorIs(t, q.Enqueue(newTask(context.Background(), "a", tagJob("1"))), ErrStopped)

	// Close answers the jobs still queued.
	q2 := NewQueue(0, nil)
	waiting := newTask(context.Background(), "a", tagJob("0"))
	require.NoError(t, q2.Enqueue(waiting))
	q2.Close()
	require.ErrorIs(t, (<-waiting.done).err, ErrStopped)
	q2.Remove(waiting) // after Close: harmless
}

// BenchmarkQueue is one job through the queue (Enqueue then Dequeue) with
// 100 tenants queued, the frontend's per-job overhead besides gRPC.
func BenchmarkQueue(b *testing.B) {
	q := NewQueue(0, prometheus.NewRegistry())
	ctx := context.Background()
	tenants := make([]string, 100)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant-%d", i)
		for range 10 {
			_ = q.Enqueue(newTask(ctx, tenants[i], tagJob("")))
		}
	}
	job := tagJob("")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := q.Enqueue(newTask(ctx, tenants[i%len(tenants)], job)); err != nil {
			b.Fatal(err)
		}
		if _, err := q.Dequeue(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
