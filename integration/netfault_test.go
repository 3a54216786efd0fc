package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/integration/minio"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// The network-fault tests put a Toxiproxy proxy (in process, real TCP on
// 127.0.0.1) in front of each ingester's gRPC port. Each ingester listens
// on its own port and advertises the proxy's in the ring
// (ingester.lifecycler.port), so every push from the distributor and every
// read from the querier crosses the proxy; gossip does not, so the ring
// keeps the ingesters ACTIVE while their data path is faulty, which is the
// case these tests are about.

// netFaultRemoteTimeout is ingester_client.remote_timeout in these tests:
// the distributor's bound on one push to one ingester.
const netFaultRemoteTimeout = 3 * time.Second

// faultCluster is a cluster whose ingesters sit behind fault proxies.
type faultCluster struct {
	*cluster
	proxies []*toxiproxy.Proxy
}

func startFaultCluster(t *testing.T, bucket string) *faultCluster {
	t.Helper()
	srv := minio.Start(t)
	tp := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	fc := &faultCluster{}
	listen := make([]int, 3)
	for i := range listen {
		listen[i] = freePort(t)
		p := toxiproxy.NewProxy(tp, fmt.Sprintf("ingester-%d", i), fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", listen[i]))
		require.NoError(t, tp.Collection.Add(p, true))
		t.Cleanup(p.Stop)
		fc.proxies = append(fc.proxies, p)
	}
	fc.cluster = startCluster(t, clusterOptions{
		Storage:       s3Storage(srv, srv.NewBucket(t, bucket)),
		NoCompactor:   true,
		RemoteTimeout: netFaultRemoteTimeout,
		IngesterPorts: func(i int) (int, int) { return listen[i], fc.proxyPort(i) },
	})
	// The ring carries the proxies' addresses, not the ingesters' own.
	ring := ringPage(t, fc.distributor)
	for i := range fc.proxies {
		require.Contains(t, ring, fc.proxyAddr(i))
		require.NotContains(t, ring, fmt.Sprintf("127.0.0.1:%d", listen[i]))
	}
	return fc
}

func (fc *faultCluster) proxyAddr(i int) string { return fc.proxies[i].Listen }

func (fc *faultCluster) proxyPort(i int) int {
	var p int
	_, err := fmt.Sscanf(fc.proxies[i].Listen[strings.LastIndexByte(fc.proxies[i].Listen, ':')+1:], "%d", &p)
	if err != nil {
		panic(err)
	}
	return p
}

// toxic adds a toxic of type typ to both directions of ingester i's
// proxy, as name-upstream and name-downstream; existing connections get
// it too.
func (fc *faultCluster) toxic(t *testing.T, i int, name, typ, attrs string) {
	t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		_, err := fc.proxies[i].Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(
			`{"name": %q, "type": %q, "stream": %q, "toxicity": 1.0, "attributes": %s}`, name+"-"+stream, typ, stream, attrs)))
		require.NoError(t, err)
	}
}

// heal removes every toxic of ingester i's proxy.
func (fc *faultCluster) heal(i int) { fc.proxies[i].Toxics.ResetToxics(context.Background()) }

// partition drops every byte between the distributor (and querier) and
// ingester i in both directions, keeping the connections open (Toxiproxy's
// timeout toxic with timeout 0): a blackhole, not a refused connection.
func (fc *faultCluster) partition(t *testing.T, i int) {
	t.Helper()
	fc.toxic(t, i, "partition", "timeout", `{"timeout": 0}`)
}

// appendFailures is the distributor's count of failed pushes to
// ingester i (through its proxy).
func (fc *faultCluster) appendFailures(t *testing.T, i int) float64 {
	return fc.distributor.metric(t, "rubato_distributor_ingester_append_failures_total", fmt.Sprintf(`ingester=%q`, fc.proxyAddr(i)))
}

func (fc *faultCluster) pushed(t *testing.T, i int) float64 {
	return fc.ingesters[i].metric(t, "rubato_ingester_traces_pushed_total")
}

