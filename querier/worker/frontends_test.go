package worker_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/dns"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/querier/frontend"
	"github.com/rubatodb/rubato/querier/worker"
)

// srvName is the SRV name the tests' frontends are published under, as a
// headless Service publishes `_grpc._tcp.<service>`.
const srvName = "_grpc._tcp.query-frontend.test"

// zone is DNS the test controls, behind dskit's own resolver
// (dns.NewResolver): SRV records by name, A records by host, or an error.
type zone struct {
	mu  sync.Mutex
	srv map[string][]*net.SRV
	a   map[string][]net.IPAddr
	err error
}

func newZone() *zone {
	return &zone{srv: map[string][]*net.SRV{}, a: map[string][]net.IPAddr{}}
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (z *zone) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.err != nil {
		return nil, z.err
	}
	if ips, ok := z.a[host]; ok {
		return ips, nil
	}
	return nil, notFound(host)
}

func (z *zone) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.err != nil {
		return "", nil, z.err
	}
	if recs := z.srv[name]; len(recs) > 0 {
		return name, recs, nil
	}
	return "", nil, notFound(name)
}

func (z *zone) IsNotFound(err error) bool {
	var d *net.DNSError
	return errors.As(err, &d) && d.IsNotFound
}

// publish makes srvName's SRV records name the frontends at addrs
// (127.0.0.1:port each) through the host frontend.test.
func (z *zone) publish(t *testing.T, addrs ...string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	z.a["frontend.test"] = []net.IPAddr{{IP: net.IPv4(127, 0, 0, 1)}}
	var recs []*net.SRV
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		require.NoError(t, err)
		port, err := strconv.Atoi(p)
		require.NoError(t, err)
		recs = append(recs, &net.SRV{Target: "frontend.test", Port: uint16(port)})
	}
	z.srv[srvName] = recs
}

func (z *zone) fail(err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.err = err
}

// value sums the series of metric name in reg.
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return v
}

func waitValue(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	require.Eventually(t, func() bool { return value(t, reg, name) == want }, 10*time.Second, 5*time.Millisecond,
		"%s: want %v, have %v", name, want, value(t, reg, name))
}

const workers = "rubato_query_frontend_connected_workers"

// echo answers a tag job with its tenant.
func echo(_ context.Context, job *rubatopb.QueryJob) (*rubatopb.WorkerMessage, error) {
	return tagsAnswer(job.GetTenant()), nil
}

func tagsAnswer(tag string) *rubatopb.WorkerMessage {
	return &rubatopb.WorkerMessage{Result: &rubatopb.WorkerMessage_Tags{Tags: &rubatopb.SearchTagsV2Response{
		Scopes: []*rubatopb.SearchTagsV2Scope{{Name: "resource", Tags: []string{tag}}},
	}}}
}

// answers checks that fe's queries are run by a worker.
func answers(t *testing.T, fe *frontend.Frontend, tenant string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := fe.SearchTagsV2(ctx, tenant, &rubatopb.SearchTagsRequest{})
	require.NoError(t, err)
	require.Equal(t, tenant, resp.Scopes[0].Tags[0])
}

// unserved checks that fe's queries find no worker.
func unserved(t *testing.T, fe *frontend.Frontend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := fe.SearchTagsV2(ctx, "t", &rubatopb.SearchTagsRequest{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func startWorker(t *testing.T, cfg worker.Config, run worker.RunFunc) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	w, err := worker.New(cfg, run, log.NewNopLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), w))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), w)) })
	return reg
}

