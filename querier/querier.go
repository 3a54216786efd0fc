package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/blocklist"
	"github.com/rubatodb/rubato/pkg/model/combine"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/querier/worker"
)

// Config is the `querier` YAML block.
type Config struct {
	// ConcurrentBlockReads bounds backend blocks read at once by one query.
	ConcurrentBlockReads int `yaml:"concurrent_block_reads"`
	// QueryIngestersTimeout bounds each ingester call.
	QueryIngestersTimeout time.Duration `yaml:"query_ingesters_timeout"`
	// MaxConcurrentQueries bounds the trace lookups this process runs at
	// once (Tempo's key); 0: no bound.
	MaxConcurrentQueries int `yaml:"max_concurrent_queries"`
	// MaxTraceBytesInFlight is this process's budget of trace bytes held
	// for answers: each lookup holds its answer limit (the tenant's
	// max_bytes_per_trace, at most this) from before it starts until its
	// answer is written (bounds.go). 0: no budget.
	MaxTraceBytesInFlight int64 `yaml:"max_trace_bytes_in_flight"`
	// QueueTimeout is how long a lookup waits for a slot and its bytes
	// before it is refused with 429 (ErrBusy); 0 refuses at once.
	QueueTimeout time.Duration `yaml:"queue_timeout"`
	// Search configures TraceQL search (search.go).
	Search SearchExecConfig `yaml:"search"`
	// FrontendWorker connects this querier to a query-frontend.
	FrontendWorker worker.Config `yaml:"frontend_worker"`
}

// RegisterFlagsAndApplyDefaults registers flags.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.IntVar(&c.ConcurrentBlockReads, prefix+"querier.concurrent-block-reads", 16, "Backend blocks read at once by one trace lookup.")
	f.DurationVar(&c.QueryIngestersTimeout, prefix+"querier.query-ingesters-timeout", 10*time.Second, "Timeout of one ingester call.")
	f.IntVar(&c.MaxConcurrentQueries, prefix+"querier.max-concurrent-queries", 20, "Trace lookups run at once by this process; more wait up to querier.queue-timeout, then get 429 (0 = no bound).")
	f.Int64Var(&c.MaxTraceBytesInFlight, prefix+"querier.max-trace-bytes-in-flight", 128<<20, "Bytes of traces this process holds for answers at once: each lookup holds its tenant's max_bytes_per_trace (cut at this) until answered; more wait up to querier.queue-timeout, then get 429 (0 = no budget).")
	f.DurationVar(&c.QueueTimeout, prefix+"querier.queue-timeout", 5*time.Second, "How long a trace lookup waits for querier.max-concurrent-queries and querier.max-trace-bytes-in-flight before 429 (0 = not at all).")
	c.Search.RegisterFlagsAndApplyDefaults(prefix, f)
	c.FrontendWorker.RegisterFlagsAndApplyDefaults(prefix, f)
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.ConcurrentBlockReads < 1 {
		return errors.New("querier: concurrent_block_reads must be at least 1")
	}
	if c.MaxConcurrentQueries < 0 || c.MaxTraceBytesInFlight < 0 || c.QueueTimeout < 0 {
		return errors.New("querier: max_concurrent_queries, max_trace_bytes_in_flight and queue_timeout must not be negative")
	}
	return errors.Join(c.Search.Validate(), c.FrontendWorker.Validate())
}

// StoreConfig is what the querier needs of `storage.trace`.
type StoreConfig struct {
	BlocklistPoll   time.Duration
	BlockCacheBytes int64
}

// Querier finds traces in ingesters and backend blocks.
type Querier struct {
	services.Service

	cfg      Config
	storeCfg StoreConfig
	ring     ring.ReadRing
	pool     *client.Pool
	store    backend.Backend
	poller   *blocklist.Poller
	cache    *block.Cache
	limits   Limits
	gate     *gate
	logger   log.Logger

	blocksSkipped   *prometheus.CounterVec
	partialLookups  prometheus.Counter
	refusedLookups  *prometheus.CounterVec
	truncatedTraces prometheus.Counter

	search *searchState
}

