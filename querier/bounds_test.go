package querier

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend"
	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/overrides"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
)

const boundsTenant = "single-tenant"

var boundsTraceID = [16]byte{0xb0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// bigTrace returns spans [from, to) of a trace whose spans each carry an
// attribute of payload bytes, under 3 services.
func bigTrace(id [16]byte, from, to, payload int) *tracev1.TracesData {
	td := &tracev1.TracesData{}
	for svc := 0; svc < 3; svc++ {
		rs := &tracev1.ResourceSpans{
			Resource:   &resourcev1.Resource{Attributes: []*commonv1.KeyValue{strAttr("service.name", fmt.Sprintf("svc-%d", svc))}},
			ScopeSpans: []*tracev1.ScopeSpans{{Scope: &commonv1.InstrumentationScope{Name: "lib"}}},
		}
		for i := from; i < to; i++ {
			if i%3 != svc {
				continue
			}
			sid := make([]byte, 8)
			binary.BigEndian.PutUint64(sid, uint64(i+1))
			rs.ScopeSpans[0].Spans = append(rs.ScopeSpans[0].Spans, &tracev1.Span{
				TraceId: id[:], SpanId: sid, Name: fmt.Sprintf("op-%d", i),
				StartTimeUnixNano: 1_700_000_000_000_000_000 + uint64(i), EndTimeUnixNano: 1_700_000_000_000_000_100 + uint64(i),
				Attributes: []*commonv1.KeyValue{strAttr("payload", noise(i, payload))},
				Status:     &tracev1.Status{},
			})
		}
		if len(rs.ScopeSpans[0].Spans) > 0 {
			td.ResourceSpans = append(td.ResourceSpans, rs)
		}
	}
	return td
}

// noise is n incompressible letters, the same for the same seed.
func noise(seed, n int) string {
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(r.IntN(26))
	}
	return string(b)
}

func spanCount(td *tracev1.TracesData) int {
	n := 0
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}

// boundsQuerier is a querier over a real in-memory backend whose blocks
// are written by the real block writer.
type boundsQuerier struct {
	q     *Querier
	store *countingBackend
	reg   *prometheus.Registry
	bcfg  block.Config
}

func newBoundsQuerier(t *testing.T, cfg Config, limits overrides.Limits) *boundsQuerier {
	t.Helper()
	if cfg.ConcurrentBlockReads == 0 {
		cfg.ConcurrentBlockReads = 4
	}
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = 5 * time.Second
	}
	var bcfg block.Config
	bcfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	bcfg.MaxSpansPerRow = 20
	bcfg.RowGroupSizeBytes = 16 << 10 // a big trace spreads over row groups
	bcfg.PageSizeBytes = 4 << 10
	store := &countingBackend{Backend: inmem.New()}
	reg := prometheus.NewRegistry()
	q := New(cfg, StoreConfig{}, nil, nil, store, overrides.New(overrides.Config{Defaults: limits}), log.NewNopLogger(), reg)
	return &boundsQuerier{q: q, store: store, reg: reg, bcfg: bcfg}
}

// addBlock writes a block holding td (and one unrelated trace on each
// side, so the ID range is real) and makes it queryable.
func (b *boundsQuerier) addBlock(t *testing.T, id [16]byte, td *tracev1.TracesData) {
	t.Helper()
	ctx := context.Background()
	w, err := block.NewWriter(ctx, b.store.Backend, b.bcfg, boundsTenant, uuid.New(), 0, 3, t.TempDir())
	require.NoError(t, err)
	lo, hi := id, id
	lo[15]--
	hi[15]++
	require.NoError(t, w.Add(lo[:], bigTrace(lo, 0, 3, 10)))
	require.NoError(t, w.Add(id[:], td))
	require.NoError(t, w.Add(hi[:], bigTrace(hi, 0, 3, 10)))
	m, err := w.Close(ctx)
	require.NoError(t, err)
	b.q.AddBlock(m)
}

// countingBackend counts ranged reads and, when gated, holds every read
// until the gate opens.
type countingBackend struct {
	backend.Backend
	ranges  atomic.Int64
	gate    atomic.Pointer[chan struct{}]
	entered atomic.Int64
}

