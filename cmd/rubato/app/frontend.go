package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/grafana/dskit/services"

	"github.com/rubatodb/rubato/pkg/tenant"
	"github.com/rubatodb/rubato/querier"
	"github.com/rubatodb/rubato/querier/frontend"
	"github.com/rubatodb/rubato/querier/worker"
)

// The query-frontend target and the querier's frontend worker.
//
// -target=query-frontend serves every query API (HTTP and the gRPC
// StreamingQuerier) and the Frontend service on the gRPC port, where the
// queriers' workers (querier.frontend_worker.frontend_address) take jobs.
// A querier with a frontend_address runs a worker beside its own APIs.
// The frontend and a querier serve the same routes, so they never share a
// process.

const modQueryFrontend = TargetQueryFrontend

func (a *App) initQueryFrontend() (services.Service, error) {
	if a.querier != nil {
		return nil, errors.New("target query-frontend cannot run in the same process as a querier (both serve the query API); run them as separate processes")
	}
	fe, err := frontend.New(a.cfg.QueryFrontend, a.store, a.cfg.Storage.Trace.BlocklistPoll, a.overrides, a.logger, a.reg)
	if err != nil {
		return nil, err
	}
	a.frontend = fe
	fe.Register(a.grpcServer)
	tenants := tenant.Resolver{MultitenancyEnabled: a.cfg.MultitenancyEnabled}
	querier.NewTraceHandler(fe, tenants, a.logger).Register(a.mux)
	api := querier.NewSearchAPI(fe, a.cfg.QueryFrontend.Search, tenants, a.logger)
	api.Register(a.mux)
	stream := api.StreamingServer()
	stream.Register(a.httpGRPC)
	stream.Register(a.grpcServer)
	return fe, nil
}

// initQuerierAndWorker is the querier module: the querier, and when
// querier.frontend_worker.frontend_address is set, a worker taking jobs
// from that frontend, started after the querier and stopped before it.
func (a *App) initQuerierAndWorker() (services.Service, error) {
	if a.frontend != nil {
		return nil, errors.New("target querier cannot run in the same process as the query-frontend (both serve the query API); run them as separate processes")
	}
	svc, err := a.initQuerier()
	if err != nil || a.cfg.Querier.FrontendWorker.FrontendAddress == "" {
		return svc, err
	}
	w, err := worker.New(a.cfg.Querier.FrontendWorker, a.querier.RunJob, a.logger, a.reg)
	if err != nil {
		return nil, err
	}
	return inOrder(svc, w), nil
}

// inOrder runs first then second as one service: it starts them in that
// order, stops them in the reverse order, and fails if either fails.
func inOrder(first, second services.Service) services.Service {
	var watcher *services.FailureWatcher
	return services.NewBasicService(func(ctx context.Context) error {
		watcher = services.NewFailureWatcher()
		watcher.WatchService(first)
		watcher.WatchService(second)
		if err := services.StartAndAwaitRunning(ctx, first); err != nil {
			return err
		}
		if err := services.StartAndAwaitRunning(ctx, second); err != nil {
			return errors.Join(err, services.StopAndAwaitTerminated(context.Background(), first))
		}
		return nil
	}, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case err := <-watcher.Chan():
			return fmt.Errorf("querier: %w", err)
		}
	}, func(error) error {
		return errors.Join(
			services.StopAndAwaitTerminated(context.Background(), second),
			services.StopAndAwaitTerminated(context.Background(), first))
	})
}