// New builds a querier. ingesterRing may be nil (no ingesters to ask);
// limits may be nil (no tenant has max_bytes_per_trace).
func New(cfg Config, storeCfg StoreConfig, ingesterRing ring.ReadRing, pool *client.Pool, store backend.Backend, limits Limits, logger log.Logger, reg prometheus.Registerer) *Querier {
	q := &Querier{
		cfg: cfg, storeCfg: storeCfg, ring: ingesterRing, pool: pool, store: store,
		poller: blocklist.NewPoller(store, logger, reg),
		cache:  block.NewCache(storeCfg.BlockCacheBytes),
		limits: limits,
		gate:   newGate(cfg),
		logger: log.With(logger, "component", "querier"),
		blocksSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_querier_blocks_skipped_total", Help: "Backend blocks skipped for a trace lookup, by reason."}, []string{"reason"}),
	}
	q.partialLookups = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rubato_querier_partial_lookups_total", Help: "Trace lookups answered without some source (an ingester or a block could not be read)."})
	q.refusedLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rubato_querier_refused_lookups_total", Help: "Trace lookups refused with 429 because the process was at querier.max_concurrent_queries (concurrency) or querier.max_trace_bytes_in_flight (memory) for querier.queue_timeout."}, []string{"reason"})
	q.truncatedTraces = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rubato_querier_truncated_traces_total", Help: "Trace lookups whose answer was cut at max_bytes_per_trace."})
	if reg != nil {
		reg.MustRegister(q.blocksSkipped, q.partialLookups, q.refusedLookups, q.truncatedTraces)
	}
	q.search = newSearchState(cfg.Search, reg)
	q.Service = services.NewBasicService(q.starting, q.running, nil)
	return q
}

func (q *Querier) starting(ctx context.Context) error {
	if err := q.poller.Poll(ctx); err != nil {
		// Start anyway: ingesters can still answer, and the next poll may work.
		level.Error(q.logger).Log("msg", "initial blocklist poll failed", "err", err)
	}
	return nil
}

func (q *Querier) running(ctx context.Context) error {
	q.poller.Run(ctx, q.storeCfg.BlocklistPoll)
	return nil
}

// PollNow refreshes the blocklist (used by tests and after flushes).
func (q *Querier) PollNow(ctx context.Context) error { return q.poller.Poll(ctx) }

// TimeRange limits which backend blocks are read; zero values are open.
type TimeRange struct{ Start, End time.Time }

func (r TimeRange) overlaps(m *block.Meta) bool {
	if !r.Start.IsZero() && m.EndTime.Before(r.Start) {
		return false
	}
	if !r.End.IsZero() && m.StartTime.After(r.End) {
		return false
	}
	return true
}

// FindTraceByID returns the trace from every place it can be, combined, or
// nil if nowhere. A nil error means the answer is complete. ErrBusy means
// the lookup did not run (bounds.go): nothing is returned. Any other error
// is a *PartialError: the trace returned is incomplete, because some source
// could not be read (an ingester or a backend block; the others' parts are
// returned) or because it was cut at the tenant's max_bytes_per_trace; the
// caller reports the result as partial, never as complete. Every span of
// the result has a Resource, a Scope and a Status (combine.FillRequired),
// as Grafana requires.
func (q *Querier) FindTraceByID(ctx context.Context, tenantID string, id [16]byte, tr TimeRange) (*tracev1.TracesData, error) {
	td, release, err := q.findTrace(ctx, tenantID, id, tr)
	release()
	return td, err
}

// findTrace is FindTraceByID that leaves the answer's bytes reserved until
// the caller, having written the answer, calls release (always non-nil).
func (q *Querier) findTrace(ctx context.Context, tenantID string, id [16]byte, tr TimeRange) (td *tracev1.TracesData, release func(), err error) {
	maxBytes := 0
	if q.limits != nil {
		maxBytes = q.limits.For(tenantID).MaxBytesPerTrace
	}
	limit := q.gate.answerLimit(maxBytes)
	release, err = q.gate.enter(ctx, limit, func(reason string) { q.refusedLookups.WithLabelValues(reason).Inc() })
	if err != nil {
		return nil, func() {}, err
	}
	var metas []*block.Meta
	for _, m := range q.poller.Metas(tenantID) {
		switch {
		case !blockMayHold(m, id[:]):
			q.blocksSkipped.WithLabelValues("id_range").Inc()
		case !tr.overlaps(m):
			q.blocksSkipped.WithLabelValues("time_range").Inc()
		default:
			metas = append(metas, m)
		}
	}
	td, err = q.lookup(ctx, id, sources{tenant: tenantID, ingesters: q.ring != nil, blocks: metas}, NewAdmission(limit))
	return td, release, err
}

