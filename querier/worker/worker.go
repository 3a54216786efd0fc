package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/dns"
	"github.com/grafana/dskit/dns/godns"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// maxMessageSize bounds job and result messages (traces can be large).
const maxMessageSize = 100 << 20

// Config is `querier.frontend_worker` (Tempo's keys).
type Config struct {
	// FrontendAddress names the query-frontends' gRPC endpoints: host:port
	// (every A/AAAA record of host, as in Tempo), dns+host:port (the same),
	// dnssrv+name or dnssrvnoa+name (SRV records, dskit's dns package), or
	// ip:port. Empty: the querier takes no jobs from a frontend.
	FrontendAddress string `yaml:"frontend_address"`
	// DNSLookupPeriod is how often FrontendAddress is resolved again;
	// frontends that appear get streams, those that go are drained.
	DNSLookupPeriod time.Duration `yaml:"dns_lookup_duration"`
	// Parallelism is how many jobs this querier runs at once for each
	// frontend (one Process stream each).
	Parallelism int `yaml:"parallelism"`

	// Resolver resolves FrontendAddress; nil: the system's resolver
	// (net.DefaultResolver through dskit's dns package). Tests set their
	// own, e.g. dns.NewResolver over fake records.
	Resolver dns.Resolver `yaml:"-"`
}

// RegisterFlagsAndApplyDefaults registers flags.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.FrontendAddress, prefix+"querier.frontend-worker.frontend-address", "", "gRPC address of the query-frontends to take jobs from: host:port (every address host resolves to), dns+host:port, dnssrv+name or ip:port; empty: none.")
	f.DurationVar(&c.DNSLookupPeriod, prefix+"querier.frontend-worker.dns-lookup-period", 10*time.Second, "How often the query-frontend address is resolved again, to add and drain frontends.")
	f.IntVar(&c.Parallelism, prefix+"querier.frontend-worker.parallelism", 2, "Jobs run at once for each query-frontend.")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.FrontendAddress == "" {
		return nil
	}
	if c.Parallelism < 1 {
		return errors.New("querier.frontend_worker.parallelism must be at least 1")
	}
	if c.DNSLookupPeriod <= 0 {
		return errors.New("querier.frontend_worker.dns_lookup_duration must be positive")
	}
	if _, _, err := parseAddress(c.FrontendAddress); err != nil {
		return fmt.Errorf("querier.frontend_worker.frontend_address: %w", err)
	}
	return nil
}

// parseAddress splits a frontend address into dskit's query type and name.
func parseAddress(addr string) (dns.QType, string, error) {
	if strings.Contains(addr, "://") {
		return "", "", fmt.Errorf("%q: want host:port, dns+host:port or dnssrv+name, not a URL", addr)
	}
	qtype, name := dns.GetQTypeName(addr)
	switch dns.QType(qtype) {
	case "", dns.A:
		if _, port, err := net.SplitHostPort(name); err != nil || port == "" {
			return "", "", fmt.Errorf("%q: want host:port", addr)
		}
		return dns.A, name, nil
	case dns.SRV, dns.SRVNoA:
		if name == "" {
			return "", "", fmt.Errorf("%q: no name to look up", addr)
		}
		return dns.QType(qtype), name, nil
	}
	return "", "", fmt.Errorf("%q: unknown lookup %q (dns, dnssrv or dnssrvnoa)", addr, qtype)
}

// RunFunc runs one job and returns the answer with its result set, or an
// error (a gRPC status, whose code the frontend keeps).
type RunFunc func(ctx context.Context, job *rubatopb.QueryJob) (*rubatopb.WorkerMessage, error)

// Worker takes jobs from every query-frontend its address resolves to and
// runs them with run.
type Worker struct {
	services.Service

	cfg      Config
	qtype    dns.QType
	name     string
	resolver dns.Resolver
	run      RunFunc
	logger   log.Logger
	// resolvedNone: the last lookup found no frontend (warned once).
	resolvedNone bool

	jobs       *prometheus.CounterVec
	frontends  prometheus.Gauge
	dnsFailure prometheus.Counter
}