// attempt is one Export call of a retrying client.
type attempt struct {
	start, end time.Time
	code       codes.Code // OK when acknowledged
}

// retryLoad is clients pushing to the distributor as an OpenTelemetry
// Collector's exporter does: a request that fails retryably
// (Unavailable, ResourceExhausted, DeadlineExceeded) is sent again, the
// same spans, after a backoff, until it is acknowledged. Every attempt is
// recorded, so the test can say which were acknowledged in a window.
type retryLoad struct {
	mu       sync.Mutex
	acked    map[string]bool
	attempts []attempt
	retried  int // requests acknowledged after at least one retry
	fatal    []error
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startRetryLoad(t *testing.T, s *server, clients int) *retryLoad {
	t.Helper()
	conn, err := grpc.NewClient(s.otlpGRPC(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c := coltracepb.NewTraceServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	l := &retryLoad{acked: map[string]bool{}, cancel: cancel}
	for range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				req, ids := makeRequest(2, clusterSpansPer)
				l.send(ctx, c, req, ids)
				time.Sleep(100 * time.Millisecond) // a paced client
			}
		}()
	}
	t.Cleanup(func() { l.cancel(); l.wg.Wait() })
	return l
}

// send exports req until it is acknowledged, fails for good, or the load
// stops (then nothing was promised).
func (l *retryLoad) send(ctx context.Context, c coltracepb.TraceServiceClient, req *coltracepb.ExportTraceServiceRequest, ids [][]byte) {
	backoff := 100 * time.Millisecond
	for try := 0; ctx.Err() == nil; try++ {
		a := attempt{start: time.Now()}
		// The distributor answers within its push timeout; the client's
		// own deadline is far beyond it, so a client-side deadline is a
		// hang, not a refusal.
		rctx, rcancel := context.WithTimeout(ctx, netFaultRemoteTimeout+10*time.Second)
		resp, err := c.Export(rctx, req)
		hung := errors.Is(rctx.Err(), context.DeadlineExceeded)
		rcancel()
		a.end, a.code = time.Now(), status.Code(err)
		l.mu.Lock()
		switch {
		case err == nil && resp.GetPartialSuccess().GetRejectedSpans() == 0:
			l.attempts = append(l.attempts, a)
			for _, id := range ids {
				l.acked[string(id)] = true
			}
			if try > 0 {
				l.retried++
			}
			l.mu.Unlock()
			return
		case err == nil:
			l.fatal = append(l.fatal, fmt.Errorf("partial success: %v", resp.GetPartialSuccess()))
		case ctx.Err() != nil:
			l.mu.Unlock()
			return
		case hung:
			l.fatal = append(l.fatal, fmt.Errorf("no answer within %s (push timeout %s): %w", netFaultRemoteTimeout+10*time.Second, netFaultRemoteTimeout, err))
		case a.code == codes.Unavailable || a.code == codes.ResourceExhausted || a.code == codes.DeadlineExceeded:
			l.attempts = append(l.attempts, a)
			l.mu.Unlock()
			time.Sleep(backoff + time.Duration(rand.Int64N(int64(backoff))))
			backoff = min(2*backoff, time.Second)
			continue
		default:
			l.fatal = append(l.fatal, err)
		}
		l.mu.Unlock()
		return
	}
}

func (l *retryLoad) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitMore waits until n more traces than now are acknowledged.
func (l *retryLoad) waitMore(t *testing.T, n int, within time.Duration) {
	t.Helper()
	target := l.ackedCount() + n
	require.Eventually(t, func() bool { return l.ackedCount() >= target }, within, 20*time.Millisecond,
		"%d of %d traces acknowledged", l.ackedCount(), target)
}

// window returns the attempts that started at or after from and ended
// before to.
func (l *retryLoad) window(from, to time.Time) (acked, failed []attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range l.attempts {
		if a.start.Before(from) || !a.end.Before(to) {
			continue
		}
		if a.code == codes.OK {
			acked = append(acked, a)
		} else {
			failed = append(failed, a)
		}
	}
	return acked, failed
}