// sources are where one lookup reads: the ingesters (all that own the
// trace) and backend blocks.
type sources struct {
	tenant    string
	ingesters bool
	blocks    []*block.Meta
}

// lookup reads the sources that may hold the trace, admitting what they
// give through adm (bounds.go).
func (q *Querier) lookup(ctx context.Context, id [16]byte, src sources, adm *Admission) (*tracev1.TracesData, error) {
	tenantID := src.tenant
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		errs  []error
		wg    sync.WaitGroup
		parts []*tracev1.TracesData
	)
	add := func(td *tracev1.TracesData, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		if td != nil {
			parts = append(parts, td)
		}
	}
	if src.ingesters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			td, err := q.fromIngesters(ctx, tenantID, id)
			if err == nil {
				adm.Admit(td)
			}
			add(td, err)
		}()
	}
	// The semaphore is taken before a read's goroutine starts, so a
	// lookup over many blocks holds at most concurrent_block_reads
	// goroutines and reads, and stops starting reads once the answer is
	// full.
	sem := make(chan struct{}, q.cfg.ConcurrentBlockReads)
blocks:
	for _, m := range src.blocks {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			add(nil, fmt.Errorf("block %s not read: %w", m.BlockID, ctx.Err()))
			break blocks
		}
		if adm.Full() {
			<-sem
			break
		}
		wg.Add(1)
		go func(m *block.Meta) {
			defer wg.Done()
			defer func() { <-sem }()
			td, err := block.Open(q.store, m, q.cache).FindTraceByIDFunc(ctx, id[:], adm.Admit)
			if errors.Is(err, backend.ErrNotFound) {
				// Compacted away or deleted by retention since the last
				// poll; its data lives in the block that replaced it.
				return
			}
			if err != nil {
				err = fmt.Errorf("block %s: %w", m.BlockID, err)
			}
			add(td, err)
		}(m)
	}
	wg.Wait()
	var c combine.Combiner
	for _, p := range parts {
		c.Add(p)
	}
	td := c.Result()
	var perr *PartialError
	if len(errs) > 0 {
		q.partialLookups.Inc()
		perr = &PartialError{Sources: errors.Join(errs...)}
	}
	if adm.Full() {
		q.truncatedTraces.Inc()
		if perr == nil {
			perr = &PartialError{}
		}
		perr.MaxBytes = adm.max
		if td == nil {
			td = &tracev1.TracesData{} // found, but not one span fits
		}
	}
	combine.FillRequired(td)
	if perr != nil {
		return td, perr
	}
	return td, nil
}

func (q *Querier) fromIngesters(ctx context.Context, tenantID string, id [16]byte) (*tracev1.TracesData, error) {
	rs, err := q.ring.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		if errors.Is(err, ring.ErrEmptyRing) {
			return nil, ErrNoIngesters
		}
		return nil, fmt.Errorf("ingester ring: %w", err)
	}
	results, err := rs.Do(ctx, 0, func(ctx context.Context, inst *ring.InstanceDesc) (interface{}, error) {
		c, err := q.pool.Get(inst.Addr)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(client.WithTenant(ctx, tenantID), q.cfg.QueryIngestersTimeout)
		defer cancel()
		resp, err := c.FindTraceByID(ctx, &rubatopb.FindTraceByIDRequest{TraceID: id[:]})
		if err != nil {
			return nil, fmt.Errorf("ingester %s: %w", inst.Addr, err)
		}
		return &tracev1.TracesData{ResourceSpans: resp.GetTrace().GetResourceSpans()}, nil
	})
	if err != nil {
		return nil, err
	}
	var c combine.Combiner
	for _, r := range results {
		c.Add(r.(*tracev1.TracesData))
	}
	return c.Result(), nil
}

func blockMayHold(m *block.Meta, id []byte) bool {
	return string(id) >= string(m.MinID) && string(id) <= string(m.MaxID)
}
