// Package blocklist keeps each tenant's list of backend blocks, learned by
// polling the object store.
//
// Invariants: a block is listed only once its meta.json is readable (blocks
// are written meta-last, so a listed block is whole); a block whose
// meta.compacted.json exists is not listed; Metas returns a snapshot that
// callers may keep (it is never mutated afterwards). Tenant directory names
// that fail tenant validation are skipped, never used in a key.
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

// Poller polls the backend for block metas.
type Poller struct {
	be     backend.Backend
	logger log.Logger

	mu    sync.RWMutex
	metas map[string][]*block.Meta // per tenant, sorted by block ID
	known map[uuid.UUID]*block.Meta

	blocks      *prometheus.GaugeVec
	pollErrors  prometheus.Counter
	lastSuccess prometheus.Gauge
}

// NewPoller returns a poller; call Poll to fill it.
func NewPoller(be backend.Backend, logger log.Logger, reg prometheus.Registerer) *Poller {
	p := &Poller{
		be: be, logger: logger,
		metas: map[string][]*block.Meta{},
		known: map[uuid.UUID]*block.Meta{},
		blocks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rubato_blocklist_length", Help: "Blocks in the blocklist, per tenant."}, []string{"tenant"}),
		pollErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_blocklist_poll_errors_total", Help: "Blocklist polls that failed."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rubato_blocklist_last_successful_poll_timestamp_seconds", Help: "Time of the last successful poll."}),
	}
	if reg != nil {
		reg.MustRegister(p.blocks, p.pollErrors, p.lastSuccess)
	}
	return p
}

// Poll lists every tenant's blocks and reads the metas of new ones.
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
	next := map[string][]*block.Meta{}
	known := map[uuid.UUID]*block.Meta{}
	for _, d := range dirs {
		if !strings.HasSuffix(d, "/") {
			continue
		}
		t := strings.TrimSuffix(d, "/")
		if tenant.Validate(t) != nil {
			continue
		}
		metas, err := p.pollTenant(ctx, t, known)
		if err != nil {
			return err
		}
		if len(metas) > 0 {
			next[t] = metas
		}
	}
	p.mu.Lock()
	for t := range p.metas {
		if _, ok := next[t]; !ok {
			p.blocks.DeleteLabelValues(t)
		}
	}
	p.metas, p.known = next, known
	p.mu.Unlock()
	for t, m := range next {
		p.blocks.WithLabelValues(t).Set(float64(len(m)))
	}
	return nil
}

func (p *Poller) pollTenant(ctx context.Context, t string, known map[uuid.UUID]*block.Meta) ([]*block.Meta, error) {
	entries, err := p.be.List(ctx, t+"/")
	if err != nil {
		return nil, fmt.Errorf("list blocks of %s: %w", t, err)
	}
	var metas []*block.Meta
	for _, e := range entries {
		id, err := uuid.Parse(strings.TrimSuffix(strings.TrimPrefix(e, t+"/"), "/"))
		if err != nil || !strings.HasSuffix(e, "/") {
			continue
		}
		p.mu.RLock()
		m := p.known[id]
		p.mu.RUnlock()
		if m == nil {
			m, err = p.readMeta(ctx, t, id)
			if err != nil {
				level.Warn(p.logger).Log("msg", "skipping block with unreadable meta", "tenant", t, "block", id, "err", err)
				continue
			}
			if m == nil {
				continue
			}
		}
		known[id] = m
		metas = append(metas, m)
	}
	slices.SortFunc(metas, func(a, b *block.Meta) int { return strings.Compare(a.BlockID.String(), b.BlockID.String()) })
	return metas, nil
}

// readMeta returns nil, nil for a block that is not (or no longer) visible.
func (p *Poller) readMeta(ctx context.Context, t string, id uuid.UUID) (*block.Meta, error) {
	if _, err := p.be.Size(ctx, block.CompactedMetaKey(t, id)); err == nil {
		return nil, nil
	}
	data, err := backend.ReadAll(ctx, p.be, block.MetaKey(t, id))
	if errors.Is(err, backend.ErrNotFound) {
		return nil, nil // still being written
	}
	if err != nil {
		return nil, err
	}
	m, err := block.ParseMeta(data)
	if err != nil {
		return nil, err
	}
	if m.TenantID != t || m.BlockID != id {
		return nil, fmt.Errorf("meta names tenant %q block %s", m.TenantID, m.BlockID)
	}
	return m, nil
}

// Metas returns the tenant's blocks as of the last poll.
func (p *Poller) Metas(t string) []*block.Meta {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.metas[t]
}

// Run polls every interval until ctx ends.
func (p *Poller) Run(ctx context.Context, interval time.Duration) {
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
