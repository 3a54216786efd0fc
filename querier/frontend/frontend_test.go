package frontend_test

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
	"github.com/rubatodb/rubato/querier"
	"github.com/rubatodb/rubato/querier/frontend"
	"github.com/rubatodb/rubato/querier/worker"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"))
}

const tenantID = tenant.SingleTenant

// splitTrace has spans in every block: a lookup must combine all shards.
var splitTrace = [16]byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func attr(k, v string) *commonv1.KeyValue {
	return &commonv1.KeyValue{Key: k, Value: &commonv1.AnyValue{Value: &commonv1.AnyValue_StringValue{StringValue: v}}}
}

func span(id [16]byte, spanID byte, svc string, sec int) *tracev1.TracesData {
	start := uint64(1e18) + uint64(sec)*1e9
	return &tracev1.TracesData{ResourceSpans: []*tracev1.ResourceSpans{{
		Resource: &resourcev1.Resource{Attributes: []*commonv1.KeyValue{attr("service.name", svc)}},
		ScopeSpans: []*tracev1.ScopeSpans{{Spans: []*tracev1.Span{{
			TraceId: id[:], SpanId: []byte{1, 2, 3, 4, 5, 6, 7, spanID}, Name: "root",
			StartTimeUnixNano: start, EndTimeUnixNano: start + 1e6,
		}}}},
	}}}
}

// writeBlocks stores blocks of tracesPer traces each (half service "a",
// half "b", block b in second b), plus one span of splitTrace in every
// block; it returns the IDs of the "b" traces.
func writeBlocks(t *testing.T, store backend.Backend, blocks, tracesPer int) map[string]bool {
	t.Helper()
	var bcfg block.Config
	bcfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	ctx := context.Background()
	bTraces := map[string]bool{}
	for b := range blocks {
		w, err := block.NewWriter(ctx, store, bcfg, tenantID, uuid.New(), 0, tracesPer+1, t.TempDir())
		require.NoError(t, err)
		for i := range tracesPer {
			var id [16]byte
			id[0], id[1] = byte(i), byte(b)
			svc := "a"
			if i%2 == 1 {
				svc = "b"
				bTraces[strings.TrimLeft(hex.EncodeToString(id[:]), "0")] = true
			}
			require.NoError(t, w.Add(id[:], span(id, byte(i), svc, b)))
		}
		require.NoError(t, w.Add(splitTrace[:], span(splitTrace, byte(b), "split", b)))
		_, err = w.Close(ctx)
		require.NoError(t, err)
	}
	return bTraces
}

// stallingBackend blocks reads of data.parquet once armed, until released,
// ignoring the context: it is a querier process stuck mid-job.
type stallingBackend struct {
	backend.Backend
	mu      sync.Mutex
	armed   bool
	stalled chan struct{} // closed at the first stalled read
	stalls  chan struct{} // one message per stalled read
	release chan struct{}
}

func newStalling(be backend.Backend) *stallingBackend {
	return &stallingBackend{Backend: be, armed: true, stalled: make(chan struct{}), stalls: make(chan struct{}, 64), release: make(chan struct{})}
}

func (s *stallingBackend) stall(key string) {
	if !strings.HasSuffix(key, "data.parquet") {
		return
	}
	s.mu.Lock()
	armed := s.armed
	if armed {
		select {
		case <-s.stalled:
		default:
			close(s.stalled)
		}
		s.stalls <- struct{}{}
	}
	s.mu.Unlock()
	if armed {
		<-s.release
	}
}

func (s *stallingBackend) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	s.stall(key)
	return s.Backend.GetRange(ctx, key, off, n)
}

func (s *stallingBackend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	s.stall(key)
	return s.Backend.Get(ctx, key)
}

// proxy forwards TCP to target until killed; kill drops every connection,
// as a querier process dying does.
type proxy struct {
	lis   net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{lis: lis}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(u, c); u.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(p.kill)
	return p
}

func (p *proxy) addr() string { return p.lis.Addr().String() }