func (c *countingBackend) wait(ctx context.Context) error {
	if g := c.gate.Load(); g != nil {
		c.entered.Add(1)
		select {
		case <-*g:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (c *countingBackend) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	c.ranges.Add(1)
	return c.Backend.GetRange(ctx, key, off, length)
}

func (c *countingBackend) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := c.wait(ctx); err != nil {
		return nil, err
	}
	return c.Backend.Get(ctx, key)
}

// closeGate makes every read wait until the returned function is called.
func (c *countingBackend) closeGate() (open func()) {
	ch := make(chan struct{})
	c.entered.Store(0)
	c.gate.Store(&ch)
	var once sync.Once
	return func() {
		once.Do(func() {
			c.gate.Store(nil)
			close(ch)
		})
	}
}

// serve runs the trace-by-ID handlers on a real socket on 127.0.0.1.
func (b *boundsQuerier) serve(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mux := http.NewServeMux()
	NewHandler(b.q, tenant.Resolver{}).Register(mux)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + lis.Addr().String()
}

func getTrace(t *testing.T, url, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func idHex(id [16]byte) string { return fmt.Sprintf("%x", id[:]) }

// TestTraceCutAtMaxBytesPerTrace: a trace bigger than the tenant's
// max_bytes_per_trace, stored over two blocks and many rows, is answered
// cut to at most the limit, with v2 status PARTIAL and Tempo's message,
// and the v1 header; under a higher limit it is answered whole.
func TestTraceCutAtMaxBytesPerTrace(t *testing.T) {
	const limit = 100_000
	full := bigTrace(boundsTraceID, 0, 300, 1000)
	require.Greater(t, proto.Size(full), 3*limit)
	for _, tc := range []struct {
		name  string
		limit int
		cut   bool
	}{{"over the limit", limit, true}, {"under the limit", 10 * limit, false}, {"no limit", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBoundsQuerier(t, Config{}, overrides.Limits{MaxBytesPerTrace: tc.limit})
			b.addBlock(t, boundsTraceID, bigTrace(boundsTraceID, 0, 150, 1000))
			b.addBlock(t, boundsTraceID, bigTrace(boundsTraceID, 150, 300, 1000))
			url := b.serve(t) + "/api/v2/traces/" + idHex(boundsTraceID)

			resp, body := getTrace(t, url, mimeProtobuf)
			require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
			var got rubatopb.TraceByIDResponse
			require.NoError(t, proto.Unmarshal(body, &got))
			td := &tracev1.TracesData{ResourceSpans: got.Trace.ResourceSpans}
			if !tc.cut {
				require.Equal(t, rubatopb.PartialStatus_COMPLETE, got.Status, got.Message)
				require.Equal(t, 300, spanCount(td))
				return
			}
			require.Equal(t, rubatopb.PartialStatus_PARTIAL, got.Status)
			require.Equal(t, "Trace exceeds maximum size of 100000 bytes, a partial trace is returned", got.Message)
			require.LessOrEqual(t, proto.Size(got.Trace), limit, "the answer fits the limit")
			n := spanCount(td)
			require.Greater(t, n, limit/2000, "the answer is filled, not emptied")
			require.Less(t, n, 300)
			ids := map[string]bool{}
			for _, rs := range td.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					for _, sp := range ss.Spans {
						require.False(t, ids[string(sp.SpanId)], "each span once")
						ids[string(sp.SpanId)] = true
					}
				}
			}

			// v1: the same cut, said in the header; JSON streamed.
			resp, body = getTrace(t, b.serve(t)+"/api/traces/"+idHex(boundsTraceID), mimeJSON)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Contains(t, resp.Header.Get("X-Rubato-Partial"), "Trace exceeds maximum size of 100000 bytes")
			require.Equal(t, n, strings.Count(string(body), `"spanId"`))
			require.Equal(t, 2.0, counterValue(t, b.reg, "rubato_querier_truncated_traces_total"), "the v2 and the v1 lookup")
		})
	}
}

// counterValue reads a counter (summed over labels) from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.Metric {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestTraceCutStopsReading: once the answer is full, the block reads stop:
// a lookup cut at a small limit fetches a few row groups of a big trace,
// not all of them.
func TestTraceCutStopsReading(t *testing.T) {
	read := func(limit int) (int64, int) {
		b := newBoundsQuerier(t, Config{ConcurrentBlockReads: 1}, overrides.Limits{MaxBytesPerTrace: limit})
		b.addBlock(t, boundsTraceID, bigTrace(boundsTraceID, 0, 600, 1000))
		before := b.store.ranges.Load()
		td, err := b.q.FindTraceByID(context.Background(), boundsTenant, boundsTraceID, TimeRange{})
		if limit > 0 {
			require.ErrorIs(t, err, ErrTraceTooLarge)
		} else {
			require.NoError(t, err)
		}
		return b.store.ranges.Load() - before, spanCount(td)
	}
	allReads, all := read(0)
	require.Equal(t, 600, all)
	require.Greater(t, allReads, int64(20), "the trace spans many row groups")
	cutReads, cut := read(50_000)
	require.Positive(t, cut)
	require.Less(t, cut, 60)
	require.LessOrEqual(t, cutReads, allReads/4, "reads stop once the answer is full (%d of %d ranged reads)", cutReads, allReads)
}

