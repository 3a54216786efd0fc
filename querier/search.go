package querier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/google/uuid"
	"github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
)

var _ Searcher = (*Querier)(nil)

// searchState is the querier's search machinery: metrics and the per-block
// tag cache.
type searchState struct {
	cfg       SearchExecConfig
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inspBytes prometheus.Counter
	jobs      *prometheus.CounterVec
	tags      *tagCache
}

func newSearchState(cfg SearchExecConfig, reg prometheus.Registerer) *searchState {
	s := &searchState{
		cfg: cfg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_querier_search_requests_total", Help: "Search, tags and tag-values calls by outcome (ok, invalid, error)."}, []string{"op", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rubato_querier_search_duration_seconds", Help: "Time to answer a search, tags or tag-values call.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"op"}),
		inspBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_querier_search_inspected_bytes_total", Help: "Bytes read by searches (backend blocks and ingesters)."}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_querier_search_jobs_total", Help: "Search jobs run, by kind (ingester, blocks)."}, []string{"kind"}),
		tags: newTagCache(cfg.TagCacheEntries),
	}
	if reg != nil {
		reg.MustRegister(s.requests, s.duration, s.inspBytes, s.jobs)
	}
	return s
}

func (s *searchState) observe(op string, start time.Time, err error) {
	outcome := "ok"
	switch {
	case errors.Is(err, ErrInvalidQuery):
		outcome = "invalid"
	case err != nil:
		outcome = "error"
	}
	s.requests.WithLabelValues(op, outcome).Inc()
	s.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// invalid wraps a request error so the API answers 400.
func invalid(err error) error {
	if err == nil || errors.Is(err, ErrInvalidQuery) {
		return err
	}
	if errors.Is(err, search.ErrInvalid) || status.Code(err) == codes.InvalidArgument {
		return fmt.Errorf("%w: %w", ErrInvalidQuery, err)
	}
	return err
}

// Search runs a TraceQL search over every ingester in the ring and every
// backend block overlapping the request's time range, split into jobs
// (search.Plan) run with bounded concurrency; it returns once every job is
// done or limit traces are found.
func (q *Querier) Search(ctx context.Context, tenantID string, req *rubatopb.SearchRequest,
	progress func(*rubatopb.SearchResponse),
) (resp *rubatopb.SearchResponse, err error) {
	start := time.Now()
	defer func() { q.search.observe("search", start, err) }()
	if _, err := search.ParseQuery(req.Query); err != nil {
		return nil, invalid(err)
	}
	set, err := q.ingesterSet()
	if err != nil {
		return nil, err
	}
	cfg := q.search.cfg
	jobs := search.Plan(tenantID, req, set.addrs, q.poller.Metas(tenantID), search.ShardConfig{
		TargetBytesPerJob: cfg.TargetBytesPerJob, MaxBlocksPerJob: cfg.MaxBlocksPerJob,
	})
	resp, err = search.Run(ctx, jobs, q.searchExec(set), cfg.ConcurrentJobs, req.Limit, req.SpansPerSpanSet, progress)
	if err != nil {
		return nil, invalid(err)
	}
	q.search.inspBytes.Add(float64(resp.Metrics.GetInspectedBytes()))
	return resp, nil
}

// ExecuteSearchJob runs one job of a sharded search: an ingester's
// SearchRecent, or the job's backend blocks one after the other with
// pushdown and exact evaluation, stopping at the job's limit. A block
// compacted or deleted since planning is skipped: its traces are in the
// block that replaced it.
func (q *Querier) ExecuteSearchJob(ctx context.Context, j search.Job) (*rubatopb.SearchResponse, error) {
	if j.Ingester != "" {
		q.search.jobs.WithLabelValues("ingester").Inc()
		return q.searchIngester(ctx, j)
	}
	q.search.jobs.WithLabelValues("blocks").Inc()
	pq, err := search.ParseQuery(j.Query)
	if err != nil {
		return nil, err
	}
	metas := q.metasByID(j.Tenant, j.Blocks)
	readers := make([]*block.Reader, 0, len(j.Blocks))
	for _, id := range j.Blocks {
		if m := metas[id]; m != nil {
			readers = append(readers, block.Open(q.store, m, q.cache))
		}
	}
	req := search.Request{Query: pq, Start: j.Start, End: j.End, SpansPerSpanSet: int(j.SpansPerSpanSet)}
	return search.SearchBlocks(ctx, readers, req, int(j.Limit))
}

func (q *Querier) searchIngester(ctx context.Context, j search.Job) (*rubatopb.SearchResponse, error) {
	c, err := q.pool.Get(j.Ingester)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(client.WithTenant(ctx, j.Tenant), q.cfg.QueryIngestersTimeout)
	defer cancel()
	return c.SearchRecent(ctx, &rubatopb.IngesterSearchRequest{Request: &rubatopb.SearchRequest{
		Query: j.Query, Limit: j.Limit, SpansPerSpanSet: j.SpansPerSpanSet, Start: j.Start, End: j.End,
	}, SkipBlocks: search.BlockIDBytes(j.SkipBlocks)})
}

// ingesterSet is the ingesters a search or tag call asks: every ingester of
// the ring that can serve reads, of which up to maxErrors (the ring's
// replication set for reads: replication_factor/2 less those already
// unhealthy) may fail without making the answer incomplete, since a span
// acknowledged by a quorum write is on more than maxErrors of them. Past
// that the call fails with ErrIngestersUnavailable (503 / Unavailable),
// never with a silently smaller answer. The same rule as a trace lookup's
// ReplicationSet.Do (querier.go).
type ingesterSet struct {
	addrs     []string
	maxErrors int

	mu   sync.Mutex
	errs []error
}

// ingesterSet lists every ingester of the ring that can serve reads; an
// empty set when the querier has no ring.
func (q *Querier) ingesterSet() (*ingesterSet, error) {
	if q.ring == nil {
		return &ingesterSet{}, nil
	}
	rs, err := q.ring.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		if errors.Is(err, ring.ErrEmptyRing) {
			return nil, ErrNoIngesters
		}
		if errors.Is(err, ring.ErrTooManyUnhealthyInstances) {
			return nil, fmt.Errorf("%w: %w", ErrIngestersUnavailable, err)
		}
		return nil, fmt.Errorf("ingester ring: %w", err)
	}
	set := &ingesterSet{addrs: make([]string, 0, len(rs.Instances)), maxErrors: max(rs.MaxErrors, 0)}
	for _, inst := range rs.Instances {
		set.addrs = append(set.addrs, inst.Addr)
	}
	return set, nil
}

