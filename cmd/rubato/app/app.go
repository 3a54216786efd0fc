// Package app assembles Rubato's components into one process: configuration,
// the module graph (dskit modules), and the HTTP and gRPC servers.
//
// Invariants: each component is a dskit service started in dependency order
// and stopped in reverse, the servers last; a stop never cuts a
// component's own stopping (an ingester's flush), and once the servers
// begin to stop, requests in flight get server.graceful_shutdown_timeout,
// are then cancelled, and the process exits within that grace plus
// stopMargin, cleanly (awaitStopped, server.go); a component's failure stops the process with an
// error; /ready answers 200 only when every started service is Running and
// the ingester ring can take writes, and otherwise says which is not. No
// configuration key passes unnoticed: every key Rubato does not use is
// logged with its path (fatal under -config.strict), and a TLS setting it
// cannot honour stops the start. -help prints the defaults actually applied.
// /flush and /shutdown change state and take POST only, never cross-origin.
// Every HTTP and gRPC server of server.go recovers a handler panic (500 /
// Internal, logged with its stack, counted) and keeps serving, and labels
// its request metrics by route pattern or gRPC method, never raw path.
//
// Cluster invariants (ring.go): every ring a process joins or reads gets
// the process's one memberlist KV (dskit's KVInitService), which joins the
// gossip cluster only if a ring uses kvstore.store: memberlist; the
// distributor and querier of a process share one ingester ring client and
// one pool of ingester clients (dskit's ring/client.Pool); the ingester
// advertises lifecycler.address/port when set and otherwise derives them
// (lifecyclerConfig) without rewriting the configuration.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/grpcutil"
	"github.com/grafana/dskit/kv/memberlist"
	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rubatodb/rubato/compactor"
	"github.com/rubatodb/rubato/distributor"
	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/distributor/receiver/otlp"
	"github.com/rubatodb/rubato/distributor/receiver/zipkin"
	"github.com/rubatodb/rubato/ingester"
	"github.com/rubatodb/rubato/ingester/client"
	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
	"github.com/rubatodb/rubato/querier"
	"github.com/rubatodb/rubato/querier/frontend"
)

// Version is Rubato's version, set at build time with -ldflags.
var Version = "0.1.0-dev"

// TempoAPIVersion is the Tempo API level Rubato answers as in
// /api/status/buildinfo; Grafana compares it to enable features.
const TempoAPIVersion = "2.9.0"

// Targets.
const (
	TargetAll         = "all"
	TargetDistributor = "distributor"
	TargetIngester    = "ingester"
	TargetQuerier     = "querier"
	TargetCompactor   = "compactor"
	// TargetQueryFrontend is frontend.go's.
	TargetQueryFrontend = "query-frontend"
)

const (
	modServer      = "server"
	modOverrides   = "overrides"
	modStore       = "store"
	modDistributor = "distributor"
	modIngester    = "ingester"
	modQuerier     = "querier"
	modCompactor   = "compactor"
)

// App is one Rubato process.
type App struct {
	cfg    *Config
	logger log.Logger
	reg    *prometheus.Registry

	mux        *http.ServeMux
	admin      *http.ServeMux // nil: admin endpoints are on mux
	grpcServer *grpc.Server
	// httpGRPC serves gRPC (tempopb.StreamingQuerier) on the HTTP port:
	// Grafana dials streaming search at the data source's HTTP URL (h2c).
	httpGRPC *grpc.Server
	httpLis  net.Listener
	grpcLis  net.Listener

	overrides    *overrides.Overrides
	store        backend.Backend
	memberlistKV *memberlist.KVInitService
	ingesterRing *ring.Ring
	pool         *client.Pool // clients of ingesters; with ingesterRing
	ingester     *ingester.Ingester
	distributor  *distributor.Distributor
	querier      *querier.Querier
	compactor    *compactor.Compactor
	frontend     *frontend.Frontend
	receivers    []services.Service

	manager *services.Manager
	// serverStopping is closed when the servers begin to stop (initServer).
	serverStopping chan struct{}
}

