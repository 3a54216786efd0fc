package frontend

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/querier"
)

// ErrStopped is returned by Dequeue once the queue is closed.
var ErrStopped = errors.New("frontend: queue stopped")

// task is one job of a query waiting for, or running on, a worker.
type task struct {
	ctx     context.Context
	tenant  string
	job     *rubatopb.QueryJob
	retries int // times it was given back after its worker died
	queued  time.Time

	elem *list.Element // position in its tenant's queue; nil when not queued
	once sync.Once
	done chan answer // buffered 1; written once
}

type answer struct {
	msg *rubatopb.WorkerMessage
	err error
}

func newTask(ctx context.Context, tenant string, job *rubatopb.QueryJob) *task {
	return &task{ctx: ctx, tenant: tenant, job: job, done: make(chan answer, 1)}
}

// finish delivers the task's outcome; later calls do nothing.
func (t *task) finish(msg *rubatopb.WorkerMessage, err error) {
	t.once.Do(func() { t.done <- answer{msg, err} })
}

// Queue holds the jobs waiting for a worker, one FIFO per tenant, and hands
// them out round-robin over the tenants that have any, so a tenant with a
// thousand jobs queued delays another tenant's job by at most one job per
// tenant ahead of it in the round.
//
// Concurrency: every method is safe for concurrent use.
type Queue struct {
	maxPerTenant int

	mu      sync.Mutex
	tenants map[string]*list.List
	order   []string // tenants with queued jobs; order[0] is served next
	wake    chan struct{}
	closed  bool

	length    *prometheus.GaugeVec
	discarded *prometheus.CounterVec
}

// NewQueue returns a queue refusing more than maxPerTenant queued jobs of
// one tenant (0: no limit).
func NewQueue(maxPerTenant int, reg prometheus.Registerer) *Queue {
	q := &Queue{
		maxPerTenant: maxPerTenant,
		tenants:      map[string]*list.List{},
		wake:         make(chan struct{}),
		length: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rubato_query_frontend_queue_length", Help: "Jobs waiting for a querier, by tenant."}, []string{"tenant"}),
		discarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_query_frontend_discarded_requests_total", Help: "Jobs refused because the tenant had max_outstanding_per_tenant queued (answered 429)."}, []string{"tenant"}),
	}
	if reg != nil {
		reg.MustRegister(q.length, q.discarded)
	}
	return q
}

// Enqueue appends t to its tenant's queue, or refuses it with an error
// wrapping querier.ErrTooManyRequests when the tenant already has
// maxPerTenant jobs queued.
func (q *Queue) Enqueue(t *task) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrStopped
	}
	l := q.tenants[t.tenant]
	if q.maxPerTenant > 0 && l != nil && l.Len() >= q.maxPerTenant {
		q.discarded.WithLabelValues(t.tenant).Inc()
		return fmt.Errorf("%w: tenant %q has %d jobs queued (query_frontend.max_outstanding_per_tenant)", querier.ErrTooManyRequests, t.tenant, l.Len())
	}
	t.queued = time.Now()
	q.push(t, false)
	return nil
}

// Requeue puts t back at the front of its tenant's queue (a retry: the
// limit does not apply, the job was admitted already).
func (q *Queue) Requeue(t *task) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrStopped
	}
	q.push(t, true)
	return nil
}

func (q *Queue) push(t *task, front bool) {
	l := q.tenants[t.tenant]
	if l == nil {
		l = list.New()
		q.tenants[t.tenant] = l
		q.order = append(q.order, t.tenant)
	}
	if front {
		t.elem = l.PushFront(t)
	} else {
		t.elem = l.PushBack(t)
	}
	q.length.WithLabelValues(t.tenant).Set(float64(l.Len()))
	close(q.wake)
	q.wake = make(chan struct{})
}

// Remove takes t out of the queue if it is still there (its query ended).
func (q *Queue) Remove(t *task) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if t.elem == nil {
		return
	}
	q.take(t)
}

// take unlinks t; q.mu is held and t is queued.
func (q *Queue) take(t *task) {
	l := q.tenants[t.tenant]
	l.Remove(t.elem)
	t.elem = nil
	q.length.WithLabelValues(t.tenant).Set(float64(l.Len()))
	if l.Len() > 0 {
		return
	}
	delete(q.tenants, t.tenant)
	for i, name := range q.order {
		if name == t.tenant {
			q.order = append(q.order[:i], q.order[i+1:]...)
			break
		}
	}
}

// Dequeue waits for a job and returns the oldest of the next tenant in the
// round. Jobs whose query has ended are dropped on the way. It returns
// ctx's error when ctx ends first and ErrStopped once the queue is closed.
func (q *Queue) Dequeue(ctx context.Context) (*task, error) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, ErrStopped
		}
		for len(q.order) > 0 {
			tenant := q.order[0]
			t := q.tenants[tenant].Front().Value.(*task)
			q.take(t)
			if t.ctx.Err() != nil {
				// Dropped without using the tenant's turn.
				t.finish(nil, t.ctx.Err())
				continue
			}
			if q.tenants[tenant] != nil {
				// The tenant still has jobs: to the back of the round.
				q.order = append(q.order[1:], tenant)
			}
			q.mu.Unlock()
			return t, nil
		}
		wake := q.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Len returns the number of queued jobs of tenant.
func (q *Queue) Len(tenant string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if l := q.tenants[tenant]; l != nil {
		return l.Len()
	}
	return 0
}

// Close wakes every Dequeue with ErrStopped and fails the queued jobs.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	for _, l := range q.tenants {
		for e := l.Front(); e != nil; e = e.Next() {
			t := e.Value.(*task)
			t.elem = nil
			t.finish(nil, ErrStopped)
		}
	}
	q.tenants = map[string]*list.List{}
	q.order = nil
	close(q.wake)
}
