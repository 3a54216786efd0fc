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
	// Search configures TraceQL search (search.go).
	Search SearchExecConfig `yaml:"search"`
	// FrontendWorker connects this querier to a query-frontend.
	FrontendWorker worker.Config `yaml:"frontend_worker"`
}

// RegisterFlagsAndApplyDefaults registers flags.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.IntVar(&c.ConcurrentBlockReads, prefix+"querier.concurrent-block-reads", 16, "Backend blocks read at once by one trace lookup.")
	f.DurationVar(&c.QueryIngestersTimeout, prefix+"querier.query-ingesters-timeout", 10*time.Second, "Timeout of one ingester call.")
	c.Search.RegisterFlagsAndApplyDefaults(prefix, f)
	c.FrontendWorker.RegisterFlagsAndApplyDefaults(prefix, f)
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.ConcurrentBlockReads < 1 {
		return errors.New("querier: concurrent_block_reads must be at least 1")
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
	logger   log.Logger

	blocksSkipped  *prometheus.CounterVec
	partialLookups prometheus.Counter

	search *searchState
}

// New builds a querier. ingesterRing may be nil (no ingesters to ask).
func New(cfg Config, storeCfg StoreConfig, ingesterRing ring.ReadRing, pool *client.Pool, store backend.Backend, logger log.Logger, reg prometheus.Registerer) *Querier {
	q := &Querier{
		cfg: cfg, storeCfg: storeCfg, ring: ingesterRing, pool: pool, store: store,
		poller: blocklist.NewPoller(store, logger, reg),
		cache:  block.NewCache(storeCfg.BlockCacheBytes),
		logger: log.With(logger, "component", "querier"),
		blocksSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_querier_blocks_skipped_total", Help: "Backend blocks skipped for a trace lookup, by reason."}, []string{"reason"}),
	}
	q.partialLookups = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "rubato_querier_partial_lookups_total", Help: "Trace lookups answered without some source (an ingester or a block could not be read)."})
	if reg != nil {
		reg.MustRegister(q.blocksSkipped, q.partialLookups)
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
// nil if nowhere. When some source could not be read (an ingester or a
// backend block), it returns what the others gave together with a non-nil
// partial error naming the failures: the caller reports the result as
// partial, never as complete. Every span of the result has a Resource, a
// Scope and a Status (combine.FillRequired), as Grafana requires.
func (q *Querier) FindTraceByID(ctx context.Context, tenantID string, id [16]byte, tr TimeRange) (td *tracev1.TracesData, partial error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		c     combine.Combiner
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
	if q.ring != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			add(q.fromIngesters(ctx, tenantID, id))
		}()
	}
	sem := make(chan struct{}, q.cfg.ConcurrentBlockReads)
	for _, m := range q.poller.Metas(tenantID) {
		if !blockMayHold(m, id[:]) {
			q.blocksSkipped.WithLabelValues("id_range").Inc()
			continue
		}
		if !tr.overlaps(m) {
			q.blocksSkipped.WithLabelValues("time_range").Inc()
			continue
		}
		wg.Add(1)
		go func(m *block.Meta) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			td, err := block.Open(q.store, m, q.cache).FindTraceByID(ctx, id[:])
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
	for _, p := range parts {
		c.Add(p)
	}
	if len(errs) > 0 {
		q.partialLookups.Inc()
	}
	td = c.Result()
	combine.FillRequired(td)
	return td, errors.Join(errs...)
}

func (q *Querier) fromIngesters(ctx context.Context, tenantID string, id [16]byte) (*tracev1.TracesData, error) {
	rs, err := q.ring.GetReplicationSetForOperation(ring.Read)
	if err != nil {
		if errors.Is(err, ring.ErrEmptyRing) {
			return nil, nil
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
