package app

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
)

// listenAdmin opens server.admin_listen_address, if set, for the admin
// endpoints (/flush, /shutdown, /debug/pprof/), which then leave the HTTP
// port; its server runs as one more service, with the HTTP port's
// timeouts, instrumentation and panic recovery.
func (a *App) listenAdmin(kit *serverKit) error {
	addr := a.cfg.Server.AdminListenAddress
	if addr == "" {
		return nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin listen: %w", err)
	}
	a.admin = http.NewServeMux()
	srv := a.cfg.Server.httpServer(&http.Server{Handler: kit.wrapMux(a.admin)})
	a.receivers = append(a.receivers, services.NewBasicService(nil, func(ctx context.Context) error {
		level.Info(a.logger).Log("msg", "admin endpoints listening", "addr", lis.Addr())
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(lis) }()
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return fmt.Errorf("admin server: %w", err)
		}
	}, func(error) error {
		shutdownHTTP(srv, a.cfg.Server.GracefulShutdownTimeout, nil)
		return nil
	}))
	return nil
}

// adminMux is where the admin endpoints are registered: their own
// listener's mux, or the main HTTP mux.
func (a *App) adminMux() *http.ServeMux {
	if a.admin != nil {
		return a.admin
	}
	return a.mux
}
