package compactor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/google/uuid"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/blocklist"
	"github.com/rubatodb/rubato/pkg/overrides"
)

// outputNamespace derives output block IDs from input block IDs.
var outputNamespace = uuid.MustParse("6f1c2a3e-5b7d-4e8f-9a0b-1c2d3e4f5a6b")

// Compactor merges, deduplicates and expires the blocks and writes the
// indexes of the tenants and (tenant, window) jobs it owns in the
// compactor ring (see doc.go).
type Compactor struct {
	services.Service

	cfg          Config
	blockCfg     block.Config
	pollInterval time.Duration
	store        backend.Backend
	overrides    *overrides.Overrides
	poller       *blocklist.Poller
	logger       log.Logger
	metrics      *metrics
	memLimit     *memoryLimiter
	now          func() time.Time
	// beforeRecheck, set by tests, runs between the janitor's two listings.
	beforeRecheck func(tenant string, id uuid.UUID)
	// beforeCommit, set by tests, runs after a job's output is written and
	// before its ownership is checked again and its inputs are marked.
	beforeCommit func(job Job)

	reg prometheus.Registerer
	// ring is set while the service runs (startRing); without it (RunOnce
	// or Compact called on a compactor not started as a service) the
	// compactor acts alone and owns everything.
	ring    atomic.Pointer[compactorRing]
	ringMgr *services.Manager

	lastPoll time.Time
}

// New builds a compactor over store. pollInterval is
// storage.trace.blocklist_poll: how often it lists the backend and rewrites
// the tenant indexes. ov may be nil (no per-tenant retention).
func New(cfg Config, blockCfg block.Config, pollInterval time.Duration, store backend.Backend, ov *overrides.Overrides, logger log.Logger, reg prometheus.Registerer) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := blockCfg.Validate(); err != nil {
		return nil, err
	}
	if pollInterval <= 0 {
		return nil, errors.New("compactor: blocklist poll interval must be positive")
	}
	logger = log.With(logger, "component", "compactor")
	c := &Compactor{
		cfg: cfg, blockCfg: blockCfg, pollInterval: pollInterval, store: store, overrides: ov,
		logger:   logger,
		metrics:  newMetrics(reg),
		memLimit: &memoryLimiter{budget: cfg.MemoryLimitBytes},
		now:      time.Now,
		reg:      reg,
	}
	c.poller = blocklist.New(blocklist.Config{BuildIndex: true, Component: "compactor", IndexOwner: c.ownsTenant}, store, logger, reg)
	c.Service = services.NewBasicService(c.startRing, c.running, c.stopRing)
	return c, nil
}

// startRing joins the compactor ring and waits until this compactor is
// ACTIVE in it; from then on it does only the work it owns.
func (c *Compactor) startRing(ctx context.Context) error {
	r, err := newCompactorRing(c.cfg.Ring, c.logger, c.reg)
	if err != nil {
		return err
	}
	m, err := services.NewManager(r.lifecycler, r.ring)
	if err != nil {
		return err
	}
	if err := services.StartManagerAndAwaitHealthy(ctx, m); err != nil {
		return fmt.Errorf("compactor ring: %w", err)
	}
	c.ringMgr = m
	if err := r.waitActive(ctx, c.cfg.Ring, c.logger); err != nil {
		_ = services.StopManagerAndAwaitStopped(context.Background(), m)
		return err
	}
	c.ring.Store(r)
	return nil
}

// stopRing leaves the ring (the lifecycler unregisters this compactor).
func (c *Compactor) stopRing(error) error {
	if c.ringMgr == nil {
		return nil
	}
	return services.StopManagerAndAwaitStopped(context.Background(), c.ringMgr)
}

// Ring is the compactor ring as this compactor sees it (nil before the
// service started); its ServeHTTP is the /compactor/ring page.
func (c *Compactor) Ring() *ring.Ring {
	if r := c.ring.Load(); r != nil {
		return r.ring
	}
	return nil
}

// owns reports whether this compactor owns key; a ring error (no healthy
// owner) means no, logged, and the work waits for a later round.
func (c *Compactor) owns(key string) bool {
	r := c.ring.Load()
	if r == nil {
		return true
	}
	ok, err := r.owns(key)
	if err != nil {
		c.metrics.errors.WithLabelValues("ring").Inc()
		level.Warn(c.logger).Log("msg", "compactor ring lookup failed; skipping", "err", err)
		return false
	}
	return ok
}