// stop ends the load and returns the acknowledged trace IDs; no write may
// have failed in a way a client must not retry.
func (l *retryLoad) stop(t *testing.T) []string {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Empty(t, l.fatal, "writes failed with errors a client must not retry, or hung")
	ids := make([]string, 0, len(l.acked))
	for id := range l.acked {
		ids = append(ids, id)
	}
	byCode := map[codes.Code]int{}
	for _, a := range l.attempts {
		byCode[a.code]++
	}
	t.Logf("%d traces acknowledged, %d requests only after a retry; attempts by code: %v", len(ids), l.retried, byCode)
	return ids
}

func durations(as []attempt) (lo, hi time.Duration) {
	if len(as) == 0 {
		return 0, 0
	}
	ds := make([]time.Duration, len(as))
	for i, a := range as {
		ds[i] = a.end.Sub(a.start)
	}
	return slices.Min(ds), slices.Max(ds)
}

// TestNetFaultLatency: 200 ms ± 50 ms each way on one ingester, then on
// all three (still far below the push timeout). No write fails; with the
// latency on all three, every acknowledged write took at least the round
// trip through a proxy, so the distributor's pushes do cross them; every
// acknowledged trace is found exactly.
func TestNetFaultLatency(t *testing.T) {
	fc := startFaultCluster(t, "netfault-latency")
	l := startRetryLoad(t, fc.distributor, 4)
	l.waitMore(t, 40, 20*time.Second)

	const latency = `{"latency": 200, "jitter": 50}`
	from := time.Now()
	fc.toxic(t, 0, "latency", "latency", latency)
	l.waitMore(t, 80, 30*time.Second)
	acked, failed := l.window(from, time.Now())
	require.Empty(t, failed, "latency on one ingester: the other two make the quorum")
	lo, hi := durations(acked)
	t.Logf("latency on one ingester: %d writes acknowledged in %s..%s", len(acked), lo, hi)

	slowBefore := fc.slowPushes(t)
	fc.toxic(t, 1, "latency", "latency", latency)
	fc.toxic(t, 2, "latency", "latency", latency)
	from = time.Now()
	l.waitMore(t, 60, 60*time.Second)
	acked, failed = l.window(from, time.Now())
	require.Empty(t, failed, "latency on all three, below the push timeout")
	require.NotEmpty(t, acked)
	lo, hi = durations(acked)
	t.Logf("latency on all three: %d writes acknowledged in %s..%s", len(acked), lo, hi)
	require.GreaterOrEqual(t, lo, 250*time.Millisecond, "a write acknowledged faster than a round trip through the proxies")
	require.GreaterOrEqual(t, fc.slowPushes(t)-slowBefore, float64(len(acked)),
		"rubato_distributor_push_duration_seconds: pushes over 128ms")

	for i := range fc.proxies {
		fc.heal(i)
	}
	l.waitMore(t, 40, 20*time.Second)
	ids := l.stop(t)
	fc.requireAllExact(t, ids, "after latency")
}

// slowPushes counts the distributor's pushes that took over 128 ms.
func (fc *faultCluster) slowPushes(t *testing.T) float64 {
	const name = "rubato_distributor_push_duration_seconds_bucket"
	return fc.distributor.metric(t, name, `le="+Inf"`) - fc.distributor.metric(t, name, `le="0.128"`)
}

