package blocklist

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// Defaults of Config.
const (
	// DefaultStaleTenantIndex is the stale age used before Run has set one
	// from its poll interval.
	DefaultStaleTenantIndex = 15 * time.Minute
	// DefaultConcurrency bounds concurrent backend reads of one poll.
	DefaultConcurrency = 16
	// pendingMaxAge bounds how long a block announced by AddBlock is kept
	// without any poll returning it.
	pendingMaxAge = time.Hour
)

// Config configures a Poller.
type Config struct {
	// StaleTenantIndex is the age past which a tenant index is ignored and
	// the tenant's blocks are listed instead. 0 means three poll intervals
	// (as given to Run), or DefaultStaleTenantIndex before Run starts.
	StaleTenantIndex time.Duration
	// BuildIndex makes the poller list every tenant and write its index
	// after each poll (compactors). Otherwise it reads indexes (queriers).
	BuildIndex bool
	// IndexOwner, when set, says which tenants' indexes a poll writes
	// (BuildIndex): with several compactors, each tenant's ring owner.
	IndexOwner func(tenant string) bool
	// Concurrency bounds concurrent backend reads while listing a tenant.
	Concurrency int
	// Component is the value of the "component" label on the poller's
	// metrics, so that two pollers can share one registry.
	Component string
}

// tenantList is one tenant's blocks. Its slices are never mutated once
// published: updates build new slices (copy on write).
type tenantList struct {
	metas     []*block.Meta    // live, sorted by block ID
	compacted []*CompactedMeta // sorted by block ID
}

type pendingBlock struct {
	meta  *block.Meta
	added time.Time
}

// Poller polls the backend for block metas. Safe for concurrent use.
type Poller struct {
	cfg    Config
	be     backend.Backend
	logger log.Logger
	now    func() time.Time

	mu         sync.RWMutex
	tenants    map[string]*tenantList
	live       map[uuid.UUID]*block.Meta // meta.json contents seen by the last listing
	compacted  map[uuid.UUID]*CompactedMeta
	pending    map[uuid.UUID]pendingBlock
	incomplete map[string][]uuid.UUID // per tenant, from the last listing
	staleAfter time.Duration
	polled     bool // a poll has succeeded; until then indexes are not trusted

	blocks          *prometheus.GaugeVec
	compactedBlocks *prometheus.GaugeVec
	pollErrors      prometheus.Counter
	lastSuccess     prometheus.Gauge
	fallbacks       *prometheus.CounterVec
}

// NewPoller returns an index-reading poller with default settings whose
// metrics carry component="querier"; call Poll to fill it.
func NewPoller(be backend.Backend, logger log.Logger, reg prometheus.Registerer) *Poller {
	return New(Config{Component: "querier"}, be, logger, reg)
}

// New returns a poller; call Poll to fill it. It starts no goroutine.
func New(cfg Config, be backend.Backend, logger log.Logger, reg prometheus.Registerer) *Poller {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Component == "" {
		cfg.Component = "querier"
	}
	staleAfter := cfg.StaleTenantIndex
	if staleAfter <= 0 {
		staleAfter = DefaultStaleTenantIndex
	}
	cl := prometheus.Labels{"component": cfg.Component}
	p := &Poller{
		cfg: cfg, be: be, logger: logger, now: time.Now,
		tenants:    map[string]*tenantList{},
		live:       map[uuid.UUID]*block.Meta{},
		compacted:  map[uuid.UUID]*CompactedMeta{},
		pending:    map[uuid.UUID]pendingBlock{},
		staleAfter: staleAfter,
		blocks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rubato_blocklist_length", Help: "Live blocks in the blocklist, per tenant.", ConstLabels: cl}, []string{"tenant"}),
		compactedBlocks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rubato_blocklist_compacted_length", Help: "Compacted blocks awaiting deletion, per tenant.", ConstLabels: cl}, []string{"tenant"}),
		pollErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_blocklist_poll_errors_total", Help: "Blocklist polls that failed.", ConstLabels: cl}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rubato_blocklist_last_successful_poll_timestamp_seconds", Help: "Time of the last successful poll.", ConstLabels: cl}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_blocklist_index_fallbacks_total", Help: "Tenant polls that listed the backend because the tenant index was missing, stale or invalid.", ConstLabels: cl}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(p.blocks, p.compactedBlocks, p.pollErrors, p.lastSuccess, p.fallbacks)
	}
	return p
}