// ownsTenant: the owner of a tenant writes its index, applies its
// retention and deletes its partial blocks.
func (c *Compactor) ownsTenant(t string) bool { return c.owns(TenantKey(t)) }

// Poller returns the compactor's blocklist (builder mode).
func (c *Compactor) Poller() *blocklist.Poller { return c.poller }

func (c *Compactor) running(ctx context.Context) error {
	// Indexes are rewritten every blocklist_poll, compaction rounds run
	// every compaction_cycle; the two are independent.
	cycle := time.NewTicker(c.cfg.Compaction.CompactionCycle)
	defer cycle.Stop()
	poll := time.NewTicker(c.pollInterval)
	defer poll.Stop()
	for {
		if err := c.round(ctx, false); err != nil && ctx.Err() == nil {
			level.Error(c.logger).Log("msg", "compaction round failed", "err", err)
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-poll.C:
				if err := c.poller.Poll(ctx); err != nil && ctx.Err() == nil {
					c.metrics.errors.WithLabelValues("poll").Inc()
					level.Error(c.logger).Log("msg", "blocklist poll failed", "err", err)
					continue
				}
				c.lastPoll = time.Now()
			case <-cycle.C:
				break wait
			}
		}
	}
}

// RunOnce polls the backend, writes every tenant's index, then applies
// retention and runs every planned compaction job of every tenant.
func (c *Compactor) RunOnce(ctx context.Context) error { return c.round(ctx, true) }

func (c *Compactor) round(ctx context.Context, forcePoll bool) error {
	if forcePoll || c.lastPoll.IsZero() || time.Since(c.lastPoll) >= c.pollInterval {
		if err := c.poller.Poll(ctx); err != nil {
			c.metrics.errors.WithLabelValues("poll").Inc()
			return err
		}
		c.lastPoll = time.Now()
	}
	var errs []error
	for _, t := range c.poller.Tenants() {
		if err := ctx.Err(); err != nil {
			return err
		}
		errs = append(errs, c.compactTenant(ctx, t))
	}
	return errors.Join(errs...)
}

