package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/querier"
)

// ServerConfig is the `server` block: the keys of dskit's server.Config
// (Tempo's `server` block) that Rubato honours, with dskit's flag names.
// Rubato serves them itself rather than through dskit's server package
// (see serverKit), so the HTTP port can also carry gRPC (h2c) for
// Grafana's streaming search, and routes stay on net/http's ServeMux.
type ServerConfig struct {
	HTTPListenNetwork string `yaml:"http_listen_network"`
	HTTPListenAddress string `yaml:"http_listen_address"`
	HTTPListenPort    int    `yaml:"http_listen_port"`
	HTTPConnLimit     int    `yaml:"http_listen_conn_limit"`
	GRPCListenNetwork string `yaml:"grpc_listen_network"`
	GRPCListenAddress string `yaml:"grpc_listen_address"`
	GRPCListenPort    int    `yaml:"grpc_listen_port"`
	GRPCConnLimit     int    `yaml:"grpc_listen_conn_limit"`

	// RegisterInstrumentation serves /metrics and /debug/pprof/.
	RegisterInstrumentation bool `yaml:"register_instrumentation"`
	// ReportGRPCCodesInInstrumentationLabel puts the gRPC code name
	// (NotFound, …) in status_code instead of success/error/cancel.
	ReportGRPCCodesInInstrumentationLabel bool `yaml:"report_grpc_codes_in_instrumentation_label_enabled"`

	// GracefulShutdownTimeout is the grace of requests in flight when the
	// servers stop: the HTTP and gRPC servers stop accepting at once, and
	// requests still running after it are cancelled, which is not an
	// error. The servers stop last, once every component has stopped (the
	// ingester's flush on shutdown is never cut by it); from then the
	// process has this grace plus stopMargin to exit (App.awaitStopped).
	GracefulShutdownTimeout time.Duration `yaml:"graceful_shutdown_timeout"`

	HTTPServerReadTimeout       time.Duration `yaml:"http_server_read_timeout"`
	HTTPServerReadHeaderTimeout time.Duration `yaml:"http_server_read_header_timeout"`
	HTTPServerWriteTimeout      time.Duration `yaml:"http_server_write_timeout"`
	HTTPServerIdleTimeout       time.Duration `yaml:"http_server_idle_timeout"`

	GRPCServerMaxRecvMsgSize           int           `yaml:"grpc_server_max_recv_msg_size"`
	GRPCServerMaxSendMsgSize           int           `yaml:"grpc_server_max_send_msg_size"`
	GRPCServerMaxConcurrentStreams     uint          `yaml:"grpc_server_max_concurrent_streams"`
	GRPCServerMaxConnectionIdle        time.Duration `yaml:"grpc_server_max_connection_idle"`
	GRPCServerMaxConnectionAge         time.Duration `yaml:"grpc_server_max_connection_age"`
	GRPCServerMaxConnectionAgeGrace    time.Duration `yaml:"grpc_server_max_connection_age_grace"`
	GRPCServerKeepaliveTime            time.Duration `yaml:"grpc_server_keepalive_time"`
	GRPCServerKeepaliveTimeout         time.Duration `yaml:"grpc_server_keepalive_timeout"`
	GRPCServerMinTimeBetweenPings      time.Duration `yaml:"grpc_server_min_time_between_pings"`
	GRPCServerPingWithoutStreamAllowed bool          `yaml:"grpc_server_ping_without_stream_allowed"`
	GRPCServerNumWorkers               int           `yaml:"grpc_server_num_workers"`
	GRPCServerReadBufferSize           int           `yaml:"grpc_server_read_buffer_size"`
	GRPCServerWriteBufferSize          int           `yaml:"grpc_server_write_buffer_size"`

	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`

	// PathPrefix serves every HTTP route under this path (dskit's
	// http_path_prefix); gRPC on the HTTP port is not prefixed.
	PathPrefix string `yaml:"http_path_prefix"`

	// AdminListenAddress (host:port), when set, serves /flush, /shutdown
	// and /debug/pprof/ there instead of on the HTTP port.
	AdminListenAddress string `yaml:"admin_listen_address"`
}

// RegisterFlagsAndApplyDefaults registers the server flags (dskit's names)
// with their defaults: dskit's, except where Tempo or Rubato set others
// (said in the help).
func (c *ServerConfig) RegisterFlagsAndApplyDefaults(f *flag.FlagSet) {
	f.StringVar(&c.HTTPListenNetwork, "server.http-listen-network", "tcp", "HTTP listen network: tcp, tcp4 or tcp6.")
	f.StringVar(&c.HTTPListenAddress, "server.http-listen-address", "", "HTTP listen address (empty: all interfaces).")
	f.IntVar(&c.HTTPListenPort, "server.http-listen-port", 3200, "HTTP listen port (query API, /ready, /metrics; also gRPC over h2c for streaming search).")
	f.IntVar(&c.HTTPConnLimit, "server.http-conn-limit", 0, "Most simultaneous HTTP connections (0: no limit).")
	f.StringVar(&c.GRPCListenNetwork, "server.grpc-listen-network", "tcp", "gRPC listen network: tcp, tcp4 or tcp6.")
	f.StringVar(&c.GRPCListenAddress, "server.grpc-listen-address", "", "gRPC listen address (empty: all interfaces).")
	f.IntVar(&c.GRPCListenPort, "server.grpc-listen-port", 9095, "gRPC listen port (internal API).")
	f.IntVar(&c.GRPCConnLimit, "server.grpc-conn-limit", 0, "Most simultaneous gRPC connections (0: no limit).")
	f.BoolVar(&c.RegisterInstrumentation, "server.register-instrumentation", true, "Serve /metrics and /debug/pprof/.")
	f.BoolVar(&c.ReportGRPCCodesInInstrumentationLabel, "server.report-grpc-codes-in-instrumentation-label-enabled", false, "Label gRPC requests in rubato_request_duration_seconds with their status code name; otherwise success, cancel or error.")
	f.DurationVar(&c.GracefulShutdownTimeout, "server.graceful-shutdown-timeout", 10*time.Second, "Grace of in-flight requests when the servers stop (after every component, an ingester's flush included, has stopped); requests still running then are cancelled.")
	f.DurationVar(&c.HTTPServerReadTimeout, "server.http-read-timeout", 30*time.Second, "Longest time to read a whole HTTP request, headers and body (0: none).")
	f.DurationVar(&c.HTTPServerReadHeaderTimeout, "server.http-read-header-timeout", 0, "Longest time to read HTTP request headers (0: -server.http-read-timeout).")
	f.DurationVar(&c.HTTPServerWriteTimeout, "server.http-write-timeout", 30*time.Second, "Longest time to write an HTTP response, also a streaming search over the HTTP port (0: none).")
	f.DurationVar(&c.HTTPServerIdleTimeout, "server.http-idle-timeout", 120*time.Second, "How long an idle HTTP keep-alive connection stays open.")
	// Components exchange messages up to client.MaxMessageSize: the
	// server accepts what its clients may send (dskit's default is 4 MiB).
	f.IntVar(&c.GRPCServerMaxRecvMsgSize, "server.grpc-max-recv-msg-size-bytes", client.MaxMessageSize, "Largest gRPC message the server receives, in bytes (gRPC port and gRPC on the HTTP port).")
	f.IntVar(&c.GRPCServerMaxSendMsgSize, "server.grpc-max-send-msg-size-bytes", client.MaxMessageSize, "Largest gRPC message the server sends, in bytes.")
	f.UintVar(&c.GRPCServerMaxConcurrentStreams, "server.grpc-max-concurrent-streams", 100, "Most concurrent gRPC streams per client connection on the gRPC port (0: no limit).")
	f.DurationVar(&c.GRPCServerMaxConnectionIdle, "server.grpc.keepalive.max-connection-idle", 0, "Close a gRPC connection idle this long (0: never).")
	f.DurationVar(&c.GRPCServerMaxConnectionAge, "server.grpc.keepalive.max-connection-age", 0, "Close a gRPC connection this old (0: never).")
	f.DurationVar(&c.GRPCServerMaxConnectionAgeGrace, "server.grpc.keepalive.max-connection-age-grace", 0, "Time given to a connection's RPCs after max-connection-age before it is closed forcibly (0: forever).")
	f.DurationVar(&c.GRPCServerKeepaliveTime, "server.grpc.keepalive.time", 2*time.Hour, "Ping a gRPC client after this long without activity.")
	f.DurationVar(&c.GRPCServerKeepaliveTimeout, "server.grpc.keepalive.timeout", 20*time.Second, "Close the connection when a keepalive ping is not answered within this.")
	// Tempo's values (grafana/tempo#493): clients that ping an idle
	// connection are not sent away with GOAWAY.
	f.DurationVar(&c.GRPCServerMinTimeBetweenPings, "server.grpc.keepalive.min-time-between-pings", 10*time.Second, "Shortest interval allowed between client keepalive pings (Tempo's default; dskit's is 5m).")
	f.BoolVar(&c.GRPCServerPingWithoutStreamAllowed, "server.grpc.keepalive.ping-without-stream-allowed", true, "Allow keepalive pings on a connection with no active RPC (Tempo's default).")
	f.IntVar(&c.GRPCServerNumWorkers, "server.grpc.num-workers", 0, "gRPC server workers (0: a goroutine per stream).")
	f.IntVar(&c.GRPCServerReadBufferSize, "server.grpc.read-buffer-size-bytes", 32*1024, "Read buffer per gRPC connection, in bytes.")
	f.IntVar(&c.GRPCServerWriteBufferSize, "server.grpc.write-buffer-size-bytes", 32*1024, "Write buffer per gRPC connection, in bytes.")
	f.StringVar(&c.LogLevel, "log.level", "info", "Log level: debug, info, warn, error.")
	f.StringVar(&c.LogFormat, "log.format", "logfmt", "Log format: logfmt or json.")
	f.StringVar(&c.PathPrefix, "server.path-prefix", "", "Serve every HTTP route under this path, e.g. /tempo (gRPC on the HTTP port is not prefixed).")
	f.StringVar(&c.AdminListenAddress, "server.admin-listen-address", "", "host:port serving /flush, /shutdown and /debug/pprof/ instead of the HTTP port (empty: the HTTP port).")
}

// Validate checks the server block.
func (c *ServerConfig) Validate() error {
	var errs []error
	for _, n := range []struct{ key, v string }{{"http_listen_network", c.HTTPListenNetwork}, {"grpc_listen_network", c.GRPCListenNetwork}} {
		switch n.v {
		case "tcp", "tcp4", "tcp6":
		default:
			errs = append(errs, fmt.Errorf("server.%s %q: want tcp, tcp4 or tcp6", n.key, n.v))
		}
	}
	if c.GRPCServerMaxRecvMsgSize <= 0 || c.GRPCServerMaxSendMsgSize <= 0 {
		errs = append(errs, errors.New("server.grpc_server_max_recv_msg_size and grpc_server_max_send_msg_size must be positive"))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"http_server_read_timeout", c.HTTPServerReadTimeout}, {"http_server_read_header_timeout", c.HTTPServerReadHeaderTimeout},
		{"http_server_write_timeout", c.HTTPServerWriteTimeout}, {"http_server_idle_timeout", c.HTTPServerIdleTimeout},
		{"graceful_shutdown_timeout", c.GracefulShutdownTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("server.%s (%s) must not be negative", d.key, d.v))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("server.log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "logfmt", "json":
	default:
		errs = append(errs, fmt.Errorf("server.log_format %q: want logfmt or json", c.LogFormat))
	}
	if strings.ContainsAny(c.PathPrefix, "?#{} ") {
		errs = append(errs, fmt.Errorf("server.http_path_prefix %q: a plain path, e.g. /tempo", c.PathPrefix))
	}
	return errors.Join(errs...)
}

// pathPrefix is http_path_prefix as one leading slash and no trailing
// one ("" for none), as dskit's router joins it to every route.
func (c *ServerConfig) pathPrefix() string {
	p := strings.Trim(c.PathPrefix, "/")
	if p == "" {
		return ""
	}
	return "/" + p
}

// grpcOptions are the options of every gRPC server of the process: the
// gRPC port and the gRPC served on the HTTP port.
func (c *ServerConfig) grpcOptions(k *serverKit) []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(c.GRPCServerMaxRecvMsgSize),
		grpc.MaxSendMsgSize(c.GRPCServerMaxSendMsgSize),
		grpc.MaxConcurrentStreams(uint32(min(c.GRPCServerMaxConcurrentStreams, 1<<32-1))),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     c.GRPCServerMaxConnectionIdle,
			MaxConnectionAge:      c.GRPCServerMaxConnectionAge,
			MaxConnectionAgeGrace: c.GRPCServerMaxConnectionAgeGrace,
			Time:                  c.GRPCServerKeepaliveTime,
			Timeout:               c.GRPCServerKeepaliveTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             c.GRPCServerMinTimeBetweenPings,
			PermitWithoutStream: c.GRPCServerPingWithoutStreamAllowed,
		}),
		grpc.ReadBufferSize(c.GRPCServerReadBufferSize),
		grpc.WriteBufferSize(c.GRPCServerWriteBufferSize),
		// Instrumentation outside recovery: a recovered panic is
		// measured as the error it is answered with.
		grpc.ChainUnaryInterceptor(k.unaryInstrument, k.unaryRecover),
		grpc.ChainStreamInterceptor(k.streamInstrument, k.streamRecover),
	}
	if c.GRPCServerNumWorkers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(c.GRPCServerNumWorkers)))
	}
	return opts
}

// httpServer applies the HTTP timeouts to srv.
func (c *ServerConfig) httpServer(srv *http.Server) *http.Server {
	srv.ReadTimeout = c.HTTPServerReadTimeout
	srv.ReadHeaderTimeout = c.HTTPServerReadHeaderTimeout // 0: ReadTimeout
	srv.WriteTimeout = c.HTTPServerWriteTimeout
	srv.IdleTimeout = c.HTTPServerIdleTimeout
	return srv
}

func listen(network, addr string, port, limit int) (net.Listener, error) {
	lis, err := net.Listen(network, net.JoinHostPort(addr, fmt.Sprint(port)))
	if err != nil {
		return nil, err
	}
	if limit > 0 {
		lis = netutil.LimitListener(lis, limit)
	}
	return lis, nil
}

// initServer opens the listeners (so ports are known before anything
// starts) and returns the service that serves them. Every server, HTTP
// (the query port, the admin port) and gRPC (the gRPC port, gRPC over h2c
// on the HTTP port), is instrumented and recovers from handler panics.
func (a *App) initServer() (services.Service, error) {
	sc := &a.cfg.Server
	kit := newServerKit(sc.ReportGRPCCodesInInstrumentationLabel, a.logger, a.reg)
	var err error
	a.httpLis, err = listen(sc.HTTPListenNetwork, sc.HTTPListenAddress, sc.HTTPListenPort, sc.HTTPConnLimit)
	if err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	a.grpcLis, err = listen(sc.GRPCListenNetwork, sc.GRPCListenAddress, sc.GRPCListenPort, sc.GRPCConnLimit)
	if err != nil {
		return nil, fmt.Errorf("grpc listen: %w", err)
	}
	if err := a.listenAdmin(kit); err != nil {
		return nil, err
	}
	a.grpcServer = grpc.NewServer(sc.grpcOptions(kit)...)
	a.httpGRPC = grpc.NewServer(sc.grpcOptions(kit)...)
	httpSrv := sc.httpServer(querier.NewHTTPServer(a.httpGRPC, withPathPrefix(sc.pathPrefix(), kit.wrapMux(a.mux))))
	// Every request's context derives from base, cancelled once the grace
	// is over, also for a handler that never reads its body.
	base, cancelBase := context.WithCancel(context.Background())
	httpSrv.BaseContext = func(net.Listener) context.Context { return base }
	a.serverStopping = make(chan struct{})
	return services.NewBasicService(nil, func(ctx context.Context) error {
		errc := make(chan error, 2)
		go func() { errc <- httpSrv.Serve(a.httpLis) }()
		go func() { errc <- a.grpcServer.Serve(a.grpcLis) }()
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		}
	}, func(error) error {
		// Servers stop last (the manager stops dependants first), so
		// in-flight requests finish before their handlers go away.
		close(a.serverStopping)
		defer cancelBase()
		grace := sc.GracefulShutdownTimeout
		var cutHTTP, cutGRPC bool
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); cutHTTP = shutdownHTTP(httpSrv, grace, cancelBase) }()
		go func() { defer wg.Done(); cutGRPC = gracefulStopGRPC(a.grpcServer, grace) }()
		wg.Wait()
		a.httpGRPC.Stop() // its streams ended with the HTTP port's connections
		if cutHTTP || cutGRPC {
			level.Warn(a.logger).Log("msg", "requests still in flight after server.graceful_shutdown_timeout were cancelled",
				"grace", grace, "http", cutHTTP, "grpc", cutGRPC)
		}
		return nil
	}), nil
}

// shutdownHTTP stops srv: it stops accepting at once and gives the
// requests in flight grace to finish; past it, it cancels them (cancel
// ends their contexts) and closes their connections. It reports whether
// requests were cut. An HTTP server's stop never fails for a slow request.
func shutdownHTTP(srv *http.Server, grace time.Duration, cancel func()) (cut bool) {
	ctx, done := context.WithTimeout(context.Background(), grace)
	defer done()
	if err := srv.Shutdown(ctx); err == nil || errors.Is(err, http.ErrServerClosed) {
		return false
	}
	if cancel != nil {
		cancel()
	}
	_ = srv.Close()
	return true
}

// gracefulStopGRPC stops srv accepting, gives the RPCs in flight grace to
// finish, then cancels them; it reports whether RPCs were cut.
func gracefulStopGRPC(srv *grpc.Server, grace time.Duration) (cut bool) {
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-stopped:
		return false
	case <-t.C:
		srv.Stop()
		<-stopped
		return true
	}
}

// registerInstrumentation serves /metrics on the HTTP port and
// /debug/pprof/ on the admin mux, unless server.register_instrumentation
// is off.
func (a *App) registerInstrumentation(adm *http.ServeMux) {
	if !a.cfg.Server.RegisterInstrumentation {
		return
	}
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	adm.HandleFunc("GET /debug/pprof/", pprof.Index)
	adm.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	adm.HandleFunc("GET /debug/pprof/heap", pprof.Index)
}

// withPathPrefix serves h under prefix: "/p/x" reaches h as "/x"; a path
// outside the prefix is a 404 (dskit's router under http_path_prefix).
func withPathPrefix(prefix string, h http.Handler) http.Handler {
	if prefix == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || (rest != "" && rest[0] != '/') {
			http.Error(w, fmt.Sprintf("404 page not found: every route is under server.http_path_prefix %s", prefix), http.StatusNotFound)
			return
		}
		if rest == "" {
			rest = "/"
		}
		r2 := new(http.Request)
		*r2 = *r
		r2.URL = new(url.URL)
		*r2.URL = *r.URL
		r2.URL.Path = rest
		r2.URL.RawPath = ""
		h.ServeHTTP(w, r2)
	})
}