// TestCopiesCountOnce: copies of a span (replicas' blocks) never count
// twice against max_bytes_per_trace: a trace under the limit stored three
// times is answered whole and complete.
func TestCopiesCountOnce(t *testing.T) {
	td := bigTrace(boundsTraceID, 0, 100, 1000)
	size := proto.Size(td)
	b := newBoundsQuerier(t, Config{}, overrides.Limits{MaxBytesPerTrace: size * 3 / 2})
	for range 3 {
		b.addBlock(t, boundsTraceID, bigTrace(boundsTraceID, 0, 100, 1000))
	}
	got, err := b.q.FindTraceByID(context.Background(), boundsTenant, boundsTraceID, TimeRange{})
	require.NoError(t, err)
	require.Equal(t, 100, spanCount(got))
}

// TestBlockReadsSemaphoreBeforeSpawn: a lookup over many candidate blocks
// runs at most concurrent_block_reads reads, and starts no goroutine for
// a read it cannot run yet.
func TestBlockReadsSemaphoreBeforeSpawn(t *testing.T) {
	const blocks = 40
	b := newBoundsQuerier(t, Config{ConcurrentBlockReads: 2}, overrides.Limits{})
	for i := range blocks {
		b.addBlock(t, boundsTraceID, bigTrace(boundsTraceID, i, i+1, 10))
	}
	base := runtime.NumGoroutine()
	open := b.store.closeGate()
	defer open()
	type result struct {
		td  *tracev1.TracesData
		err error
	}
	done := make(chan result, 1)
	go func() {
		td, err := b.q.FindTraceByID(context.Background(), boundsTenant, boundsTraceID, TimeRange{})
		done <- result{td, err}
	}()
	require.Eventually(t, func() bool { return b.store.entered.Load() == 2 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // let any extra goroutine start
	require.Equal(t, int64(2), b.store.entered.Load(), "two reads at once")
	require.LessOrEqual(t, runtime.NumGoroutine()-base, 2+2+2, "the lookup, two reads, slack: not one goroutine per block")
	open()
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, blocks, spanCount(r.td))
}

// TestMaxConcurrentQueries: with querier.max_concurrent_queries lookups
// running, one more waits up to queue_timeout and then gets 429 with a
// Retry-After; one whose slot frees within the timeout is answered.
func TestMaxConcurrentQueries(t *testing.T) {
	b := newBoundsQuerier(t, Config{MaxConcurrentQueries: 1, QueueTimeout: 300 * time.Millisecond}, overrides.Limits{})
	b.addBlock(t, boundsTraceID, bigTrace(boundsTraceID, 0, 3, 10))
	url := b.serve(t) + "/api/v2/traces/" + idHex(boundsTraceID)

	open := b.store.closeGate()
	defer open()
	first := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept", mimeProtobuf)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			first <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	require.Eventually(t, func() bool { return b.store.entered.Load() > 0 }, 5*time.Second, time.Millisecond)
	b.store.gate.Store(nil) // later reads pass; the first stays held
	resp, body := getTrace(t, url, mimeProtobuf)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, string(body))
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Contains(t, string(body), "max_concurrent_queries")
	require.Equal(t, 1.0, counterValue(t, b.reg, "rubato_querier_refused_lookups_total"))

	// Queued: the slot frees within the timeout (a long one here, so that
	// a slow machine cannot make the first lookup outlast it).
	b.q.gate.cfg.QueueTimeout = time.Minute
	time.AfterFunc(100*time.Millisecond, open)
	resp, body = getTrace(t, url, mimeProtobuf)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, http.StatusOK, <-first)
}

// TestTraceBytesInFlight: each lookup holds its tenant's max_bytes_per_trace
// of querier.max_trace_bytes_in_flight until its answer is written; a
// lookup whose bytes are not free within queue_timeout gets 429; a tenant
// without a limit is cut at the budget.
func TestTraceBytesInFlight(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limit   int
		refused bool
	}{{"two do not fit", 600_000, true}, {"two fit", 400_000, false}} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBoundsQuerier(t, Config{MaxTraceBytesInFlight: 1_000_000, QueueTimeout: 200 * time.Millisecond}, overrides.Limits{MaxBytesPerTrace: tc.limit})
			b.addBlock(t, boundsTraceID, bigTrace(boundsTraceID, 0, 3, 10))
			open := b.store.closeGate()
			defer open()
			first := make(chan error, 1)
			go func() {
				_, err := b.q.FindTraceByID(context.Background(), boundsTenant, boundsTraceID, TimeRange{})
				first <- err
			}()
			require.Eventually(t, func() bool { return b.store.entered.Load() > 0 }, 5*time.Second, time.Millisecond)
			b.store.gate.Store(nil)
			td, err := b.q.FindTraceByID(context.Background(), boundsTenant, boundsTraceID, TimeRange{})
			if tc.refused {
				require.ErrorIs(t, err, ErrBusy)
				require.Contains(t, err.Error(), "max_trace_bytes_in_flight")
				require.Nil(t, td)
			} else {
				require.NoError(t, err)
				require.Equal(t, 3, spanCount(td))
			}
			open()
			require.NoError(t, <-first)
		})
	}

	// No tenant limit: the lookup is cut at the budget.
	b := newBoundsQuerier(t, Config{MaxTraceBytesInFlight: 60_000}, overrides.Limits{})
	b.addBlock(t, boundsTraceID, bigTrace(boundsTraceID, 0, 300, 1000))
	td, err := b.q.FindTraceByID(context.Background(), boundsTenant, boundsTraceID, TimeRange{})
	require.ErrorIs(t, err, ErrTraceTooLarge)
	require.LessOrEqual(t, proto.Size(td), 60_000)
	require.Positive(t, spanCount(td))
}