func (c *Compactor) compactTenant(ctx context.Context, t string) error {
	deadline := time.Now().Add(c.cfg.Compaction.MaxTimePerTenant)
	var errs []error
	if c.ownsTenant(t) {
		if err := c.applyRetention(ctx, t); err != nil {
			c.metrics.errors.WithLabelValues("retention").Inc()
			errs = append(errs, err)
		}
		if err := c.cleanPartialBlocks(ctx, t); err != nil {
			c.metrics.errors.WithLabelValues("janitor").Inc()
			errs = append(errs, err)
		}
	}
	for _, job := range Plan(c.poller.Metas(t), c.cfg.Compaction.planConfig(), c.now()) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		key := JobKey(job)
		if !c.owns(key) {
			c.metrics.jobsSkipped.Inc()
			continue
		}
		if _, err := c.compact(ctx, job, func() bool { return c.owns(key) }); err != nil {
			if errors.Is(err, errLostOwnership) {
				level.Info(c.logger).Log("msg", "compaction job moved to another compactor while it ran; inputs left unmarked", "tenant", t, "window", job.Window)
				continue
			}
			level.Error(c.logger).Log("msg", "compaction failed", "tenant", t, "inputs", len(job.Inputs), "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// OutputID is the ID of the block a job writes: a hash of its tenant and
// input IDs, so that a job retried after a crash finds (or overwrites) the
// same block instead of leaving an orphan or a second copy.
func OutputID(job Job) uuid.UUID {
	ids := make([]string, len(job.Inputs))
	for i, m := range job.Inputs {
		ids[i] = m.BlockID.String()
	}
	slices.Sort(ids)
	return uuid.NewSHA1(outputNamespace, []byte(job.Tenant+"\x00"+strings.Join(ids, ",")))
}

// errLostOwnership: the ring gave the job to another compactor while it
// ran; the output was written, the inputs were not marked.
var errLostOwnership = errors.New("compact: job no longer owned by this compactor")

// Compact runs one job: merge the inputs into a new block (meta.json
// last), then mark every input compacted, then update the blocklist and
// rewrite the tenant index. If the output block already exists (a previous
// attempt stopped after writing it) it is not written again. Compact does
// not consult the ring: the caller chose the job.
func (c *Compactor) Compact(ctx context.Context, job Job) (*block.Meta, error) {
	return c.compact(ctx, job, nil)
}

// compact is Compact; stillOwned (when not nil) is asked again after the
// output is written and before any input is marked: if the job changed
// owner meanwhile, the inputs are left unmarked and errLostOwnership is
// returned (doc.go: why this and a race past it never lose a span).
func (c *Compactor) compact(ctx context.Context, job Job, stillOwned func() bool) (*block.Meta, error) {
	start := time.Now()
	if len(job.Inputs) == 0 {
		return nil, errors.New("compact: no inputs")
	}
	for _, m := range job.Inputs {
		if m.TenantID != job.Tenant {
			return nil, fmt.Errorf("compact: input %s belongs to tenant %q, not %q", m.BlockID, m.TenantID, job.Tenant)
		}
	}
	outID := OutputID(job)
	out, outCompacted, err := c.existingOutput(ctx, job.Tenant, outID)
	if err != nil {
		c.metrics.jobs.WithLabelValues("failure").Inc()
		return nil, err
	}
	if out == nil {
		out, err = c.writeOutput(ctx, job, outID)
		if err != nil {
			c.metrics.jobs.WithLabelValues("failure").Inc()
			return nil, err
		}
	} else {
		level.Info(c.logger).Log("msg", "output of an interrupted compaction found; marking its inputs", "tenant", job.Tenant, "block", outID)
	}
	if c.beforeCommit != nil {
		c.beforeCommit(job)
	}
	if stillOwned != nil && !stillOwned() {
		c.metrics.jobs.WithLabelValues("lost_ownership").Inc()
		return nil, errLostOwnership
	}
	var add []*block.Meta
	if !outCompacted {
		add = []*block.Meta{out}
	}
	marked := make([]*blocklist.CompactedMeta, 0, len(job.Inputs))
	for _, m := range job.Inputs {
		cm, err := blocklist.MarkCompacted(ctx, c.store, m, c.now())
		if err != nil {
			c.poller.Update(job.Tenant, add, marked, nil)
			c.metrics.jobs.WithLabelValues("failure").Inc()
			return nil, err
		}
		marked = append(marked, cm)
	}
	c.poller.Update(job.Tenant, add, marked, nil)
	// Only the tenant's owner writes its index; the others' compactions
	// reach it at the owner's next poll.
	if c.ownsTenant(job.Tenant) {
		if err := c.poller.WriteIndex(ctx, job.Tenant); err != nil {
			// Not fatal: the next poll writes it again.
			c.metrics.errors.WithLabelValues("index").Inc()
			level.Warn(c.logger).Log("msg", "writing tenant index failed", "tenant", job.Tenant, "err", err)
		}
	}
	c.metrics.jobs.WithLabelValues("success").Inc()
	c.metrics.blocksCompacted.Add(float64(len(job.Inputs)))
	c.metrics.duration.Observe(time.Since(start).Seconds())
	level.Info(c.logger).Log("msg", "compacted", "tenant", job.Tenant, "inputs", len(job.Inputs), "level", job.Level,
		"output", out.BlockID, "objects", out.TotalObjects, "bytes", out.Size, "duration", time.Since(start))
	return out, nil
}

// existingOutput returns the output block's meta if a previous attempt
// completed it, and whether that block has itself been compacted since.
func (c *Compactor) existingOutput(ctx context.Context, t string, id uuid.UUID) (*block.Meta, bool, error) {
	data, err := backend.ReadAll(ctx, c.store, block.MetaKey(t, id))
	if errors.Is(err, backend.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("compact: read output meta: %w", err)
	}
	m, err := block.ParseMeta(data)
	if err != nil {
		return nil, false, nil // half-written garbage: write the block again
	}
	_, err = c.store.Size(ctx, block.CompactedMetaKey(t, id))
	switch {
	case err == nil:
		return m, true, nil
	case errors.Is(err, backend.ErrNotFound):
		return m, false, nil
	default:
		return nil, false, fmt.Errorf("compact: check output: %w", err)
	}
}

func (c *Compactor) writeOutput(ctx context.Context, job Job, id uuid.UUID) (*block.Meta, error) {
	c.memLimit.acquire()
	defer c.memLimit.release()
	objects := 0
	var inBytes int64
	for _, m := range job.Inputs {
		objects += m.TotalObjects
		inBytes += m.Size
	}
	w, err := block.NewWriter(ctx, c.store, c.blockCfg, job.Tenant, id, job.Level, objects, c.cfg.Compaction.TmpDir)
	if err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	srcs := make([]source, len(job.Inputs))
	for i, m := range job.Inputs {
		srcs[i] = openSource(ctx, c.store, m)
	}
	st, err := merge(ctx, srcs, newSink(w), limits{maxBytesPerTrace: c.cfg.Compaction.MaxBytesPerTrace, maxCombineSpans: c.cfg.Compaction.MaxCombineSpans})
	for _, s := range srcs {
		s.close()
	}
	if err != nil {
		w.Abort()
		return nil, fmt.Errorf("compact: %w", err)
	}
	out, err := w.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("compact: write block %s: %w", id, err)
	}
	c.metrics.blocksWritten.Inc()
	c.metrics.bytesRead.Add(float64(inBytes))
	c.metrics.bytesWritten.Add(float64(out.Size))
	c.metrics.objectsRead.Add(float64(st.tracesIn))
	c.metrics.objectsWritten.Add(float64(st.tracesOut))
	c.metrics.objectsCombined.Add(float64(st.combined))
	c.metrics.spansDeduped.Add(float64(st.spansDeduped))
	if st.cutTraces > 0 {
		c.metrics.spansDropped.WithLabelValues("trace_too_large").Add(float64(st.spansTooLarge))
		level.Warn(c.logger).Log("msg", "traces over max_bytes_per_trace were cut", "tenant", job.Tenant, "block", id,
			"traces", st.cutTraces, "spans_dropped", st.spansTooLarge, "max_bytes_per_trace", c.cfg.Compaction.MaxBytesPerTrace)
	}
	if st.notCombined > 0 {
		c.metrics.spansDropped.WithLabelValues("too_large_to_combine").Add(float64(st.spansNotKept))
		level.Warn(c.logger).Log("msg", "traces too large to combine: kept the largest copy of each", "tenant", job.Tenant, "block", id,
			"traces", st.notCombined, "spans_in_other_copies", st.spansNotKept, "max_combine_spans", c.cfg.Compaction.MaxCombineSpans)
	}
	return out, nil
}

// applyRetention marks a tenant's expired blocks compacted and deletes
// compacted blocks past compacted_block_retention.
func (c *Compactor) applyRetention(ctx context.Context, t string) error {
	retention := c.cfg.Compaction.BlockRetention
	if c.overrides != nil {
		if r := c.overrides.For(t).BlockRetention; r > 0 {
			retention = r
		}
	}
	now := c.now()
	expire, remove := RetentionPlan(c.poller.Metas(t), c.poller.CompactedMetas(t), retention, c.cfg.Compaction.CompactedBlockRetention, now)
	if len(expire) == 0 && len(remove) == 0 {
		return nil
	}
	var errs []error
	var marked []*blocklist.CompactedMeta
	for _, m := range expire {
		cm, err := blocklist.MarkCompacted(ctx, c.store, m, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		marked = append(marked, cm)
		c.metrics.retentionMarked.Inc()
		level.Info(c.logger).Log("msg", "block past retention marked for deletion", "tenant", t, "block", m.BlockID, "end", m.EndTime, "retention", retention)
	}
	var (
		mu      sync.Mutex
		deleted []uuid.UUID
		wg      sync.WaitGroup
		sem     = make(chan struct{}, c.cfg.Compaction.RetentionConcurrency)
	)
	for _, cm := range remove {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := blocklist.DeleteBlock(ctx, c.store, t, cm.BlockID)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			deleted = append(deleted, cm.BlockID)
			c.metrics.blocksDeleted.Inc()
		}()
	}
	wg.Wait()
	c.poller.Update(t, nil, marked, deleted)
	if err := c.poller.WriteIndex(ctx, t); err != nil {
		c.metrics.errors.WithLabelValues("index").Inc()
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
