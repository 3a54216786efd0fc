package app

import (
	"github.com/grafana/dskit/services"

	"github.com/rubatodb/rubato/compactor"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/blocklist"
)

func (a *App) initCompactor() (services.Service, error) {
	c, err := compactor.New(a.cfg.Compactor, a.cfg.Storage.Trace.Block, a.cfg.Storage.Trace.BlocklistPoll, a.store, a.overrides, a.logger, a.reg)
	if err != nil {
		return nil, err
	}
	a.compactor = c
	return c, nil
}

// ingesterStore is the backend the ingester flushes to: in a process that
// also runs a querier, every flushed block is announced to the querier's
// blocklist at once instead of at the next poll.
func (a *App) ingesterStore() backend.Backend {
	return &blocklist.NotifyingBackend{Backend: a.store, OnBlock: func(m *block.Meta) {
		if a.querier != nil {
			a.querier.AddBlock(m)
		}
	}}
}