// fail records that the call to one ingester failed with err (ctx is the
// call's parent). It returns nil while the failure is tolerated, else the
// error to fail the whole call with. Request errors (every replica would
// give the same) and errors after ctx ended are returned as they are.
func (s *ingesterSet) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, ErrInvalidQuery) || errors.Is(err, search.ErrInvalid) ||
		status.Code(err) == codes.InvalidArgument {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
	if len(s.errs) <= s.maxErrors {
		return nil
	}
	return fmt.Errorf("%w: %d of %d ingesters failed, at most %d may: %w",
		ErrIngestersUnavailable, len(s.errs), len(s.addrs), s.maxErrors, errors.Join(s.errs...))
}

// searchExec runs the jobs of one search: a failed ingester job within
// set's tolerance answers nothing (its replicas answer for it).
func (q *Querier) searchExec(set *ingesterSet) search.Executor {
	return func(ctx context.Context, j search.Job) (*rubatopb.SearchResponse, error) {
		resp, err := q.ExecuteSearchJob(ctx, j)
		if err == nil || j.Ingester == "" {
			return resp, err
		}
		if err := set.fail(ctx, fmt.Errorf("ingester %s: %w", j.Ingester, err)); err != nil {
			return nil, err
		}
		level.Warn(q.logger).Log("msg", "search: ingester failed, its replicas answer for it", "ingester", j.Ingester, "err", err)
		return &rubatopb.SearchResponse{Metrics: &rubatopb.SearchMetrics{}}, nil
	}
}

func (q *Querier) metasByID(tenantID string, ids []uuid.UUID) map[uuid.UUID]*block.Meta {
	want := make(map[uuid.UUID]*block.Meta, len(ids))
	for _, id := range ids {
		want[id] = nil
	}
	for _, m := range q.poller.Metas(tenantID) {
		if _, ok := want[m.BlockID]; ok {
			want[m.BlockID] = m
		}
	}
	return want
}

// runBounded calls fn(i) for i in [0, n) with at most conc running at once;
// the slot is taken before the goroutine starts. The first error cancels
// the rest and is returned.
func runBounded(ctx context.Context, n, conc int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, max(conc, 1))
	errc := make(chan error, n)

	started := 0
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		started++
		go func(i int) {
			defer func() { <-sem }()
			err := fn(ctx, i)
			if err != nil {
				cancel(err)
			}
			errc <- err
		}(i)
	}
	for range started {
		<-errc
	}
	if ctx.Err() != nil {
		// The first error given to cancel, or the parent's.
		return context.Cause(ctx)
	}
	return nil
}