// Poll refreshes every tenant's blocks. On error the previous lists stay.
func (p *Poller) Poll(ctx context.Context) error {
	err := p.poll(ctx)
	if err != nil {
		p.pollErrors.Inc()
		return err
	}
	p.lastSuccess.SetToCurrentTime()
	return nil
}

func (p *Poller) poll(ctx context.Context) error {
	dirs, err := p.be.List(ctx, "")
	if err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	next := map[string]*tenantList{}
	st := &listState{live: map[uuid.UUID]*block.Meta{}, compacted: map[uuid.UUID]*CompactedMeta{}, incomplete: map[string][]uuid.UUID{}}
	for _, d := range dirs {
		if !strings.HasSuffix(d, "/") {
			continue
		}
		t := strings.TrimSuffix(d, "/")
		if tenant.Validate(t) != nil {
			continue
		}
		tl, err := p.pollTenant(ctx, t, st)
		if err != nil {
			return err
		}
		next[t] = tl
	}
	p.mu.Lock()
	now := p.now()
	for id, pb := range p.pending {
		t := pb.meta.TenantID
		tl := next[t]
		if tl == nil {
			tl = &tenantList{}
			next[t] = tl
		}
		if containsID(tl.metas, id) || containsCompacted(tl.compacted, id) || now.Sub(pb.added) > pendingMaxAge {
			delete(p.pending, id)
			continue
		}
		tl.metas = insertMeta(tl.metas, pb.meta)
	}
	for t := range p.tenants {
		if _, ok := next[t]; !ok {
			p.blocks.DeleteLabelValues(t)
			p.compactedBlocks.DeleteLabelValues(t)
		}
	}
	p.tenants = next
	p.polled = true
	if st.listed {
		p.live, p.compacted, p.incomplete = st.live, st.compacted, st.incomplete
	}
	p.mu.Unlock()
	for t, tl := range next {
		p.blocks.WithLabelValues(t).Set(float64(len(tl.metas)))
		p.compactedBlocks.WithLabelValues(t).Set(float64(len(tl.compacted)))
	}
	if p.cfg.BuildIndex {
		for t := range next {
			if p.cfg.IndexOwner != nil && !p.cfg.IndexOwner(t) {
				continue
			}
			if err := p.WriteIndex(ctx, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// listState collects what one poll learned by listing.
type listState struct {
	mu         sync.Mutex
	listed     bool
	live       map[uuid.UUID]*block.Meta
	compacted  map[uuid.UUID]*CompactedMeta
	incomplete map[string][]uuid.UUID
}

func (p *Poller) pollTenant(ctx context.Context, t string, st *listState) (*tenantList, error) {
	p.mu.RLock()
	stale, polled := p.staleAfter, p.polled
	p.mu.RUnlock()
	// The first poll lists: an index written by a compactor a moment ago
	// can still miss blocks flushed since, and a process that just started
	// has no other source for them.
	if !p.cfg.BuildIndex && polled {
		idx, err := ReadIndex(ctx, p.be, t)
		switch {
		case err == nil && p.now().Sub(idx.CreatedAt) <= stale:
			tl := &tenantList{metas: idx.Metas, compacted: idx.CompactedMetas}
			slices.SortFunc(tl.metas, cmpMeta)
			slices.SortFunc(tl.compacted, func(a, b *CompactedMeta) int { return cmpMeta(&a.Meta, &b.Meta) })
			return tl, nil
		case err == nil:
			p.fallbacks.WithLabelValues("stale").Inc()
		case errors.Is(err, backend.ErrNotFound):
			p.fallbacks.WithLabelValues("missing").Inc()
		case errors.Is(err, ErrInvalidIndex):
			p.fallbacks.WithLabelValues("invalid").Inc()
			level.Warn(p.logger).Log("msg", "ignoring invalid tenant index", "tenant", t, "err", err)
		default:
			p.fallbacks.WithLabelValues("error").Inc()
			level.Warn(p.logger).Log("msg", "reading tenant index failed; listing", "tenant", t, "err", err)
		}
	}
	return p.listTenant(ctx, t, st)
}

// listTenant lists a tenant's block directories and classifies each block.
func (p *Poller) listTenant(ctx context.Context, t string, st *listState) (*tenantList, error) {
	entries, err := p.be.List(ctx, t+"/")
	if err != nil {
		return nil, fmt.Errorf("list blocks of %s: %w", t, err)
	}
	var ids []uuid.UUID
	for _, e := range entries {
		if !strings.HasSuffix(e, "/") {
			continue
		}
		id, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(e, t+"/"), "/"))
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	type result struct {
		live      *block.Meta
		compacted *CompactedMeta
		err       error
	}
	res := make([]result, len(ids))
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := &res[i]
			r.live, r.compacted, r.err = p.resolve(ctx, t, id)
		}()
	}
	wg.Wait()
	tl := &tenantList{}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.listed = true
	for i, r := range res {
		switch {
		case r.err != nil:
			return nil, r.err
		case r.compacted != nil:
			st.compacted[ids[i]] = r.compacted
			tl.compacted = append(tl.compacted, r.compacted)
		case r.live != nil:
			st.live[ids[i]] = r.live
			tl.metas = append(tl.metas, r.live)
		default:
			st.incomplete[t] = append(st.incomplete[t], ids[i])
		}
	}
	slices.SortFunc(tl.metas, cmpMeta)
	slices.SortFunc(tl.compacted, func(a, b *CompactedMeta) int { return cmpMeta(&a.Meta, &b.Meta) })
	return tl, nil
}

// resolve tells whether a block is compacted, live, or not (yet) visible
// (both nil). Malformed metas are logged and skipped; backend errors fail
// the poll so that a flaky read never hides a block.
func (p *Poller) resolve(ctx context.Context, t string, id uuid.UUID) (*block.Meta, *CompactedMeta, error) {
	p.mu.RLock()
	c, m := p.compacted[id], p.live[id]
	p.mu.RUnlock()
	if c != nil {
		return nil, c, nil // compaction is permanent
	}
	data, err := backend.ReadAll(ctx, p.be, block.CompactedMetaKey(t, id))
	switch {
	case err == nil:
		c, err := ParseCompactedMeta(data)
		if err == nil && (c.TenantID != t || c.BlockID != id) {
			err = fmt.Errorf("%w: names tenant %q block %s", ErrInvalidCompactedMeta, c.TenantID, c.BlockID)
		}
		if err != nil {
			level.Warn(p.logger).Log("msg", "skipping block with unreadable compacted meta", "tenant", t, "block", id, "err", err)
			return nil, nil, nil
		}
		return nil, c, nil
	case !errors.Is(err, backend.ErrNotFound):
		return nil, nil, fmt.Errorf("read compacted meta of %s/%s: %w", t, id, err)
	}
	if m != nil {
		return m, nil, nil
	}
	data, err = backend.ReadAll(ctx, p.be, block.MetaKey(t, id))
	switch {
	case errors.Is(err, backend.ErrNotFound):
		return nil, nil, nil // being written, or being deleted
	case err != nil:
		return nil, nil, fmt.Errorf("read meta of %s/%s: %w", t, id, err)
	}
	m, err = block.ParseMeta(data)
	if err == nil && (m.TenantID != t || m.BlockID != id) {
		err = fmt.Errorf("meta names tenant %q block %s", m.TenantID, m.BlockID)
	}
	if err != nil {
		level.Warn(p.logger).Log("msg", "skipping block with unreadable meta", "tenant", t, "block", id, "err", err)
		return nil, nil, nil
	}
	return m, nil, nil
}

// Metas returns the tenant's live blocks, sorted by block ID.
func (p *Poller) Metas(t string) []*block.Meta {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if tl := p.tenants[t]; tl != nil {
		return tl.metas
	}
	return nil
}

// CompactedMetas returns the tenant's compacted blocks not yet deleted.
func (p *Poller) CompactedMetas(t string) []*CompactedMeta {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if tl := p.tenants[t]; tl != nil {
		return tl.compacted
	}
	return nil
}

// Incomplete returns the block directories of tenant t that the last poll
// which listed the backend found neither live nor compacted: being written,
// being deleted, left behind by an upload that never finished, or with an
// unreadable meta. The compactor's janitor looks at these (and checks each
// again itself); pollers that read indexes return nil.
func (p *Poller) Incomplete(t string) []uuid.UUID {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.incomplete[t]
}

// Tenants returns the tenants seen by the last poll, sorted.
func (p *Poller) Tenants() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]string, 0, len(p.tenants))
	for t := range p.tenants {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// AddBlock lists a block at once, before any poll finds it: an ingester of
// this process has just flushed it. It stays listed until a poll returns it
// or reports it compacted.
func (p *Poller) AddBlock(m *block.Meta) {
	if m == nil || m.Validate() != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending[m.BlockID] = pendingBlock{meta: m, added: p.now()}
	tl := p.tenants[m.TenantID]
	if tl == nil {
		tl = &tenantList{}
	}
	if containsID(tl.metas, m.BlockID) || containsCompacted(tl.compacted, m.BlockID) {
		return
	}
	p.tenants[m.TenantID] = &tenantList{metas: insertMeta(slices.Clone(tl.metas), m), compacted: tl.compacted}
	p.blocks.WithLabelValues(m.TenantID).Set(float64(len(tl.metas) + 1))
}

// Update applies a compactor's changes to tenant t at once, without a
// poll: add new live blocks, move blocks to compacted, forget deleted ones.
func (p *Poller) Update(t string, add []*block.Meta, compacted []*CompactedMeta, deleted []uuid.UUID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.tenants[t]
	if old == nil {
		old = &tenantList{}
	}
	gone := map[uuid.UUID]bool{}
	for _, c := range compacted {
		gone[c.BlockID] = true
		p.compacted[c.BlockID] = c
		delete(p.live, c.BlockID)
		delete(p.pending, c.BlockID)
	}
	for _, id := range deleted {
		gone[id] = true
		delete(p.compacted, id)
		delete(p.live, id)
		delete(p.pending, id)
	}
	tl := &tenantList{}
	for _, m := range old.metas {
		if !gone[m.BlockID] {
			tl.metas = append(tl.metas, m)
		}
	}
	for _, m := range add {
		if !gone[m.BlockID] && !containsID(tl.metas, m.BlockID) {
			tl.metas = insertMeta(tl.metas, m)
			p.live[m.BlockID] = m
		}
	}
	del := map[uuid.UUID]bool{}
	for _, id := range deleted {
		del[id] = true
	}
	for _, c := range old.compacted {
		if !del[c.BlockID] && !slices.ContainsFunc(compacted, func(n *CompactedMeta) bool { return n.BlockID == c.BlockID }) {
			tl.compacted = append(tl.compacted, c)
		}
	}
	for _, c := range compacted {
		if !del[c.BlockID] {
			tl.compacted = append(tl.compacted, c)
		}
	}
	slices.SortFunc(tl.compacted, func(a, b *CompactedMeta) int { return cmpMeta(&a.Meta, &b.Meta) })
	p.tenants[t] = tl
	p.blocks.WithLabelValues(t).Set(float64(len(tl.metas)))
	p.compactedBlocks.WithLabelValues(t).Set(float64(len(tl.compacted)))
}

// WriteIndex writes tenant t's index from the poller's current lists.
func (p *Poller) WriteIndex(ctx context.Context, t string) error {
	p.mu.RLock()
	tl := p.tenants[t]
	if tl == nil {
		tl = &tenantList{}
	}
	idx := &Index{CreatedAt: p.now().UTC(), Metas: tl.metas, CompactedMetas: tl.compacted}
	p.mu.RUnlock()
	if idx.Metas == nil {
		idx.Metas = []*block.Meta{}
	}
	if idx.CompactedMetas == nil {
		idx.CompactedMetas = []*CompactedMeta{}
	}
	return WriteIndex(ctx, p.be, t, idx)
}

// Run polls every interval until ctx ends. Unless Config.StaleTenantIndex
// is set, an index older than three intervals counts as stale.
func (p *Poller) Run(ctx context.Context, interval time.Duration) {
	if p.cfg.StaleTenantIndex <= 0 {
		p.mu.Lock()
		p.staleAfter = 3 * interval
		p.mu.Unlock()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
				level.Error(p.logger).Log("msg", "blocklist poll failed", "err", err)
			}
		}
	}
}

func cmpMeta(a, b *block.Meta) int { return strings.Compare(a.BlockID.String(), b.BlockID.String()) }

func containsID(ms []*block.Meta, id uuid.UUID) bool {
	return slices.ContainsFunc(ms, func(m *block.Meta) bool { return m.BlockID == id })
}

func containsCompacted(cs []*CompactedMeta, id uuid.UUID) bool {
	return slices.ContainsFunc(cs, func(c *CompactedMeta) bool { return c.BlockID == id })
}

// insertMeta inserts m into the sorted slice ms (which it may grow).
func insertMeta(ms []*block.Meta, m *block.Meta) []*block.Meta {
	i, _ := slices.BinarySearchFunc(ms, m, cmpMeta)
	return slices.Insert(ms, i, m)
}
