package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// TestCollectorNothingLost runs the real OpenTelemetry Collector (built by
// scripts/otelcol.sh) between the OTel SDK and Rubato, configured as the
// Kubernetes guides do, and checks that every span the Collector
// acknowledged to the SDK ends up in Rubato:
//   - under a rate limit far below the offered load (Rubato answers
//     ResourceExhausted with RetryInfo, which the Collector's exporter
//     retries only because RetryInfo is there);
//   - through a 20 s Rubato outage (stopped, then restarted on the same
//     ports and data directory while the Collector and the SDK go on).
func TestCollectorNothingLost(t *testing.T) {
	bin := otelcolBinary(t)

	t.Run("tight rate limit", func(t *testing.T) {
		// 100 kB/s with a 300 kB bucket, against ~230 kB/s offered for 6 s.
		s := startServer(t, options{Overrides: `  defaults:
    ingestion:
      rate_limit_bytes: 100000
      burst_size_bytes: 300000`})
		col := startCollector(t, bin, collectorOptions{Exporter: s.otlpGRPC(), BatchSize: 500})
		snd := startSender(t, col, 1000)
		time.Sleep(6 * time.Second)
		snd.stop(t)
		col.waitDrained(t, 60*time.Second)
		requireAllStored(t, s, col, snd)
		throttled := s.metric(t, "rubato_discarded_spans_total", `reason="rate_limited"`)
		t.Logf("rubato refused %.0f spans with RESOURCE_EXHAUSTED + RetryInfo on the way (each retried)", throttled)
		require.Greater(t, throttled, 0.0, "the rate limit never refused anything: the test did not test retries")
		require.Zero(t, s.metric(t, "rubato_discarded_spans_total", `reason="request_too_large"`))
	})

	t.Run("20s outage", func(t *testing.T) {
		s := startServer(t, options{})
		col := startCollector(t, bin, collectorOptions{Exporter: s.otlpGRPC(), BatchSize: 500})
		snd := startSender(t, col, 300)
		time.Sleep(3 * time.Second)
		stopAt := time.Now()
		s.stop()
		t.Logf("rubato stopped in %s", time.Since(stopAt).Round(time.Millisecond))
		time.Sleep(20*time.Second - time.Since(stopAt))
		startAt := time.Now()
		s.start()
		t.Logf("rubato restarted after a %s outage, ready in %s", time.Since(stopAt).Round(time.Millisecond), time.Since(startAt).Round(time.Millisecond))
		time.Sleep(3 * time.Second)
		snd.stop(t)
		col.waitDrained(t, 60*time.Second)
		require.Contains(t, col.logs.String(), "Will retry", "the Collector never saw the outage")
		requireAllStored(t, s, col, snd)
	})
}

// ackExporter records the spans whose export the Collector acknowledged.
type ackExporter struct {
	sdktrace.SpanExporter
	mu     sync.Mutex
	acked  map[trace.TraceID]map[trace.SpanID]bool
	spans  int
	failed int
}

func (e *ackExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.failed += len(spans)
		return err
	}
	for _, sp := range spans {
		sc := sp.SpanContext()
		if e.acked[sc.TraceID()] == nil {
			e.acked[sc.TraceID()] = map[trace.SpanID]bool{}
		}
		e.acked[sc.TraceID()][sc.SpanID()] = true
		e.spans++
	}
	return nil
}

// spansPerTrace: fewer, larger traces keep the lookups at the end short.
const spansPerTrace = 20

// sender emits traces of spansPerTrace spans through the OTel SDK's batch span
// processor and OTLP gRPC exporter into the Collector.
type sender struct {
	tp      *sdktrace.TracerProvider
	exp     *ackExporter
	cancel  context.CancelFunc
	done    chan struct{}
	created int
}

func startSender(t *testing.T, col *otelcol, spansPerSecond int) *sender {
	t.Helper()
	inner, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(col.receiverAddr()), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	exp := &ackExporter{SpanExporter: inner, acked: map[trace.TraceID]map[trace.SpanID]bool{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond),
		sdktrace.WithMaxQueueSize(100_000), sdktrace.WithMaxExportBatchSize(512)))
	ctx, cancel := context.WithCancel(context.Background())
	s := &sender{tp: tp, exp: exp, cancel: cancel, done: make(chan struct{})}
	pad := strings.Repeat("p", 150)
	go func() {
		defer close(s.done)
		tracer := tp.Tracer("rubato-collector-test")
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		owed := 0.0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			owed += float64(spansPerSecond) / 50 / spansPerTrace
			for ; owed >= 1; owed-- {
				rctx, root := tracer.Start(context.Background(), "checkout", trace.WithAttributes(attribute.String("pad", pad)))
				for k := 1; k < spansPerTrace; k++ {
					_, child := tracer.Start(rctx, fmt.Sprintf("step-%d", k), trace.WithAttributes(attribute.String("pad", pad)))
					child.End()
				}
				root.End()
				s.created += spansPerTrace
			}
		}
	}()
	return s
}