// New builds a worker; it resolves and connects when started.
func New(cfg Config, run RunFunc, logger log.Logger, reg prometheus.Registerer) (*Worker, error) {
	if cfg.FrontendAddress == "" {
		return nil, errors.New("querier.frontend_worker.frontend_address is empty")
	}
	if cfg.DNSLookupPeriod == 0 {
		cfg.DNSLookupPeriod = 10 * time.Second // a Config built in code
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	qtype, name, _ := parseAddress(cfg.FrontendAddress)
	logger = log.With(logger, "component", "frontend-worker", "frontend_address", cfg.FrontendAddress)
	resolver := cfg.Resolver
	if resolver == nil {
		resolver = dns.NewResolver(&godns.Resolver{Resolver: net.DefaultResolver}, logger)
	}
	w := &Worker{
		cfg: cfg, qtype: qtype, name: name, resolver: resolver, run: run, logger: logger,
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_querier_worker_jobs_total", Help: "Query-frontend jobs run by this querier, by outcome (ok, error, cancelled)."}, []string{"outcome"}),
		frontends: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rubato_querier_worker_frontends", Help: "Query-frontends this querier's worker currently runs job streams to (the addresses frontend_address resolves to)."}),
		dnsFailure: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_querier_worker_dns_failures_total", Help: "Failed lookups of frontend_address (the frontends last resolved are kept)."}),
	}
	if reg != nil {
		reg.MustRegister(w.jobs, w.frontends, w.dnsFailure)
	}
	w.Service = services.NewBasicService(nil, w.running, nil)
	return w, nil
}

// frontend is one resolved frontend address and its streams.
type frontend struct {
	addr   string
	conn   *grpc.ClientConn
	logger log.Logger
	// drainCtx ends when the address stops resolving: the streams take no
	// further job and end once their running job is answered.
	drainCtx context.Context
	drain    context.CancelFunc
}

func (f *frontend) draining() bool { return f.drainCtx.Err() != nil }

// running resolves the frontend address every dns_lookup_duration and keeps
// parallelism streams to each address, until ctx ends; it returns once
// every stream has ended and every connection is closed.
func (w *Worker) running(ctx context.Context) error {
	active := map[string]*frontend{}
	var wg sync.WaitGroup // one per frontend, drained ones included
	defer func() {
		for _, f := range active {
			f.drain()
		}
		wg.Wait()
		w.frontends.Set(0)
	}()
	tick := time.NewTicker(w.cfg.DNSLookupPeriod)
	defer tick.Stop()
	for {
		w.update(ctx, active, &wg)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// update resolves the address once and adds and drains frontends to match.
// A failed lookup changes nothing; one that succeeds with no address drains
// every frontend (the name has none, e.g. no frontend pod is ready).
func (w *Worker) update(ctx context.Context, active map[string]*frontend, wg *sync.WaitGroup) {
	addrs, err := w.resolve(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.dnsFailure.Inc()
			level.Warn(w.logger).Log("msg", "resolving the query-frontend address; keeping the frontends resolved before", "err", err)
		}
		return
	}
	if len(addrs) == 0 && !w.resolvedNone {
		level.Warn(w.logger).Log("msg", "the query-frontend address resolves to nothing; no frontend gets this querier's jobs until it does")
	}
	w.resolvedNone = len(addrs) == 0
	for addr, f := range active {
		if !slices.Contains(addrs, addr) {
			level.Info(f.logger).Log("msg", "query-frontend no longer resolved; draining its streams")
			f.drain()
			delete(active, addr)
		}
	}
	for _, addr := range addrs {
		if active[addr] != nil {
			continue
		}
		f, err := w.connect(ctx, addr)
		if err != nil {
			level.Error(w.logger).Log("msg", "connecting to query-frontend", "addr", addr, "err", err)
			continue
		}
		level.Info(f.logger).Log("msg", "query-frontend added", "parallelism", w.cfg.Parallelism)
		active[addr] = f
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.serveFrontend(ctx, f)
		}()
	}
	w.frontends.Set(float64(len(active)))
}

// resolve returns the sorted, distinct host:port addresses of the frontends.
func (w *Worker) resolve(ctx context.Context) ([]string, error) {
	if w.qtype == dns.A {
		if host, _, _ := net.SplitHostPort(w.name); net.ParseIP(host) != nil {
			return []string{w.name}, nil // an IP: nothing to look up
		}
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.DNSLookupPeriod)
	defer cancel()
	addrs, err := w.resolver.Resolve(ctx, w.name, w.qtype)
	if err != nil {
		return nil, err
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), nil
}

func (w *Worker) connect(ctx context.Context, addr string) (*frontend, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize), grpc.MaxCallSendMsgSize(maxMessageSize)))
	if err != nil {
		return nil, err
	}
	drainCtx, drain := context.WithCancel(ctx)
	return &frontend{addr: addr, conn: conn, logger: log.With(w.logger, "frontend", addr), drainCtx: drainCtx, drain: drain}, nil
}

// serveFrontend keeps parallelism Process streams open to f, reconnecting
// with backoff after every failure, until f drains or ctx ends; then it
// closes f's connection.
func (w *Worker) serveFrontend(ctx context.Context, f *frontend) {
	var wg sync.WaitGroup
	for range w.cfg.Parallelism {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Backoff ends with the drain, so a drained frontend's
			// streams stop retrying at once.
			b := backoff.New(f.drainCtx, backoff.Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second})
			for b.Ongoing() {
				served, err := w.process(ctx, f)
				if ctx.Err() != nil || f.draining() {
					return
				}
				if served {
					b.Reset()
				}
				level.Warn(f.logger).Log("msg", "frontend stream ended; reconnecting", "err", err)
				b.Wait()
			}
		}()
	}
	wg.Wait()
	f.drain()
	if err := f.conn.Close(); err != nil {
		level.Debug(f.logger).Log("msg", "closing connection", "err", err)
	}
	level.Info(f.logger).Log("msg", "query-frontend streams ended")
}