// New builds an App from a validated config; nothing listens yet.
func New(cfg *Config, logger log.Logger) (*App, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &App{cfg: cfg, logger: logger, reg: reg, mux: http.NewServeMux()}, nil
}

// Run starts every module of the target and blocks until ctx ends or a
// module fails; then it stops everything (awaitStopped).
func (a *App) Run(ctx context.Context) error {
	mm := modules.NewManager(a.logger)
	mm.RegisterModule(modServer, a.initServer, modules.UserInvisibleModule)
	mm.RegisterModule(modOverrides, a.initOverrides, modules.UserInvisibleModule)
	mm.RegisterModule(modStore, a.initStore, modules.UserInvisibleModule)
	mm.RegisterModule(modMemberlistKV, a.initMemberlistKV, modules.UserInvisibleModule)
	mm.RegisterModule(modIngesterRing, a.initIngesterRing, modules.UserInvisibleModule)
	mm.RegisterModule(modIngester, a.initIngester)
	mm.RegisterModule(modDistributor, a.initDistributor)
	mm.RegisterModule(modQuerier, a.initQuerierAndWorker)
	mm.RegisterModule(modQueryFrontend, a.initQueryFrontend)
	mm.RegisterModule(modCompactor, a.initCompactor)
	mm.RegisterModule(TargetAll, nil)
	deps := map[string][]string{
		modStore:        {modServer},
		modOverrides:    {modServer},
		modMemberlistKV: {modServer},
		modIngesterRing: {modMemberlistKV},
		modIngester:     {modStore, modOverrides, modMemberlistKV, modIngesterRing},
		modDistributor:  {modOverrides, modIngesterRing},
		modQuerier:      {modStore, modOverrides, modIngesterRing},
		modCompactor:    {modStore, modOverrides, modMemberlistKV},
		TargetAll:       {modIngester, modDistributor, modQuerier, modCompactor},
	}
	deps[modQueryFrontend] = []string{modStore, modOverrides}
	for m, d := range deps {
		if err := mm.AddDependency(m, d...); err != nil {
			return err
		}
	}
	svcMap, err := mm.InitModuleServices(a.cfg.Targets()...)
	if err != nil {
		return err
	}
	svcs := make([]services.Service, 0, len(svcMap)+len(a.receivers))
	for _, s := range svcMap {
		svcs = append(svcs, s)
	}
	svcs = append(svcs, a.receivers...)
	a.manager, err = services.NewManager(svcs...)
	if err != nil {
		return err
	}
	// The ingester client pools of other processes health-check this one.
	grpc_health_v1.RegisterHealthServer(a.grpcServer, grpcutil.NewHealthCheck(a.manager))
	a.registerHTTP()
	failed := make(chan error, 1)
	a.manager.AddListener(services.NewManagerListener(nil, nil, func(s services.Service) {
		select {
		case failed <- fmt.Errorf("service failed: %w", s.FailureCase()):
		default:
		}
	}))
	if err := a.manager.StartAsync(context.Background()); err != nil {
		return err
	}
	level.Info(a.logger).Log("msg", "rubato started", "target", a.cfg.Target, "http", a.httpLis.Addr(), "grpc", a.grpcLis.Addr())
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-failed:
		level.Error(a.logger).Log("msg", "stopping after failure", "err", runErr)
	}
	a.manager.StopAsync()
	if err := a.awaitStopped(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("stop: %w", err))
	}
	if a.pool != nil {
		runErr = errors.Join(runErr, a.pool.Close())
	}
	return runErr
}

// stopMargin is what the process has, beyond server.graceful_shutdown_timeout,
// to finish stopping once its servers begin to stop.
const stopMargin = 5 * time.Second

