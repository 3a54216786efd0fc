package worker_test

import (
	"context"
	"errors"
	"flag"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/querier"
	"github.com/rubatodb/rubato/querier/frontend"
	"github.com/rubatodb/rubato/querier/worker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startFrontend serves a real frontend's Frontend service on 127.0.0.1.
func startFrontend(t *testing.T) (*frontend.Frontend, string) {
	t.Helper()
	fe, addr, _ := startFrontendReg(t)
	return fe, addr
}

// startFrontendReg is startFrontend, also returning the frontend's metrics.
func startFrontendReg(t *testing.T) (*frontend.Frontend, string, *prometheus.Registry) {
	t.Helper()
	var cfg querier.FrontendConfig
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	reg := prometheus.NewRegistry()
	fe, err := frontend.New(cfg, inmem.New(), time.Hour, nil, log.NewNopLogger(), reg)
	require.NoError(t, err)
	g := grpc.NewServer()
	fe.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); <-done })
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), fe))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), fe) })
	return fe, lis.Addr().String(), reg
}

// The worker runs what the frontend sends, cancels a job when the
// frontend's query ends, and is free for the next job afterwards; a job's
// error comes back with its gRPC code.
func TestWorkerRunsAndCancelsJobs(t *testing.T) {
	fe, addr := startFrontend(t)
	var cancelled atomic.Int32
	run := func(ctx context.Context, job *rubatopb.QueryJob) (*rubatopb.WorkerMessage, error) {
		switch job.GetTags().GetQuery() {
		case "block":
			<-ctx.Done()
			cancelled.Add(1)
			return nil, ctx.Err()
		case "bad":
			return nil, errors.New("invalid query: bad") // not a status: Unknown
		}
		return &rubatopb.WorkerMessage{Result: &rubatopb.WorkerMessage_Tags{Tags: &rubatopb.SearchTagsV2Response{
			Scopes: []*rubatopb.SearchTagsV2Scope{{Name: "resource", Tags: []string{job.GetTenant()}}},
		}}}, nil
	}
	w, err := worker.New(worker.Config{FrontendAddress: addr, Parallelism: 1}, run, log.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), w))
	defer func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), w)) }()

	ctx := context.Background()
	resp, err := fe.SearchTagsV2(ctx, "t1", &rubatopb.SearchTagsRequest{})
	require.NoError(t, err)
	require.Equal(t, "t1", resp.Scopes[0].Tags[0], "the job carries its tenant")

	// A query that ends while its job runs: the worker's job is cancelled.
	qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = fe.SearchTagsV2(qctx, "t1", &rubatopb.SearchTagsRequest{Query: "block"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool { return cancelled.Load() == 1 }, 5*time.Second, 5*time.Millisecond)

	// The one stream is free again.
	resp, err = fe.SearchTagsV2(ctx, "t2", &rubatopb.SearchTagsRequest{})
	require.NoError(t, err)
	require.Equal(t, "t2", resp.Scopes[0].Tags[0])

	_, err = fe.SearchTagsV2(ctx, "t1", &rubatopb.SearchTagsRequest{Query: "bad"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "invalid query")
}

func TestWorkerConfig(t *testing.T) {
	_, err := worker.New(worker.Config{}, nil, log.NewNopLogger(), nil)
	require.ErrorContains(t, err, "frontend_address is empty")
	_, err = worker.New(worker.Config{FrontendAddress: "x:1"}, nil, log.NewNopLogger(), nil)
	require.ErrorContains(t, err, "parallelism must be at least 1")
	for addr, msg := range map[string]string{
		"query-frontend":             "want host:port",
		"query-frontend:":            "want host:port",
		"dns+query-frontend":         "want host:port",
		"dns:///query-frontend:9095": "not a URL",
		"dnsfoo+query-frontend:9095": `unknown lookup "dnsfoo"`,
		"dnssrv+":                    "no name",
	} {
		_, err = worker.New(worker.Config{FrontendAddress: addr, Parallelism: 1}, nil, log.NewNopLogger(), nil)
		require.ErrorContains(t, err, msg, addr)
	}
	_, err = worker.New(worker.Config{FrontendAddress: "x:1", Parallelism: 1, DNSLookupPeriod: -time.Second}, nil, log.NewNopLogger(), nil)
	require.ErrorContains(t, err, "dns_lookup_duration must be positive")
	for _, addr := range []string{"query-frontend:9095", "dns+query-frontend:9095", "dnssrv+_grpc._tcp.query-frontend", "dnssrvnoa+_grpc._tcp.query-frontend", "10.0.0.1:9095", "[::1]:9095"} {
		_, err = worker.New(worker.Config{FrontendAddress: addr, Parallelism: 1}, nil, log.NewNopLogger(), nil)
		require.NoError(t, err, addr)
	}
}

// A querier stopping in the middle of a job hands it back: the frontend
// runs it on another querier and the query succeeds.
func TestWorkerStoppingHandsJobBack(t *testing.T) {
	fe, addr := startFrontend(t)
	started := make(chan struct{}, 1)
	stopping := func(ctx context.Context, _ *rubatopb.QueryJob) (*rubatopb.WorkerMessage, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	healthy := func(_ context.Context, job *rubatopb.QueryJob) (*rubatopb.WorkerMessage, error) {
		return &rubatopb.WorkerMessage{Result: &rubatopb.WorkerMessage_Tags{Tags: &rubatopb.SearchTagsV2Response{
			Scopes: []*rubatopb.SearchTagsV2Scope{{Name: "resource", Tags: []string{"done"}}},
		}}}, nil
	}
	a, err := worker.New(worker.Config{FrontendAddress: addr, Parallelism: 1}, stopping, log.NewNopLogger(), nil)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), a))

	type result struct {
		resp *rubatopb.SearchTagsV2Response
		err  error
	}
	res := make(chan result, 1)
	go func() {
		r, err := fe.SearchTagsV2(context.Background(), "t", &rubatopb.SearchTagsRequest{})
		res <- result{r, err}
	}()
	<-started
	b, err := worker.New(worker.Config{FrontendAddress: addr, Parallelism: 1}, healthy, log.NewNopLogger(), nil)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), b))
	defer func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b)) }()
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), a))

	select {
	case r := <-res:
		require.NoError(t, r.err)
		require.Equal(t, "done", r.resp.Scopes[0].Tags[0])
	case <-time.After(10 * time.Second):
		t.Fatal("the job was not handed to the other querier")
	}
}