// TestNetFaultResets: Toxiproxy's reset_peer toxic on one ingester, so
// every connection to it (the one in use included) is reset by TCP RST
// 100 ms after its next bytes, which never arrive: the other two make the
// quorum and no write fails, while the distributor counts the failed
// pushes. Then resets flap on two ingesters (on for 100–400 ms, off for
// 200–800 ms, each on its own): some writes lose their quorum and are
// refused retryably, the others are acknowledged. Every acknowledged trace
// is found exactly.
func TestNetFaultResets(t *testing.T) {
	fc := startFaultCluster(t, "netfault-resets")
	l := startRetryLoad(t, fc.distributor, 4)
	l.waitMore(t, 40, 20*time.Second)

	failures0 := fc.appendFailures(t, 0)
	fc.toxic(t, 0, "reset", "reset_peer", `{"timeout": 100}`)
	from := time.Now()
	l.waitMore(t, 100, 60*time.Second)
	acked, failed := l.window(from, time.Now())
	require.Empty(t, failed, "resets on one ingester: the other two make the quorum")
	t.Logf("resets on one ingester: %d writes acknowledged", len(acked))
	require.Greater(t, fc.appendFailures(t, 0), failures0, "rubato_distributor_ingester_append_failures_total of the reset ingester")
	fc.heal(0)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var flaps [2]int
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := fc.proxies[i].Toxics.AddToxicJson(strings.NewReader(`{"name": "flap", "type": "reset_peer", "stream": "upstream", "attributes": {"timeout": 0}}`)); err != nil {
					panic(err)
				}
				flaps[i]++
				time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
				fc.heal(i)
				time.Sleep(time.Duration(200+rand.IntN(600)) * time.Millisecond)
			}
		}()
	}
	from = time.Now()
	l.waitMore(t, 100, 120*time.Second)
	cancel()
	wg.Wait()
	acked, failed = l.window(from, time.Now())
	t.Logf("resets flapping on two ingesters (%d and %d times): %d attempts acknowledged, %d refused retryably", flaps[0], flaps[1], len(acked), len(failed))
	require.NotEmpty(t, failed, "resets on two ingesters never cost a write its quorum")

	l.waitMore(t, 40, 30*time.Second)
	ids := l.stop(t)
	fc.requireAllExact(t, ids, "after resets")
}

// TestNetFaultPartitionOne blackholes one ingester (its connections stay
// open, no byte crosses) while the ring still shows it ACTIVE. Every write
// still reaches the quorum on the other two, well within the push timeout;
// the partitioned ingester gets nothing, the distributor counts its failed
// pushes, and reads answer exactly from the other two. After the heal the
// ingester takes writes again and every acknowledged trace is found
// exactly.
func TestNetFaultPartitionOne(t *testing.T) {
	fc := startFaultCluster(t, "netfault-partition-one")
	l := startRetryLoad(t, fc.distributor, 4)
	l.waitMore(t, 40, 20*time.Second)

	failures0 := fc.appendFailures(t, 0)
	fc.partition(t, 0)
	from := time.Now()
	time.Sleep(500 * time.Millisecond) // pushes already delivered finish
	victim, healthy := fc.pushed(t, 0), fc.pushed(t, 1)
	l.waitMore(t, 100, 60*time.Second)
	acked, failed := l.window(from, time.Now())
	require.Empty(t, failed, "one ingester partitioned: the other two make the quorum")
	lo, hi := durations(acked)
	t.Logf("one ingester partitioned: %d writes acknowledged in %s..%s", len(acked), lo, hi)
	require.Less(t, hi, netFaultRemoteTimeout, "a write waited for the partitioned replica")
	require.Equal(t, victim, fc.pushed(t, 0), "the partitioned ingester received pushes")
	require.Greater(t, fc.pushed(t, 1), healthy)
	require.Equal(t, 3, activeIngesters(t, fc.distributor), "gossip is not partitioned: the ring still has it ACTIVE")
	require.Greater(t, fc.appendFailures(t, 0), failures0, "rubato_distributor_ingester_append_failures_total of the partitioned ingester")
	require.Zero(t, fc.distributor.metric(t, "rubato_discarded_spans_total", `reason="ingester_unavailable"`))

	// Reads tolerate the one partitioned replica.
	fc.requireAllExact(t, l.sample(16), "one ingester partitioned")

	fc.heal(0)
	victim = fc.pushed(t, 0)
	l.waitMore(t, 60, 30*time.Second)
	require.Eventually(t, func() bool { return fc.pushed(t, 0) > victim }, 10*time.Second, 50*time.Millisecond,
		"the healed ingester takes writes again")
	ids := l.stop(t)
	fc.requireAllExact(t, ids, "after the partition healed")
	fc.requireSearchExact(t, ids, "after the partition healed")
}