// Every frontend the name resolves to gets parallelism streams and its
// queries answered; a frontend that leaves the name loses its streams, one
// that joins gets them, a failed lookup keeps the frontends resolved
// before, and a name with no records drains them all.
func TestWorkerFollowsResolvedFrontends(t *testing.T) {
	fe1, addr1, reg1 := startFrontendReg(t)
	fe2, addr2, reg2 := startFrontendReg(t)
	z := newZone()
	z.publish(t, addr1, addr2)
	wreg := startWorker(t, worker.Config{
		FrontendAddress: "dnssrv+" + srvName, Parallelism: 2, DNSLookupPeriod: 20 * time.Millisecond,
		Resolver: dns.NewResolver(z, log.NewNopLogger()),
	}, echo)

	waitValue(t, reg1, workers, 2)
	waitValue(t, reg2, workers, 2)
	require.Equal(t, 2.0, value(t, wreg, "rubato_querier_worker_frontends"))
	answers(t, fe1, "t1")
	answers(t, fe2, "t2")

	// fe2 leaves the name: its streams end, cleanly (no job to retry).
	z.publish(t, addr1)
	waitValue(t, reg2, workers, 0)
	waitValue(t, wreg, "rubato_querier_worker_frontends", 1)
	unserved(t, fe2)
	require.Zero(t, value(t, reg2, "rubato_query_frontend_retries_total"))
	require.Equal(t, 2.0, value(t, reg1, workers))
	answers(t, fe1, "t1")

	// A failing lookup changes nothing.
	z.fail(errors.New("dns server unreachable"))
	require.Eventually(t, func() bool { return value(t, wreg, "rubato_querier_worker_dns_failures_total") >= 2 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 2.0, value(t, reg1, workers))
	require.Equal(t, 1.0, value(t, wreg, "rubato_querier_worker_frontends"))
	answers(t, fe1, "t1")
	z.fail(nil)

	// fe2 comes back and fe3 starts later: both get streams.
	fe3, addr3, reg3 := startFrontendReg(t)
	z.publish(t, addr1, addr2, addr3)
	waitValue(t, reg2, workers, 2)
	waitValue(t, reg3, workers, 2)
	waitValue(t, wreg, "rubato_querier_worker_frontends", 3)
	require.Equal(t, 2.0, value(t, reg1, workers))
	answers(t, fe1, "t1")
	answers(t, fe2, "t2")
	answers(t, fe3, "t3")

	// The name has no records: every frontend is drained.
	z.publish(t)
	waitValue(t, wreg, "rubato_querier_worker_frontends", 0)
	waitValue(t, reg1, workers, 0)
	waitValue(t, reg2, workers, 0)
	waitValue(t, reg3, workers, 0)
	unserved(t, fe1)
}

// A frontend that leaves the name while a job of its runs keeps the
// stream until the job is answered: the query gets the answer from the one
// run (no retry), and only then does the stream end.
func TestWorkerDrainFinishesRunningJob(t *testing.T) {
	fe1, addr1, reg1 := startFrontendReg(t)
	fe2, addr2, reg2 := startFrontendReg(t)
	z := newZone()
	z.publish(t, addr1, addr2)
	var runs atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	run := func(ctx context.Context, job *rubatopb.QueryJob) (*rubatopb.WorkerMessage, error) {
		if job.GetTags().GetQuery() != "slow" {
			return echo(ctx, job)
		}
		runs.Add(1)
		close(started)
		select {
		case <-release:
			return tagsAnswer("finished"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	wreg := startWorker(t, worker.Config{
		FrontendAddress: "dnssrv+" + srvName, Parallelism: 2, DNSLookupPeriod: 20 * time.Millisecond,
		Resolver: dns.NewResolver(z, log.NewNopLogger()),
	}, run)
	waitValue(t, reg2, workers, 2)

	type result struct {
		resp *rubatopb.SearchTagsV2Response
		err  error
	}
	res := make(chan result, 1)
	go func() {
		r, err := fe2.SearchTagsV2(context.Background(), "t", &rubatopb.SearchTagsRequest{Query: "slow"})
		res <- result{r, err}
	}()
	<-started
	z.publish(t, addr1)
	waitValue(t, wreg, "rubato_querier_worker_frontends", 1)
	// The idle stream ends, the busy one stays while its job runs.
	waitValue(t, reg2, workers, 1)
	require.Never(t, func() bool { return value(t, reg2, workers) == 0 }, 300*time.Millisecond, 10*time.Millisecond)
	close(release)

	select {
	case r := <-res:
		require.NoError(t, r.err)
		require.Equal(t, "finished", r.resp.Scopes[0].Tags[0])
	case <-time.After(10 * time.Second):
		t.Fatal("the drained frontend's running job was not answered")
	}
	require.Equal(t, int32(1), runs.Load(), "the job ran once")
	require.Zero(t, value(t, reg2, "rubato_query_frontend_retries_total"))
	waitValue(t, reg2, workers, 0)
	unserved(t, fe2)
	require.Equal(t, 2.0, value(t, reg1, workers))
	answers(t, fe1, "t1")
}

// Host names resolve through A records: a name the test's DNS serves,
// with or without dns+, and localhost through the system's resolver.
func TestWorkerResolvesHostNames(t *testing.T) {
	fe, addr, reg := startFrontendReg(t)
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	z := newZone()
	z.publish(t)
	for _, name := range []string{"frontend.test:" + port, "dns+frontend.test:" + port} {
		t.Run(name, func(t *testing.T) {
			wreg := startWorker(t, worker.Config{FrontendAddress: name, Parallelism: 1, Resolver: dns.NewResolver(z, log.NewNopLogger())}, echo)
			waitValue(t, reg, workers, 1)
			require.Equal(t, 1.0, value(t, wreg, "rubato_querier_worker_frontends"))
			answers(t, fe, "t1")
		})
		waitValue(t, reg, workers, 0)
	}
	t.Run("localhost", func(t *testing.T) {
		wreg := startWorker(t, worker.Config{FrontendAddress: "localhost:" + port, Parallelism: 1}, echo)
		waitValue(t, reg, workers, 1)
		require.GreaterOrEqual(t, value(t, wreg, "rubato_querier_worker_frontends"), 1.0)
		answers(t, fe, "t1")
	})
}

// blackHole accepts TCP connections and never answers, as an address whose
// pod is gone can behave; it counts the connections still open.
type blackHole struct {
	lis      net.Listener
	open     atomic.Int32
	accepted atomic.Int32
	wg       sync.WaitGroup
}

func startBlackHole(t *testing.T) *blackHole {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &blackHole{lis: lis}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			b.open.Add(1)
			b.accepted.Add(1)
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				_, _ = io.Copy(io.Discard, c) // until the worker closes it
				c.Close()
				b.open.Add(-1)
			}()
		}
	}()
	t.Cleanup(func() { lis.Close(); b.wg.Wait() })
	return b
}

// A frontend whose streams never open (its address accepts TCP and says
// nothing) is given up as soon as it leaves the name: its connection
// closes at once, not after gRPC's connect timeout.
func TestWorkerGivesUpUnreachableFrontend(t *testing.T) {
	fe, addr, reg := startFrontendReg(t)
	hole := startBlackHole(t)
	z := newZone()
	z.publish(t, addr, hole.lis.Addr().String())
	wreg := startWorker(t, worker.Config{
		FrontendAddress: "dnssrv+" + srvName, Parallelism: 2, DNSLookupPeriod: 20 * time.Millisecond,
		Resolver: dns.NewResolver(z, log.NewNopLogger()),
	}, echo)
	waitValue(t, reg, workers, 2)
	require.Eventually(t, func() bool { return hole.open.Load() > 0 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 2.0, value(t, wreg, "rubato_querier_worker_frontends"))

	z.publish(t, addr)
	waitValue(t, wreg, "rubato_querier_worker_frontends", 1)
	require.Eventually(t, func() bool { return hole.open.Load() == 0 }, 5*time.Second, 5*time.Millisecond,
		"the unreachable frontend's connection is still open")
	answers(t, fe, "t1")
}
