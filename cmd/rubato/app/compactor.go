package app

import (
	"net"
	"net/http"
	"strconv"

	"github.com/grafana/dskit/services"

	"github.com/rubatodb/rubato/compactor"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/blocklist"
)

// initCompactor builds the compactor; its ring goes through the process's
// memberlist KV when compactor.ring.kvstore.store is memberlist, and
// advertises the gRPC port actually listened on unless instance_port is set.
func (a *App) initCompactor() (services.Service, error) {
	cfg := a.cfg.Compactor
	a.useMemberlist(&cfg.Ring.KVStore)
	cfg.Ring.ListenPort = a.cfg.Server.GRPCListenPort
	if a.grpcLis != nil {
		if _, p, err := net.SplitHostPort(a.grpcLis.Addr().String()); err == nil {
			cfg.Ring.ListenPort, _ = strconv.Atoi(p)
		}
	}
	c, err := compactor.New(cfg, a.cfg.Storage.Trace.Block, a.cfg.Storage.Trace.BlocklistPoll, a.store, a.overrides, a.logger, a.reg)
	if err != nil {
		return nil, err
	}
	a.compactor = c
	return c, nil
}

// compactorRingPage serves /compactor/ring: dskit's ring page (POST:
// forget an instance) once the compactor has joined its ring.
func (a *App) compactorRingPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rg := a.compactor.Ring()
		if rg == nil {
			http.Error(w, "the compactor has not joined its ring yet", http.StatusServiceUnavailable)
			return
		}
		rg.ServeHTTP(w, r)
	})
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