// awaitStopped waits for the stopping manager. Components stop before the
// servers, each bounded by its own timeouts (an ingester's flush on
// shutdown uploads each block within flush_op_timeout), with no overall
// deadline that could cut a flush short; while they stop, what is still
// running is logged every graceful_shutdown_timeout. Once the servers
// begin to stop, they give requests in flight graceful_shutdown_timeout
// and cancel the rest, so the manager must be stopped within that grace
// plus stopMargin.
func (a *App) awaitStopped() error {
	stopped := make(chan error, 1)
	go func() { stopped <- a.manager.AwaitStopped(context.Background()) }()
	grace := a.cfg.Server.GracefulShutdownTimeout
	tick := time.NewTicker(max(grace, time.Second))
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case err := <-stopped:
			return err
		case <-a.serverStopping:
			waiting = false
		case <-tick.C:
			level.Info(a.logger).Log("msg", "waiting for components to stop before the servers (an ingester may be flushing)",
				"stopping", len(a.manager.ServicesByState()[services.Stopping]))
		}
	}
	deadline := time.NewTimer(grace + stopMargin)
	defer deadline.Stop()
	select {
	case err := <-stopped:
		return err
	case <-deadline.C:
		return fmt.Errorf("not stopped %s after the servers began to stop (server.graceful_shutdown_timeout %s + %s)", grace+stopMargin, grace, stopMargin)
	}
}

func (a *App) initOverrides() (services.Service, error) {
	a.overrides = overrides.New(a.cfg.Overrides)
	a.overrides.SetKeyCheck(runtimeKeyCheck(a.cfg.Overrides.PerTenantOverrideConfig, a.cfg.strict, a.logger))
	return overrides.NewReloader(a.overrides, a.logger, a.reg), nil
}

func (a *App) initStore() (services.Service, error) {
	be, err := newStore(a.cfg.Storage.Trace, a.logger, a.reg)
	if err != nil {
		return nil, err
	}
	a.store = be
	return services.NewIdleService(nil, func(error) error { return be.Close() }), nil
}

func (a *App) initIngester() (services.Service, error) {
	cfg := a.cfg.Ingester
	cfg.LifecyclerConfig = a.lifecyclerConfig()
	ing, err := ingester.New(cfg, a.cfg.Storage.Trace.WAL, a.cfg.Storage.Trace.Block, a.ingesterStore(), a.overrides, a.logger, a.reg)
	if err != nil {
		return nil, err
	}
	a.ingester = ing
	if cfg.LifecyclerConfig.RingConfig.ReplicationFactor > 1 {
		// One replica of each trace builds it; the others hold it and are
		// told when its block is flushed (ingester/held.go).
		ing.UseReplicas(ingester.Replicas{Ring: a.ingesterRing, Pool: a.pool})
	}
	rubatopb.RegisterIngesterServer(a.grpcServer, ing)
	return ing, nil
}

func (a *App) initDistributor() (services.Service, error) {
	dcfg := a.cfg.Distributor.Config
	dcfg.PushTimeout = a.cfg.IngesterClient.RemoteTimeout
	d, err := distributor.New(dcfg, a.ingesterRing, a.overrides, a.pool, a.logger, a.reg)
	if err != nil {
		return nil, err
	}
	a.distributor = d
	tenants := tenant.Resolver{MultitenancyEnabled: a.cfg.MultitenancyEnabled}
	rc := a.cfg.Distributor.Receivers
	var consumer receiver.Consumer = d
	if rc.OTLP.GRPC != nil || rc.OTLP.HTTP != nil {
		r, err := otlp.New(rc.OTLP, consumer, tenants, a.logger, a.reg)
		if err != nil {
			return nil, err
		}
		a.receivers = append(a.receivers, r)
	}
	if rc.Zipkin != nil {
		r, err := zipkin.New(*rc.Zipkin, consumer, tenants, a.logger, a.reg)
		if err != nil {
			return nil, err
		}
		a.receivers = append(a.receivers, r)
	}
	js, err := rc.jaeger.build(consumer, tenants, a.logger, a.reg)
	if err != nil {
		return nil, err
	}
	a.receivers = append(a.receivers, js...)
	return d, nil
}