func (p *proxy) kill() {
	p.lis.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

type cluster struct {
	store    backend.Backend
	fe       *frontend.Frontend
	reg      *prometheus.Registry
	addr     string // HTTP + gRPC (Frontend, StreamingQuerier)
	bTraces  map[string]bool
	queriers int
	limits   querier.Limits
}

// fixedLimits gives every tenant the same limits.
type fixedLimits overrides.Limits

func (l *fixedLimits) For(string) *overrides.Limits { return (*overrides.Limits)(l) }

func frontendConfig() querier.FrontendConfig {
	var c querier.FrontendConfig
	c.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	return c
}

func startService(t *testing.T, s services.Service) {
	t.Helper()
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), s))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), s) })
}

// startFrontend starts a frontend over store with blocks, serving HTTP and
// gRPC on one 127.0.0.1 port as the binary does.
func startFrontend(t *testing.T, cfg querier.FrontendConfig, blocks, tracesPer int) *cluster {
	t.Helper()
	return startFrontendLimits(t, cfg, blocks, tracesPer, nil)
}

// startFrontendLimits is startFrontend with the tenants' limits.
func startFrontendLimits(t *testing.T, cfg querier.FrontendConfig, blocks, tracesPer int, limits querier.Limits) *cluster {
	t.Helper()
	c := &cluster{store: inmem.New(), reg: prometheus.NewRegistry(), limits: limits}
	c.bTraces = writeBlocks(t, c.store, blocks, tracesPer)
	fe, err := frontend.New(cfg, c.store, time.Hour, c.limits, log.NewNopLogger(), c.reg)
	require.NoError(t, err)
	c.fe = fe
	g := grpc.NewServer()
	fe.Register(g)
	mux := http.NewServeMux()
	tenants := tenant.Resolver{}
	querier.NewTraceHandler(fe, tenants, log.NewNopLogger()).Register(mux)
	api := querier.NewSearchAPI(fe, cfg.Search, tenants, log.NewNopLogger())
	api.Register(mux)
	api.StreamingServer().Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c.addr = lis.Addr().String()
	srv := querier.NewHTTPServer(g, mux)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		_ = srv.Close()
		g.Stop()
		<-done
	})
	startService(t, fe) // stopped before the server (cleanups run last-in first)
	return c
}

// startWorker starts a querier over store and a worker for it taking jobs
// from addr.
func startWorker(t *testing.T, store backend.Backend, addr string, parallelism int) *worker.Worker {
	t.Helper()
	return startWorkerLimits(t, store, addr, parallelism, nil)
}

// startWorkerLimits is startWorker with the querier's tenant limits.
func startWorkerLimits(t *testing.T, store backend.Backend, addr string, parallelism int, limits querier.Limits) *worker.Worker {
	t.Helper()
	var qcfg querier.Config
	qcfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	q := querier.New(qcfg, querier.StoreConfig{BlocklistPoll: time.Hour, BlockCacheBytes: 1 << 20}, nil, nil, store, limits, log.NewNopLogger(), prometheus.NewRegistry())
	startService(t, q) // polls the blocklist, for tag jobs
	w, err := worker.New(worker.Config{FrontendAddress: addr, Parallelism: parallelism}, q.RunJob, log.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	startService(t, w)
	return w
}

// metric returns the value of the counter or gauge name with labels.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue next
				}
			}
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			return m.Counter.GetValue()
		}
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (c *cluster) waitWorkers(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return metric(t, c.reg, "rubato_query_frontend_connected_workers") == float64(n)
	}, 10*time.Second, 5*time.Millisecond)
}

func (c *cluster) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + c.addr + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, b
}

func searchIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var resp rubatopb.SearchResponse
	require.NoError(t, protojson.Unmarshal(body, &resp), string(body))
	ids := make([]string, 0, len(resp.Traces))
	for _, tr := range resp.Traces {
		ids = append(ids, tr.TraceID)
	}
	sort.Strings(ids)
	return ids
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func spanCount(t *testing.T, body []byte) int {
	t.Helper()
	var resp rubatopb.TraceByIDResponse
	require.NoError(t, protojson.Unmarshal(body, &resp), string(body))
	require.Empty(t, resp.Message)
	n := 0
	for _, rs := range resp.GetTrace().GetResourceSpans() {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}

// Every query API answers through the frontend with the same result a
// querier gives, the work done by two queriers' workers.
func TestFrontendServesEveryAPI(t *testing.T) {
	cfg := frontendConfig()
	cfg.Search.TargetBytesPerJob = 1 // one block per job
	cfg.TraceByID.QueryShards = 3
	c := startFrontend(t, cfg, 6, 10)
	startWorker(t, c.store, c.addr, 2)
	startWorker(t, c.store, c.addr, 2)
	c.waitWorkers(t, 4)

	code, body := c.get(t, `/api/search?q=%7Bresource.service.name%3D%22b%22%7D&limit=1000`)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Equal(t, keys(c.bTraces), searchIDs(t, body))
	require.Contains(t, string(body), `"totalJobs":7`) // ingesters + 6 blocks
	require.Contains(t, string(body), `"completedJobs":7`)

	// Trace by ID: the split trace has one span in each of the 6 blocks,
	// spread over 3 shard jobs.
	code, body = c.get(t, "/api/v2/traces/"+hex.EncodeToString(splitTrace[:]))
	require.Equal(t, http.StatusOK, code, string(body))
	require.Equal(t, 6, spanCount(t, body))
	code, body = c.get(t, "/api/traces/"+hex.EncodeToString(splitTrace[:]))
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), `"batches"`)
	code, _ = c.get(t, "/api/traces/00000000000000000000000000000abc")
	require.Equal(t, http.StatusNotFound, code)
	// 4 jobs for each lookup of the split trace; 2 for ...abc, which only
	// block 0's ID range admits.
	require.Equal(t, float64(4+4+2), metric(t, c.reg, "rubato_query_frontend_jobs_total", "kind", "trace_by_id", "outcome", "ok"))

	code, body = c.get(t, "/api/v2/search/tag/resource.service.name/values")
	require.Equal(t, http.StatusOK, code, string(body))
	for _, v := range []string{`"a"`, `"b"`, `"split"`} {
		require.Contains(t, string(body), v)
	}
	code, body = c.get(t, "/api/search/tag/service.name/values")
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), `"split"`)
	code, body = c.get(t, "/api/v2/search/tags?scope=resource")
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), "service.name")
	code, body = c.get(t, "/api/search/tags")
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), "service.name")

	// Bad TraceQL is the client's fault, as on a querier.
	code, body = c.get(t, `/api/search?q=%7B.a%3D`)
	require.Equal(t, http.StatusBadRequest, code, string(body))

	// gRPC streaming search, on the same port.
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "X-Scope-OrgID", tenantID)
	stream, err := rubatopb.NewStreamingQuerierClient(conn).Search(ctx, &rubatopb.SearchRequest{Query: `{resource.service.name="b"}`, Limit: 1000})
	require.NoError(t, err)
	got := map[string]bool{}
	var last *rubatopb.SearchResponse
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		for _, tr := range m.Traces {
			got[tr.TraceID] = true
		}
		last = m
	}
	require.Equal(t, c.bTraces, got)
	require.Equal(t, last.Metrics.TotalJobs, last.Metrics.CompletedJobs)
}

