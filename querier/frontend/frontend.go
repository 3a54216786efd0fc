package frontend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/blocklist"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/querier"
)

// Frontend splits queries into jobs, queues them per tenant and hands them
// to the queriers' workers over the Frontend gRPC service. It implements
// querier.Searcher and querier.TraceFinder, so the querier package's HTTP
// and streaming handlers serve it unchanged.
type Frontend struct {
	services.Service
	rubatopb.UnimplementedFrontendServer

	cfg       querier.FrontendConfig
	pollEvery time.Duration
	poller    *blocklist.Poller
	queue     *Queue
	limits    querier.Limits // nil: no tenant has max_bytes_per_trace
	logger    log.Logger
	nextID    atomic.Uint64

	retries   prometheus.Counter
	workers   prometheus.Gauge
	jobs      *prometheus.CounterVec
	queueTime prometheus.Histogram
}

var (
	_ querier.Searcher    = (*Frontend)(nil)
	_ querier.TraceFinder = (*Frontend)(nil)
)

// New builds a frontend reading the blocklist of store every pollEvery;
// limits (may be nil) give each tenant's max_bytes_per_trace.
func New(cfg querier.FrontendConfig, store backend.Backend, pollEvery time.Duration, limits querier.Limits, logger log.Logger, reg prometheus.Registerer) (*Frontend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Frontend{
		cfg: cfg, pollEvery: pollEvery,
		poller: blocklist.New(blocklist.Config{Component: "query-frontend"}, store, logger, reg),
		queue:  NewQueue(cfg.MaxOutstandingPerTenant, reg),
		limits: limits,
		logger: log.With(logger, "component", "query-frontend"),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_query_frontend_retries_total", Help: "Jobs given to another querier after the one running them went away."}),
		workers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rubato_query_frontend_connected_workers", Help: "Querier worker streams connected to this frontend."}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_query_frontend_jobs_total", Help: "Jobs finished by this frontend, by kind and outcome (ok, error, cancelled, refused)."}, []string{"kind", "outcome"}),
		queueTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rubato_query_frontend_queue_duration_seconds", Help: "Time jobs wait in the queue for a querier.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}),
	}
	if reg != nil {
		reg.MustRegister(f.retries, f.workers, f.jobs, f.queueTime)
	}
	f.Service = services.NewBasicService(f.starting, f.running, f.stopping)
	return f, nil
}

// Register serves the Frontend service (the workers' endpoint) on g.
func (f *Frontend) Register(g *grpc.Server) { rubatopb.RegisterFrontendServer(g, f) }

// PollNow refreshes the blocklist.
func (f *Frontend) PollNow(ctx context.Context) error { return f.poller.Poll(ctx) }

func (f *Frontend) starting(ctx context.Context) error {
	if err := f.poller.Poll(ctx); err != nil {
		// Start anyway: ingester jobs still work, and the next poll may.
		level.Error(f.logger).Log("msg", "initial blocklist poll failed", "err", err)
	}
	return nil
}

func (f *Frontend) running(ctx context.Context) error {
	f.poller.Run(ctx, f.pollEvery)
	return nil
}

func (f *Frontend) stopping(error) error {
	f.queue.Close()
	return nil
}

// do queues job for tenant and waits for its answer, or for ctx. A job
// whose worker goes away is retried on another up to max_retries times.
// A job refused by the tenant's queue limit fails with an error wrapping
// querier.ErrTooManyRequests; a job the querier refused as invalid with
// one wrapping querier.ErrInvalidQuery.
func (f *Frontend) do(ctx context.Context, tenant, kind string, job *rubatopb.QueryJob) (*rubatopb.WorkerMessage, error) {
	job.Tenant = tenant
	t := newTask(ctx, tenant, job)
	if err := f.queue.Enqueue(t); err != nil {
		f.jobs.WithLabelValues(kind, "refused").Inc()
		return nil, err
	}
	// The query ended (limit reached, client gone): the job leaves the
	// queue at once, and a worker running it is told to stop.
	stop := context.AfterFunc(ctx, func() { f.queue.Remove(t) })
	defer stop()
	var a answer
	select {
	case a = <-t.done:
	case <-ctx.Done():
		f.jobs.WithLabelValues(kind, "cancelled").Inc()
		return nil, ctx.Err()
	}
	switch {
	case ctx.Err() != nil:
		// The query ended while the answer came: whatever it says, the
		// job was cancelled.
		f.jobs.WithLabelValues(kind, "cancelled").Inc()
		return nil, ctx.Err()
	case a.err != nil:
		f.jobs.WithLabelValues(kind, "error").Inc()
		return nil, a.err
	case a.msg.GetError() != "" || a.msg.GetErrorCode() != 0:
		f.jobs.WithLabelValues(kind, "error").Inc()
		code := codes.Code(a.msg.GetErrorCode())
		if code == codes.InvalidArgument {
			return nil, fmt.Errorf("%w: %s", querier.ErrInvalidQuery, a.msg.GetError())
		}
		return nil, status.Error(code, a.msg.GetError())
	}
	f.jobs.WithLabelValues(kind, "ok").Inc()
	return a.msg, nil
}