// querierRing is the ingester ring the querier reads recent traces from,
// or nil when it can have none: an inmemory ring lives in one process, so
// in a process that runs no ingester it stays empty for ever, and the
// querier (which answers 503 on an empty ring, never a false "not found")
// must then read the backend alone, as a querier without ingesters does.
func (a *App) querierRing() ring.ReadRing {
	if a.cfg.Ingester.LifecyclerConfig.RingConfig.KVStore.Store != "inmemory" || a.runs(TargetIngester) {
		return a.ingesterRing
	}
	level.Warn(a.logger).Log("msg", "this querier reads only blocks in the backend: the ingester ring's kvstore is inmemory and this process runs no ingester; use memberlist, consul or etcd to read recent traces from the ingesters")
	return nil
}

// runs reports whether this process runs the target (directly or through
// "all").
func (a *App) runs(target string) bool {
	for _, t := range a.cfg.Targets() {
		if t == target || t == TargetAll {
			return true
		}
	}
	return false
}

func (a *App) initQuerier() (services.Service, error) {
	q := querier.New(a.cfg.Querier, querier.StoreConfig{
		BlocklistPoll:   a.cfg.Storage.Trace.BlocklistPoll,
		BlockCacheBytes: a.cfg.Storage.Trace.Cache.BlockBytes,
	}, a.querierRing(), a.pool, a.store, a.overrides, a.logger, a.reg)
	a.querier = q
	tenants := tenant.Resolver{MultitenancyEnabled: a.cfg.MultitenancyEnabled}
	querier.NewHandler(q, tenants).Register(a.mux)
	// The querier serves search once it implements querier.Searcher;
	// until then the search API answers 501 naming the feature.
	var searcher querier.Searcher
	if s, ok := any(q).(querier.Searcher); ok {
		searcher = s
	}
	searchAPI := querier.NewSearchAPI(searcher, a.cfg.QueryFrontend.Search, tenants, a.logger)
	searchAPI.Register(a.mux)
	stream := searchAPI.StreamingServer()
	stream.Register(a.httpGRPC)
	stream.Register(a.grpcServer)
	return q, nil
}

func (a *App) registerHTTP() {
	m := a.mux
	m.HandleFunc("GET /api/echo", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("echo")) })
	m.HandleFunc("GET /ready", a.ready)
	m.HandleFunc("GET /api/status/buildinfo", a.buildInfo)
	m.HandleFunc("GET /status/buildinfo", a.buildInfo)
	m.HandleFunc("GET /status/config", a.statusConfig)
	m.HandleFunc("GET /status/version", a.buildInfo)
	adm := a.adminMux() // the HTTP port, or server.admin_listen_address
	a.registerInstrumentation(adm)
	if a.ingester != nil {
		// State-changing endpoints: POST only (any other method gets 405),
		// and never from a browser on another origin (403), so a link or a
		// cross-site form cannot stop ingest.
		var csrf http.CrossOriginProtection
		adm.Handle("POST /flush", csrf.Handler(http.HandlerFunc(a.ingester.FlushHandler)))
		adm.Handle("POST /shutdown", csrf.Handler(http.HandlerFunc(a.ingester.ShutdownHandler)))
		// Said explicitly: the query port's catch-all (404 with a
		// message) would otherwise take the other methods.
		adm.HandleFunc("/flush", postOnly)
		adm.HandleFunc("/shutdown", postOnly)
	}
	if a.ingesterRing != nil {
		// dskit's ring page (POST: forget an instance).
		m.Handle("/distributor/ring", a.ingesterRing)
		m.Handle("/ingester/ring", a.ingesterRing)
	}
	if a.compactor != nil {
		m.Handle("/compactor/ring", a.compactorRingPage())
	}
	if a.memberlistKV != nil {
		m.Handle("GET /memberlist", a.memberlistPage())
	}
	querier.RegisterFallbacks(m)
}