// A querier dies in the middle of a job: the frontend gives the job to the
// other querier and the answer is complete.
func TestFrontendRetriesJobOfDeadQuerier(t *testing.T) {
	for _, tc := range []struct {
		name  string
		path  string
		check func(t *testing.T, c *cluster, code int, body []byte)
	}{
		{"search", `/api/search?q=%7Bresource.service.name%3D%22b%22%7D&limit=1000`, func(t *testing.T, c *cluster, code int, body []byte) {
			require.Equal(t, http.StatusOK, code, string(body))
			require.Equal(t, keys(c.bTraces), searchIDs(t, body))
			require.Contains(t, string(body), `"completedJobs":5`)
		}},
		{"trace_by_id", "/api/v2/traces/" + hex.EncodeToString(splitTrace[:]), func(t *testing.T, c *cluster, code int, body []byte) {
			require.Equal(t, http.StatusOK, code, string(body))
			require.Equal(t, 4, spanCount(t, body))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := frontendConfig()
			cfg.Search.TargetBytesPerJob = 1
			cfg.TraceByID.QueryShards = 4
			c := startFrontend(t, cfg, 4, 10)
			// The doomed querier reaches the frontend through a proxy
			// (its "process"), and hangs on its first block read.
			stuck := newStalling(c.store)
			px := startProxy(t, c.addr)
			startWorker(t, stuck, px.addr(), 1)
			// Registered after the worker: runs before its stop, which
			// waits for the stuck job.
			t.Cleanup(func() { close(stuck.release) })
			c.waitWorkers(t, 1)

			type result struct {
				code int
				body []byte
			}
			res := make(chan result, 1)
			go func() {
				resp, err := http.Get("http://" + c.addr + tc.path)
				if err != nil {
					res <- result{0, []byte(err.Error())}
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				res <- result{resp.StatusCode, b}
			}()
			select {
			case <-stuck.stalled:
			case <-time.After(10 * time.Second):
				t.Fatal("the first querier never started a block job")
			}
			startWorker(t, c.store, c.addr, 1)
			px.kill() // the querier dies with its job half done
			var r result
			select {
			case r = <-res:
			case <-time.After(20 * time.Second):
				t.Fatal("no answer after the querier died")
			}
			tc.check(t, c, r.code, r.body)
			require.Equal(t, 1.0, metric(t, c.reg, "rubato_query_frontend_retries_total"))
		})
	}
}

// A job whose querier keeps dying fails after max_retries; for a trace
// lookup the answer says what could not be read, never a false 404.
func TestFrontendGivesUpAfterMaxRetries(t *testing.T) {
	cfg := frontendConfig()
	cfg.MaxRetries = 1
	cfg.TraceByID.QueryShards = 1
	c := startFrontend(t, cfg, 1, 2)
	stuck := newStalling(c.store)
	defer close(stuck.release) // before the workers' cleanups

	res := make(chan int, 1)
	go func() {
		resp, err := http.Get("http://" + c.addr + "/api/traces/" + hex.EncodeToString(splitTrace[:]))
		if err != nil {
			res <- 0
			return
		}
		resp.Body.Close()
		res <- resp.StatusCode
	}()
	// Two queriers die, one after the other, each in the middle of the
	// block job (retries go first in the queue, so the second takes it).
	for range 2 {
		px := startProxy(t, c.addr)
		startWorker(t, stuck, px.addr(), 1)
		select {
		case <-stuck.stalls:
		case <-time.After(10 * time.Second):
			t.Fatal("the querier never started the block job")
		}
		px.kill()
	}
	// A healthy querier runs the ingester job, if it is still queued.
	startWorker(t, c.store, c.addr, 1)
	select {
	case code := <-res:
		require.Equal(t, http.StatusServiceUnavailable, code)
	case <-time.After(20 * time.Second):
		t.Fatal("no answer")
	}
	require.Equal(t, 1.0, metric(t, c.reg, "rubato_query_frontend_retries_total"))
	require.Equal(t, 1.0, metric(t, c.reg, "rubato_query_frontend_jobs_total", "kind", "trace_by_id", "outcome", "error"))
}

// Once limit traces are found, the search's other jobs leave the queue
// and are not run.
func TestFrontendCancelsJobsOnceLimitIsMet(t *testing.T) {
	cfg := frontendConfig()
	cfg.Search.TargetBytesPerJob = 1
	cfg.Search.ConcurrentJobs = 20
	c := startFrontend(t, cfg, 12, 10)
	startWorker(t, c.store, c.addr, 1)
	c.waitWorkers(t, 1)

	// Each block holds 11 traces (10 own, one shared): the first block job
	// leaves limit 25 unmet, so the search widens to two block jobs, then
	// to four; the third block job fills the limit while the later ones
	// wait in the queue.
	code, body := c.get(t, `/api/search?q=%7B%7D&limit=25`)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Len(t, searchIDs(t, body), 25)
	var resp rubatopb.SearchResponse
	require.NoError(t, protojson.Unmarshal(body, &resp))
	require.Equal(t, uint32(13), resp.Metrics.TotalJobs)
	require.Less(t, resp.Metrics.CompletedJobs, uint32(13))
	require.Equal(t, 0.0, metric(t, c.reg, "rubato_query_frontend_queue_length", "tenant", tenantID))
	ran := metric(t, c.reg, "rubato_query_frontend_jobs_total", "kind", "search_blocks", "outcome", "ok") +
		metric(t, c.reg, "rubato_query_frontend_jobs_total", "kind", "search_ingesters", "outcome", "ok")
	cancelled := metric(t, c.reg, "rubato_query_frontend_jobs_total", "kind", "search_blocks", "outcome", "cancelled") +
		metric(t, c.reg, "rubato_query_frontend_jobs_total", "kind", "search_ingesters", "outcome", "cancelled")
	// One querier, one job at a time. The worker may take a job more
	// before the frontend has combined the answer, but the queued ones
	// are cancelled, and the jobs behind the widening window never start.
	require.Less(t, ran, 13.0)
	require.Positive(t, cancelled, "jobs left once limit traces were found")
	require.Less(t, ran+cancelled, 13.0, "a limited search starts only the block jobs it may need")
}

// A tenant with max_outstanding_per_tenant jobs queued is refused 429.
func TestFrontendRefusesBeyondMaxOutstanding(t *testing.T) {
	cfg := frontendConfig()
	cfg.MaxOutstandingPerTenant = 1 // the ingester job and one block job are two
	cfg.Search.TargetBytesPerJob = 1
	c := startFrontend(t, cfg, 4, 2)
	// No querier: jobs stay queued.
	code, body := c.get(t, `/api/search?q=%7B%7D`)
	require.Equal(t, http.StatusTooManyRequests, code, string(body))
	require.Contains(t, string(body), "max_outstanding_per_tenant")
	require.Eventually(t, func() bool {
		return metric(t, c.reg, "rubato_query_frontend_queue_length", "tenant", tenantID) == 0
	}, 5*time.Second, 5*time.Millisecond, "the refused search's queued jobs leave the queue")
	require.GreaterOrEqual(t, metric(t, c.reg, "rubato_query_frontend_discarded_requests_total", "tenant", tenantID), 1.0)
}

// TestFrontendCutsTraceAtMaxBytes: the frontend's answer is cut at the
// tenant's max_bytes_per_trace, whether the queriers cut their jobs'
// answers (and say so) or not (the frontend admits the jobs' spans through
// the same bound), and the cut is reported with Tempo's message.
func TestFrontendCutsTraceAtMaxBytes(t *testing.T) {
	one := proto.Size(span(splitTrace, 0, "split", 0))
	for _, tc := range []struct {
		name                string
		frontend, querierAt int
		wantMax             int
	}{
		{"frontend cuts", 3 * one, 0, 3 * one},
		{"queriers cut", 0, 2 * one, 2 * one},
		{"no limit", 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := frontendConfig()
			cfg.TraceByID.QueryShards = 2 // three blocks, three spans, per job
			var fl, ql querier.Limits
			if tc.frontend > 0 {
				fl = &fixedLimits{MaxBytesPerTrace: tc.frontend}
			}
			if tc.querierAt > 0 {
				ql = &fixedLimits{MaxBytesPerTrace: tc.querierAt}
			}
			c := startFrontendLimits(t, cfg, 6, 4, fl)
			startWorkerLimits(t, c.store, c.addr, 4, ql)
			c.waitWorkers(t, 4)
			req, err := http.NewRequest(http.MethodGet, "http://"+c.addr+"/api/v2/traces/"+hex.EncodeToString(splitTrace[:]), nil)
			require.NoError(t, err)
			req.Header.Set("Accept", "application/protobuf")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			var got rubatopb.TraceByIDResponse
			require.NoError(t, proto.Unmarshal(body, &got))
			n := 0
			for _, rs := range got.Trace.GetResourceSpans() {
				for _, ss := range rs.ScopeSpans {
					n += len(ss.Spans)
				}
			}
			if tc.wantMax == 0 {
				require.Equal(t, rubatopb.PartialStatus_COMPLETE, got.Status, got.Message)
				require.Equal(t, 6, n)
				return
			}
			require.Equal(t, rubatopb.PartialStatus_PARTIAL, got.Status)
			require.Equal(t, fmt.Sprintf("Trace exceeds maximum size of %d bytes, a partial trace is returned", tc.wantMax), got.Message)
			require.Less(t, n, 6)
			require.Positive(t, n)
			if tc.frontend > 0 {
				require.LessOrEqual(t, proto.Size(got.Trace), tc.frontend, "the answer fits the limit")
			}
		})
	}
}
