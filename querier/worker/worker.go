package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/grafana/dskit/backoff"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// maxMessageSize bounds job and result messages (traces can be large).
const maxMessageSize = 100 << 20

// Config is `querier.frontend_worker` (Tempo's keys).
type Config struct {
	// FrontendAddress is the query-frontend's gRPC host:port; empty: the
	// querier takes no jobs from a frontend.
	FrontendAddress string `yaml:"frontend_address"`
	// Parallelism is how many jobs this querier runs at once for the
	// frontend (one Process stream each).
	Parallelism int `yaml:"parallelism"`
}

// RegisterFlagsAndApplyDefaults registers flags.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.StringVar(&c.FrontendAddress, prefix+"querier.frontend-worker.frontend-address", "", "gRPC address (host:port) of the query-frontend to take jobs from; empty: none.")
	f.IntVar(&c.Parallelism, prefix+"querier.frontend-worker.parallelism", 2, "Jobs run at once for the query-frontend.")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.FrontendAddress != "" && c.Parallelism < 1 {
		return errors.New("querier.frontend_worker.parallelism must be at least 1")
	}
	return nil
}

// RunFunc runs one job and returns the answer with its result set, or an
// error (a gRPC status, whose code the frontend keeps).
type RunFunc func(ctx context.Context, job *rubatopb.QueryJob) (*rubatopb.WorkerMessage, error)

// Worker takes jobs from a query-frontend and runs them with run.
type Worker struct {
	services.Service

	cfg    Config
	run    RunFunc
	logger log.Logger
	conn   *grpc.ClientConn

	jobs *prometheus.CounterVec
}

// New builds a worker; it connects when started.
func New(cfg Config, run RunFunc, logger log.Logger, reg prometheus.Registerer) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.FrontendAddress == "" {
		return nil, errors.New("querier.frontend_worker.frontend_address is empty")
	}
	w := &Worker{
		cfg: cfg, run: run, logger: log.With(logger, "component", "frontend-worker", "frontend", cfg.FrontendAddress),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_querier_worker_jobs_total", Help: "Query-frontend jobs run by this querier, by outcome (ok, error, cancelled)."}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(w.jobs)
	}
	w.Service = services.NewBasicService(w.starting, w.running, w.stopping)
	return w, nil
}

func (w *Worker) starting(context.Context) error {
	conn, err := grpc.NewClient(w.cfg.FrontendAddress,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize), grpc.MaxCallSendMsgSize(maxMessageSize)))
	if err != nil {
		return fmt.Errorf("frontend %s: %w", w.cfg.FrontendAddress, err)
	}
	w.conn = conn
	return nil
}

// running keeps parallelism Process streams open until ctx ends,
// reconnecting with backoff after every failure.
func (w *Worker) running(ctx context.Context) error {
	var wg sync.WaitGroup
	for range w.cfg.Parallelism {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := backoff.New(ctx, backoff.Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second})
			for b.Ongoing() {
				served, err := w.process(ctx)
				if ctx.Err() != nil {
					return
				}
				if served {
					b.Reset()
				}
				level.Warn(w.logger).Log("msg", "frontend stream ended; reconnecting", "err", err)
				b.Wait()
			}
		}()
	}
	wg.Wait()
	return nil
}

func (w *Worker) stopping(error) error {
	if w.conn == nil {
		return nil
	}
	return w.conn.Close()
}

// process serves one Process stream until it breaks: it runs the job sent,
// cancels it when asked, and answers each job once. served reports whether
// any job was taken (the connection worked).
func (w *Worker) process(ctx context.Context) (served bool, err error) {
	ctx, cancelStream := context.WithCancel(ctx)
	defer cancelStream()
	stream, err := rubatopb.NewFrontendClient(w.conn).Process(ctx)
	if err != nil {
		return false, err
	}
	var (
		sendMu  sync.Mutex
		wg      sync.WaitGroup
		running = map[uint64]context.CancelFunc{}
		runMu   sync.Mutex
	)
	// Every job goroutine ends before process returns (cancelStream first).
	defer wg.Wait()
	defer cancelStream()
	for {
		msg, err := stream.Recv()
		if err != nil {
			return served, err
		}
		if msg.GetCancel() {
			runMu.Lock()
			if c := running[msg.GetJobId()]; c != nil {
				c()
			}
			runMu.Unlock()
			continue
		}
		served = true
		jobCtx, cancelJob := context.WithCancel(ctx)
		runMu.Lock()
		running[msg.GetJobId()] = cancelJob
		runMu.Unlock()
		wg.Add(1)
		go func(id uint64, job *rubatopb.QueryJob) {
			defer wg.Done()
			ans := w.runOne(jobCtx, job)
			cancelJob()
			runMu.Lock()
			delete(running, id)
			runMu.Unlock()
			ans.JobId = id
			sendMu.Lock()
			defer sendMu.Unlock()
			if err := stream.Send(ans); err != nil {
				// The stream is broken; Recv above returns its error.
				level.Debug(w.logger).Log("msg", "send result", "err", err)
			}
		}(msg.GetJobId(), msg.GetJob())
	}
}

func (w *Worker) runOne(ctx context.Context, job *rubatopb.QueryJob) *rubatopb.WorkerMessage {
	ans, err := w.run(ctx, job)
	if err == nil && ans != nil {
		w.jobs.WithLabelValues("ok").Inc()
		return ans
	}
	if err == nil {
		err = status.Error(codes.Internal, "job gave no answer")
	}
	st, _ := status.FromError(err)
	code := st.Code()
	outcome := "error"
	if ctx.Err() != nil {
		// Cancelled by the frontend or by this querier stopping: Canceled
		// either way, so a frontend that did not ask retries elsewhere.
		outcome, code = "cancelled", codes.Canceled
	}
	w.jobs.WithLabelValues(outcome).Inc()
	return &rubatopb.WorkerMessage{Error: st.Message(), ErrorCode: int32(code)}
}