// stop ends the load and waits for the SDK to export what it holds.
func (s *sender) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	<-s.done
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, s.tp.ForceFlush(ctx))
	require.NoError(t, s.tp.Shutdown(ctx))
	s.exp.mu.Lock()
	defer s.exp.mu.Unlock()
	t.Logf("sdk: %d spans created, %d acknowledged by the collector, %d failed", s.created, s.exp.spans, s.exp.failed)
	require.Greater(t, s.exp.spans, s.created*9/10, "the Collector acknowledged too little for the test to mean anything")
}

// waitDrained waits until the Collector's exporter has finished with every
// span its receiver accepted (sent or given up) and its queue is empty.
func (c *otelcol) waitDrained(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		accepted := c.metric(t, "otelcol_receiver_accepted_spans")
		sent := c.metric(t, "otelcol_exporter_sent_spans")
		failed := c.metric(t, "otelcol_exporter_send_failed_spans")
		queued := c.metric(t, "otelcol_exporter_queue_size")
		if accepted > 0 && sent+failed >= accepted && queued == 0 {
			t.Logf("collector: %.0f spans accepted, %.0f sent, %.0f failed; drained in %s", accepted, sent, failed, time.Since(deadline.Add(-timeout)).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector not drained after %s: accepted %.0f, sent %.0f, failed %.0f, queued %.0f\n%s",
				timeout, accepted, sent, failed, queued, c.logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// requireAllStored looks up every trace the Collector acknowledged to the
// SDK and requires each acknowledged span to be in Rubato.
func requireAllStored(t *testing.T, s *server, col *otelcol, snd *sender) {
	t.Helper()
	lookupStart := time.Now()
	ids := make([]trace.TraceID, 0, len(snd.exp.acked))
	for id := range snd.exp.acked {
		ids = append(ids, id)
	}
	type result struct {
		id      trace.TraceID
		missing int
		err     error
	}
	work := make(chan trace.TraceID)
	results := make(chan result)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				got, err := lookupSpanIDs(s, id)
				missing := 0
				for sid := range snd.exp.acked[id] {
					if !got[sid] {
						missing++
					}
				}
				results <- result{id, missing, err}
			}
		}()
	}
	go func() {
		for _, id := range ids {
			work <- id
		}
		close(work)
		wg.Wait()
		close(results)
	}()
	lostSpans, lostTraces := 0, 0
	var firstLost []string
	for r := range results {
		require.NoError(t, r.err)
		if r.missing > 0 {
			lostSpans += r.missing
			lostTraces++
			if len(firstLost) < 5 {
				firstLost = append(firstLost, r.id.String())
			}
		}
	}
	t.Logf("%d acknowledged traces looked up in %s, %d spans lost", len(ids), time.Since(lookupStart).Round(time.Millisecond), lostSpans)
	require.Zero(t, lostSpans, "%d acknowledged spans in %d traces lost (e.g. %v); collector send_failed_spans %.0f\ncollector logs:\n%s",
		lostSpans, lostTraces, firstLost, col.metric(t, "otelcol_exporter_send_failed_spans"), tail(col.logs.String(), 4000))
}

// lookupSpanIDs reads a trace by ID and returns its span IDs (none on 404).
func lookupSpanIDs(s *server, id trace.TraceID) (map[trace.SpanID]bool, error) {
	req, err := http.NewRequest(http.MethodGet, s.url(fmt.Sprintf("/api/traces/%s", id)), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[trace.SpanID]bool{}
	if resp.StatusCode == http.StatusNotFound {
		return out, nil
	}
	return out, decodeTraceSpanIDs(resp, out)
}

func decodeTraceSpanIDs(resp *http.Response, out map[trace.SpanID]bool) error {
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("trace lookup: %s: %s", resp.Status, body)
	}
	var tr rubatopb.Trace
	if err := proto.Unmarshal(body, &tr); err != nil {
		return err
	}
	for _, rs := range tr.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				var sid trace.SpanID
				copy(sid[:], sp.SpanId)
				out[sid] = true
			}
		}
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