// postOnly answers a state-changing endpoint asked with another method.
func postOnly(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Allow", http.MethodPost)
	http.Error(w, "method not allowed: this endpoint changes state and takes POST only", http.StatusMethodNotAllowed)
}

func (a *App) ready(w http.ResponseWriter, r *http.Request) {
	if msg := a.notRunning(); msg != "" {
		http.Error(w, "not ready: "+msg, http.StatusServiceUnavailable)
		return
	}
	if a.ingester != nil {
		if err := a.ingester.CheckReady(r.Context()); err != nil {
			http.Error(w, "not ready: ingester: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	if a.distributor != nil {
		if _, err := a.ingesterRing.GetReplicationSetForOperation(ring.WriteNoExtend); err != nil {
			http.Error(w, "not ready: no ingesters in the ring: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	msg := "ready"
	if a.ingester != nil {
		// Uploads failing does not make the process unready: pushes are
		// still acknowledged (WAL) and traces still served. Say so.
		if pending, err := a.ingester.FlushStatus(); err != nil {
			msg += fmt.Sprintf("\nwarning: %d blocks waiting for the backend; last upload failed at %v", pending, err)
		}
	}
	_, _ = w.Write([]byte(msg))
}

// notRunning says why not every service is Running ("" when all are).
func (a *App) notRunning() string {
	if a.manager == nil {
		return "services starting"
	}
	if a.manager.IsHealthy() {
		return ""
	}
	if a.ingester != nil {
		switch a.ingester.State() {
		case services.Stopping, services.Terminated:
			return "the ingester was shut down (POST /shutdown, or the process is stopping); it takes no writes until the process restarts"
		case services.Failed:
			return fmt.Sprintf("the ingester failed: %v", a.ingester.FailureCase())
		}
	}
	byState := a.manager.ServicesByState()
	switch {
	case len(byState[services.Failed]) > 0:
		return fmt.Sprintf("%d services failed: %v", len(byState[services.Failed]), byState[services.Failed][0].FailureCase())
	case len(byState[services.Stopping])+len(byState[services.Terminated]) > 0:
		return "services stopping"
	}
	return "services starting"
}

func (a *App) buildInfo(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{
		"version":   TempoAPIVersion,
		"revision":  "rubato-" + Version,
		"branch":    "rubato",
		"buildUser": "rubato",
		"buildDate": "",
		"goVersion": runtime.Version(),
	})
}

func (a *App) statusConfig(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/yaml")
	b, err := yaml.Marshal(a.cfg)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(redactSecrets(b))
}

// Main is the process entry point; it returns the exit code.
func Main(args []string) int {
	logger := log.NewLogfmtLogger(log.NewSyncWriter(os.Stderr))
	for _, a := range args {
		if a == "-version" || a == "--version" {
			fmt.Printf("rubato %s (tempo api %s, %s)\n", Version, TempoAPIVersion, runtime.Version())
			return 0
		}
	}
	if len(args) > 0 && args[0] == SelfTestCommand {
		return SelfTest(args[1:], os.Stdout, os.Stderr)
	}
	if verifyRequested(args) {
		return Verify(args, os.Stdout, os.Stderr)
	}
	cfg, err := Load(args, logger)
	if errors.Is(err, flag.ErrHelp) {
		return 0 // -help printed the flags and their defaults
	}
	if err != nil {
		level.Error(logger).Log("msg", "configuration", "err", err)
		return 1
	}
	logger = newLogger(cfg.Server)
	if err := cfg.Validate(); err != nil {
		level.Error(logger).Log("msg", "invalid configuration", "err", err)
		return 1
	}
	app, err := New(cfg, logger)
	if err != nil {
		level.Error(logger).Log("msg", "init", "err", err)
		return 1
	}
	ctx, stop := signalContext(logger)
	defer stop()
	if err := app.Run(ctx); err != nil {
		level.Error(logger).Log("msg", "rubato stopped with error", "err", err)
		return 1
	}
	level.Info(logger).Log("msg", "rubato stopped")
	return 0
}