// Process serves one worker stream: it gives the worker one job at a time,
// waits for its answer, and on a broken stream gives the running job to
// another worker.
func (f *Frontend) Process(stream grpc.BidiStreamingServer[rubatopb.WorkerMessage, rubatopb.FrontendMessage]) error {
	f.workers.Inc()
	defer f.workers.Dec()
	// ctx also ends when the worker's side does: a worker draining this
	// frontend closes its side (io.EOF) with no job in flight, and must
	// not wait for the next job to learn that the stream is over.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	answers := make(chan *rubatopb.WorkerMessage)
	broken := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				broken <- err
				cancel()
				return
			}
			select {
			case answers <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		t, err := f.queue.Dequeue(ctx)
		if errors.Is(err, ErrStopped) {
			return status.Error(codes.Unavailable, "query-frontend stopping")
		}
		if err != nil {
			select {
			case berr := <-broken:
				if errors.Is(berr, io.EOF) {
					return nil // the worker drained this stream
				}
			default:
			}
			return err // the worker went away while idle
		}
		f.queueTime.Observe(time.Since(t.queued).Seconds())
		id := f.nextID.Add(1)
		if err := stream.Send(&rubatopb.FrontendMessage{JobId: id, Job: t.job}); err != nil {
			f.requeue(t, false)
			return err
		}
		if err := f.await(stream, t, id, answers, broken); err != nil {
			if errors.Is(err, errWorkerClosed) {
				return nil
			}
			return err
		}
	}
}

// errWorkerClosed ends a stream whose worker closed its side (io.EOF).
var errWorkerClosed = errors.New("worker closed its side of the stream")

// await waits for the worker's answer to job id of t. When t's query ends
// first, it tells the worker to cancel and still waits for the answer, so
// the stream carries one job at a time. A broken stream retries t.
func (f *Frontend) await(stream grpc.BidiStreamingServer[rubatopb.WorkerMessage, rubatopb.FrontendMessage],
	t *task, id uint64, answers <-chan *rubatopb.WorkerMessage, broken <-chan error,
) error {
	cancelled := t.ctx.Done() // nil once we asked the worker to cancel
	asked := false
	for {
		select {
		case m := <-answers:
			if m.GetJobId() != id {
				continue // late answer to a job already given up
			}
			if !asked && codes.Code(m.GetErrorCode()) == codes.Canceled {
				// Cancelled by the querier, not by us: it is shutting
				// down. Another querier runs the job, and this stream
				// gets no more.
				f.requeue(t, true)
				return status.Error(codes.Unavailable, "querier cancelled a job: stopping")
			}
			t.finish(m, nil)
			return nil
		case <-cancelled:
			cancelled, asked = nil, true
			if err := stream.Send(&rubatopb.FrontendMessage{JobId: id, Cancel: true}); err != nil {
				return err
			}
		case err := <-broken:
			if errors.Is(err, io.EOF) {
				// The worker closed its side, which it does only with no
				// job in flight: it never ran t, and cannot answer it.
				f.requeue(t, false)
				return errWorkerClosed
			}
			f.requeue(t, true)
			level.Warn(f.logger).Log("msg", "querier went away during a job", "tenant", t.tenant, "retries", t.retries, "err", err)
			return err
		case <-stream.Context().Done():
			// The stream ended; its reader may have left without
			// reporting it.
			f.requeue(t, true)
			return stream.Context().Err()
		}
	}
}

// requeue gives t back to the queue after its worker failed; ran says the
// job had reached the worker (a retry, counted against max_retries).
func (f *Frontend) requeue(t *task, ran bool) {
	if t.ctx.Err() != nil {
		t.finish(nil, t.ctx.Err())
		return
	}
	if ran {
		if t.retries >= f.cfg.MaxRetries {
			t.finish(nil, status.Errorf(codes.Unavailable, "job failed: its querier went away %d times (query_frontend.max_retries=%d)", t.retries+1, f.cfg.MaxRetries))
			return
		}
		t.retries++
		f.retries.Inc()
	}
	if err := f.queue.Requeue(t); err != nil {
		t.finish(nil, err)
	}
}