// TestNetFaultPartitionTwo blackholes two of the three ingesters: no write
// can reach its quorum (2 of 3), so none is acknowledged; each is refused
// retryably within the push timeout and counted as ingester_unavailable.
// After the heal the clients' retries are acknowledged, and every
// acknowledged trace — retried ones included, which may have reached the
// third ingester more than once — is found exactly.
func TestNetFaultPartitionTwo(t *testing.T) {
	fc := startFaultCluster(t, "netfault-partition-two")
	l := startRetryLoad(t, fc.distributor, 4)
	l.waitMore(t, 40, 20*time.Second)

	discarded := fc.distributor.metric(t, "rubato_discarded_spans_total", `reason="ingester_unavailable"`)
	fc.partition(t, 0)
	fc.partition(t, 1)
	from := time.Now()
	time.Sleep(3*netFaultRemoteTimeout + time.Second)
	to := time.Now()
	acked, failed := l.window(from, to)
	require.Empty(t, acked, "writes acknowledged without a quorum")
	require.NotEmpty(t, failed)
	lo, hi := durations(failed)
	t.Logf("two ingesters partitioned: %d attempts refused retryably in %s..%s", len(failed), lo, hi)
	for _, a := range failed {
		require.Equal(t, codes.Unavailable, a.code, "a write without quorum is refused with Unavailable (HTTP 503)")
	}
	require.Greater(t, fc.distributor.metric(t, "rubato_discarded_spans_total", `reason="ingester_unavailable"`), discarded)
	fc.requireNoFalseNotFound(t, l.sample(16), "two ingesters partitioned")
	// OTLP/HTTP gets the same refusal as 503, which its exporters retry.
	req, _ := makeRequest(2, clusterSpansPer)
	body, err := proto.Marshal(req)
	require.NoError(t, err)
	resp, err := http.Post("http://"+fc.distributor.otlpHTTP()+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	require.NoError(t, err)
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "OTLP/HTTP without quorum: %s", msg)

	fc.heal(0)
	fc.heal(1)
	l.waitMore(t, 60, 30*time.Second)
	ids := l.stop(t)
	l.mu.Lock()
	retried := l.retried
	l.mu.Unlock()
	require.Positive(t, retried, "no request was acknowledged after a retry")
	fc.requireAllExact(t, ids, "after the partition of two healed")
	fc.requireSearchExact(t, ids, "after the partition of two healed")
}

// sample returns up to n acknowledged trace IDs.
func (l *retryLoad) sample(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ids []string
	for id := range l.acked {
		if ids = append(ids, id); len(ids) == n {
			break
		}
	}
	return ids
}

// requireNoFalseNotFound looks up acknowledged traces while the querier
// cannot reach enough of their replicas: each answer is the exact trace
// marked partial (X-Rubato-Partial), or 503; never 404.
func (fc *faultCluster) requireNoFalseNotFound(t *testing.T, ids []string, stage string) {
	t.Helper()
	var mu sync.Mutex
	answers := map[string]int{}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := get(t, fc.querier.url(fmt.Sprintf("/api/traces/%x", id)), "application/protobuf")
			answer := resp.Status
			switch resp.StatusCode {
			case http.StatusServiceUnavailable:
			case http.StatusOK:
				var tr rubatopb.Trace
				if err := proto.Unmarshal(body, &tr); err != nil {
					answer = err.Error()
				} else if n := countSpans(&tracev1.TracesData{ResourceSpans: tr.ResourceSpans}); n != clusterSpansPer {
					answer = fmt.Sprintf("200 with %d spans", n)
				} else if resp.Header.Get("X-Rubato-Partial") == "" {
					answer = "200 not marked partial"
				} else {
					answer = "200 partial"
				}
			default:
				answer = fmt.Sprintf("%s: %s", resp.Status, body)
			}
			mu.Lock()
			answers[answer]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("%s: lookups of %d acknowledged traces answered %v", stage, len(ids), answers)
	for a := range answers {
		require.Contains(t, []string{"200 partial", "503 Service Unavailable"}, a, stage)
	}
}