// BenchmarkAdmit is the per-span cost of admission (dedupe and size) on a
// 1,000-span part, with and without a byte limit.
func BenchmarkAdmit(b *testing.B) {
	for _, limit := range []int{0, 1 << 30} {
		b.Run(fmt.Sprintf("limit=%d", limit), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				td := bigTrace(boundsTraceID, 0, 1000, 200)
				a := NewAdmission(limit)
				b.StartTimer()
				a.Admit(td)
			}
		})
	}
}

// blockingWriter is a ResponseWriter whose first Write waits until open is
// closed (a slow client), saying so on entered.
type blockingWriter struct {
	*httptest.ResponseRecorder
	once          sync.Once
	entered, open chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() {
		close(b.entered)
		<-b.open
	})
	return b.ResponseRecorder.Write(p)
}

// TestBytesHeldUntilAnswerWritten: a lookup's bytes of
// max_trace_bytes_in_flight stay taken while its answer is being written
// to a slow client, and are given back once it is written.
func TestBytesHeldUntilAnswerWritten(t *testing.T) {
	b := newBoundsQuerier(t, Config{MaxTraceBytesInFlight: 1_000_000, QueueTimeout: 200 * time.Millisecond}, overrides.Limits{MaxBytesPerTrace: 600_000})
	b.addBlock(t, boundsTraceID, bigTrace(boundsTraceID, 0, 3, 10))
	mux := http.NewServeMux()
	NewHandler(b.q, tenant.Resolver{}).Register(mux)
	for _, accept := range []string{mimeJSON, mimeProtobuf} {
		for _, path := range []string{"/api/traces/", "/api/v2/traces/"} {
			req := httptest.NewRequest(http.MethodGet, path+idHex(boundsTraceID), nil)
			req.Header.Set("Accept", accept)
			w := &blockingWriter{ResponseRecorder: httptest.NewRecorder(), entered: make(chan struct{}), open: make(chan struct{})}
			served := make(chan struct{})
			go func() {
				defer close(served)
				mux.ServeHTTP(w, req)
			}()
			<-w.entered
			_, err := b.q.FindTraceByID(context.Background(), boundsTenant, boundsTraceID, TimeRange{})
			require.ErrorIs(t, err, ErrBusy, "%s %s: the answer being written holds its bytes", path, accept)
			close(w.open)
			<-served
			require.Equal(t, http.StatusOK, w.Code)
			_, err = b.q.FindTraceByID(context.Background(), boundsTenant, boundsTraceID, TimeRange{})
			require.NoError(t, err, "given back once written")
		}
	}
}

// TestQueueTimeoutZero: with queue_timeout 0 a lookup never waits: it
// starts when a slot and its bytes are free, and is refused at once when
// not.
func TestQueueTimeoutZero(t *testing.T) {
	g := newGate(Config{MaxConcurrentQueries: 1, MaxTraceBytesInFlight: 100})
	refused := 0
	count := func(string) { refused++ }
	release, err := g.enter(context.Background(), 60, count)
	require.NoError(t, err, "free: starts")
	_, err = g.enter(context.Background(), 60, count)
	require.ErrorIs(t, err, ErrBusy)
	release()
	g.cfg.MaxConcurrentQueries, g.slots = 0, nil
	release, err = g.enter(context.Background(), 60, count)
	require.NoError(t, err)
	_, err = g.enter(context.Background(), 60, count)
	require.ErrorIs(t, err, ErrBusy, "the bytes are taken")
	release()
	release() // twice is once
	release, err = g.enter(context.Background(), 100, count)
	require.NoError(t, err, "all bytes given back exactly once")
	release()
	require.Equal(t, 2, refused)
}
