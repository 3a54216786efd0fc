package main

// The soak (-soak 30m, issue 12 item 9): one rubato single binary (every
// target, compactor included) on 127.0.0.1 with short block cut, flush and
// compaction periods, held at a fraction of its measured maximum ingest
// rate with the -profile traffic, while trace-by-ID lookups and TraceQL
// searches run beside the pushes and the process is restarted every
// -soak-restart-every (graceful and kill -9 in turn). A sampler records
// RSS, goroutines, open files, WAL bytes and backend blocks to CSV and SVG
// (soak_sample.go, soak_svg.go). At the end every acknowledged trace must
// be found with its exact span count (soak_verify.go) and no resource
// series may keep growing (growthViolations); otherwise the run fails.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

type soakConfig struct {
	duration     time.Duration
	rate         float64
	ratePercent  float64
	probe        time.Duration
	restartEvery time.Duration
	sampleEvery  time.Duration
	lookupsPerS  float64
	searchEveryS time.Duration
	out          string
}

func registerSoakFlags(f *flag.FlagSet) *soakConfig {
	c := &soakConfig{}
	f.DurationVar(&c.duration, "soak", 0, "run the soak for this long instead of the benchmark (e.g. 30m; see soak.go)")
	f.Float64Var(&c.rate, "soak-rate", 0, "soak: spans/s to hold (0: -soak-rate-percent of the rate measured for -soak-probe)")
	f.Float64Var(&c.ratePercent, "soak-rate-percent", 50, "soak: percent of the measured maximum ingest rate to hold")
	f.DurationVar(&c.probe, "soak-probe", 30*time.Second, "soak: how long to push at full speed to measure the maximum rate")
	f.DurationVar(&c.restartEvery, "soak-restart-every", 10*time.Minute, "soak: restart the server this often (graceful stop and kill -9 in turn)")
	f.DurationVar(&c.sampleEvery, "soak-sample-every", 5*time.Second, "soak: sampling period of RSS, goroutines, open files, WAL and blocks")
	f.Float64Var(&c.lookupsPerS, "soak-lookups-per-second", 20, "soak: trace-by-ID lookups of acknowledged traces per second")
	f.DurationVar(&c.searchEveryS, "soak-search-every", 5*time.Second, "soak: pause between TraceQL searches (/api/search, last 10 minutes)")
	f.StringVar(&c.out, "soak-out", "soak-results", "soak: directory for soak.csv and soak.svg")
	return c
}

// soakConfigTmpl runs every target (the compactor too) with periods short
// enough that blocks are cut, flushed, compacted and deleted many times in
// a 30-minute run.
const soakConfigTmpl = `server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %d
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:%d
          max_recv_msg_size_mib: 16
ingester:
  max_block_bytes: 64000000
  max_block_duration: 1m
  trace_idle_period: 2s
  flush_check_period: 1s
  complete_block_timeout: 1m
compactor:
  compaction:
    compaction_window: 5m
    compaction_cycle: 15s
    compacted_block_retention: 1m
    block_retention: 720h
storage:
  trace:
    backend: local
    local:
      path: %s/blocks
    blocklist_poll: 5s
    wal:
      path: %s/wal
      sync_policy: %s
overrides:
  defaults:
    ingestion:
      rate_limit_bytes: 0
      burst_size_bytes: 0
      max_traces_per_user: 0
      max_live_traces_bytes: 0
`

// ackedSet holds the IDs of acknowledged traces.
type ackedSet struct {
	mu  sync.RWMutex
	ids [][16]byte
}

func (a *ackedSet) add(batch [][]byte) {
	a.mu.Lock()
	for _, id := range batch {
		a.ids = append(a.ids, [16]byte(id))
	}
	a.mu.Unlock()
}

func (a *ackedSet) len() int {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return len(a.ids)
}

func (a *ackedSet) random() ([16]byte, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if len(a.ids) == 0 {
		return [16]byte{}, false
	}
	return a.ids[mrand.IntN(len(a.ids))], true
}

// soakStats are the client-side counters of a soak.
type soakStats struct {
	requests, retries, spans atomic.Int64
	lookups, lookupMisses    atomic.Int64
	restartMisses            atomic.Int64 // misses while the server was restarting (before /ready)
	restarting               atomic.Bool
	lookupErrors             atomic.Int64 // transport errors and 5xx (restarts)
	searches, searchErrors   atomic.Int64
	searchFailures           atomic.Int64 // 4xx or undecodable answers
	missMu                   sync.Mutex
	missExamples             []string
}

func (st *soakStats) miss(format string, args ...any) {
	st.lookupMisses.Add(1)
	st.missMu.Lock()
	if len(st.missExamples) < 20 {
		msg := fmt.Sprintf(format, args...)
		st.missExamples = append(st.missExamples, msg)
		fmt.Println("miss:    ", msg)
	}
	st.missMu.Unlock()
}

func runSoak(cfg config, sc *soakConfig) error {
	dir, cleanup, err := cfg.prepare("rubato-soak-")
	if err != nil {
		return err
	}
	defer cleanup()
	if err := os.MkdirAll(sc.out, 0o755); err != nil {
		return err
	}
	tp, err := profileTemplate(cfg)
	if err != nil {
		return err
	}
	s := &server{binary: cfg.binary, dir: dir}
	for _, p := range []*int{&s.httpPort, &s.otlpPort} {
		if *p, err = freePort(); err != nil {
			return err
		}
	}
	grpcPort, err := freePort()
	if err != nil {
		return err
	}
	s.cfgPath = filepath.Join(dir, "rubato.yaml")
	if err := os.WriteFile(s.cfgPath, fmt.Appendf(nil, soakConfigTmpl, s.httpPort, grpcPort, s.otlpPort, dir, dir, cfg.syncPolicy), 0o644); err != nil {
		return err
	}
	if err := s.start(); err != nil {
		return err
	}
	running := true
	defer func() {
		if running {
			_ = s.stop()
		}
	}()
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", s.otlpPort),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return err
	}
	defer conn.Close()
	spanBytes := float64(len(tp.bytes)) / float64(tp.spans)
	fmt.Printf("rubato-soak: %s, %s profile (%d traces × %d spans per request, %.0f bytes of OTLP per span), %d clients, WAL sync %s, dir %s\n",
		sc.duration, cfg.profile, tp.traceCount, cfg.spansPer, spanBytes, cfg.concurrency, cfg.syncPolicy, dir)

	var acked ackedSet
	var st soakStats
	t0 := time.Now()
	rate := sc.rate
	if rate <= 0 {
		// The maximum is what the server sustains: spans pushed at full
		// speed for the probe, over the time until they are cut into
		// blocks and flushed too (a rate the cut cannot keep up with
		// only grows the WAL).
		pctx, cancel := context.WithTimeout(context.Background(), sc.probe)
		p0 := time.Now()
		soakPush(pctx, conn, tp, cfg.concurrency, nil, &acked, &st, t0)
		cancel()
		pushed := time.Since(p0)
		if err := flush(s); err != nil {
			return fmt.Errorf("probe flush: %w", err)
		}
		total := time.Since(p0)
		maxRate := float64(st.spans.Load()) / total.Seconds()
		rate = maxRate * sc.ratePercent / 100
		fmt.Printf("probe:    %d spans pushed at full speed in %s (%.0f spans/s acknowledged), in the backend after %s: maximum %.0f spans/s; holding %.0f%%: %.0f spans/s\n",
			st.spans.Load(), pushed.Round(time.Millisecond), float64(st.spans.Load())/pushed.Seconds(), total.Round(time.Millisecond), maxRate, sc.ratePercent, rate)
	}

	probeSpans := st.spans.Load()
	ctx, cancel := context.WithTimeout(context.Background(), sc.duration)
	defer cancel()
	start := time.Now()
	smp := &sampler{s: s, dir: dir, st: &st, start: start}
	var wg sync.WaitGroup
	run := func(fn func()) {
		wg.Add(1)
		go func() { defer wg.Done(); fn() }()
	}
	run(func() { smp.loop(ctx, sc.sampleEvery) })
	run(func() {
		soakPush(ctx, conn, tp, cfg.concurrency, pacer(ctx, rate/float64(tp.spans), cfg.concurrency), &acked, &st, t0)
	})
	run(func() { soakLookups(ctx, s, sc.lookupsPerS, cfg.spansPer, &acked, &st) })
	run(func() { soakSearches(ctx, s, sc.searchEveryS, &st) })
	var restarts []restartEvent
	var restartErr error
	run(func() { restarts, restartErr = soakRestarts(ctx, s, sc.restartEvery, smp) })
	wg.Wait()
	elapsed := time.Since(start)
	if restartErr != nil {
		return restartErr
	}
	fmt.Printf("soak:     %s done: %d spans acknowledged, probe included (%.0f spans/s held; %d requests, %d retries), %d lookups (%d misses while ready, %d misses while restarting, %d transport errors or 5xx), %d searches (%d errors, %d failures), %d restarts\n",
		elapsed.Round(time.Second), st.spans.Load(), float64(st.spans.Load()-probeSpans)/elapsed.Seconds(), st.requests.Load(), st.retries.Load(),
		st.lookups.Load(), st.lookupMisses.Load(), st.restartMisses.Load(), st.lookupErrors.Load(), st.searches.Load(), st.searchErrors.Load(), st.searchFailures.Load(), len(restarts))
	for _, r := range restarts {
		fmt.Printf("restart:  at %s %s, down %s %s\n", r.at.Round(time.Second), r.kind, r.down.Round(time.Millisecond), r.note)
	}

	// Results first, so that a failed verification still leaves them.
	samples := smp.samples()
	csvPath, svgPath := filepath.Join(sc.out, "soak.csv"), filepath.Join(sc.out, "soak.svg")
	if err := writeSamplesCSV(csvPath, samples); err != nil {
		return err
	}
	if err := writeSoakSVG(svgPath, samples, restarts, fmt.Sprintf("rubato soak: %s at %.0f spans/s, %s profile", sc.duration, rate, cfg.profile)); err != nil {
		return err
	}
	printSeriesSummary(samples)
	fmt.Printf("results:  %s, %s\n", csvPath, svgPath)

	var failures []string
	if n := st.lookupMisses.Load(); n > 0 {
		failures = append(failures, fmt.Sprintf("%d lookups of acknowledged traces missed or had a wrong span count, e.g. %s", n, strings.Join(st.missExamples, "; ")))
	}
	if n := st.searchFailures.Load(); n > 0 {
		failures = append(failures, fmt.Sprintf("%d searches failed with a client error or an undecodable answer", n))
	}
	failures = append(failures, growthViolations(samples, soakTolerances)...)

	// Everything into the backend, then count every acknowledged trace.
	vctx, vcancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer vcancel()
	if err := flush(s); err != nil {
		return fmt.Errorf("final flush: %w", err)
	}
	running = false
	if err := s.stop(); err != nil {
		fmt.Printf("WARN:     final graceful stop exited with %v\n", err)
	}
	lost, err := verifySoak(vctx, s, dir, &acked, cfg.spansPer)
	if err != nil {
		return err
	}
	if lost > 0 {
		failures = append(failures, fmt.Sprintf("%d acknowledged traces lost or with a wrong span count", lost))
	}
	if len(failures) > 0 {
		for _, f := range failures {
			fmt.Println("FAIL:", f)
		}
		return &soakFailure{checks: failures, lost: lost, misses: st.lookupMisses.Load()}
	}
	fmt.Println("soak:     PASS (nothing lost, nothing grew past its tolerance)")
	return nil
}

// soakFailure is a soak that ran to the end and failed checks.
type soakFailure struct {
	checks []string
	lost   int   // acknowledged traces lost or with a wrong span count
	misses int64 // lookups of acknowledged traces that missed while ready
}

func (f *soakFailure) Error() string { return fmt.Sprintf("soak failed: %d checks", len(f.checks)) }

// pacer hands out one token per request at perSecond requests a second.
// It drops tokens nobody takes (the buffer holds one per client), so that
// pushes held up by a restart do not burst past the rate afterwards.
func pacer(ctx context.Context, perSecond float64, clients int) <-chan struct{} {
	ch := make(chan struct{}, clients)
	go func() {
		t := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				close(ch)
				return
			case <-t.C:
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch
}

// soakPush pushes requests from clients goroutines until ctx ends, paced by
// tokens (nil: full speed). A failed request is sent again, the same bytes,
// until it is acknowledged: as an OpenTelemetry Collector retries, so a
// copy that was stored although its answer was lost must be deduplicated.
// Only acknowledged traces go into acked.
func soakPush(ctx context.Context, conn *grpc.ClientConn, tp *template, clients int, tokens <-chan struct{}, acked *ackedSet, st *soakStats, t0 time.Time) {
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			var batch [][]byte
			out := &raw{}
			for ctx.Err() == nil {
				if tokens != nil {
					if _, ok := <-tokens; !ok {
						return
					}
				}
				buf, batch = tp.next(buf, batch, uint64(time.Since(t0)))
				backoff := 50 * time.Millisecond
				for {
					// A request already sent is finished even past the
					// deadline, so its traces can be counted as acknowledged.
					rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					err := conn.Invoke(rctx, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", &raw{b: buf}, out)
					cancel()
					if err == nil {
						var resp coltracepb.ExportTraceServiceResponse
						if err = proto.Unmarshal(out.b, &resp); err == nil && resp.PartialSuccess.GetRejectedSpans() > 0 {
							err = fmt.Errorf("partial success: %v", resp.PartialSuccess)
						}
					}
					if err == nil {
						acked.add(batch)
						st.requests.Add(1)
						st.spans.Add(int64(tp.spans))
						break
					}
					if ctx.Err() != nil {
						return // not acknowledged: not counted
					}
					st.retries.Add(1)
					time.Sleep(backoff)
					backoff = min(2*backoff, 2*time.Second)
				}
			}
		}()
	}
	wg.Wait()
}

// soakLookups looks random acknowledged traces up, perSecond a second, and
// checks each has exactly spansPer spans. Transport errors and 5xx answers
// (the server restarting) are counted apart; a 404 or a wrong count is a
// miss, which fails the soak.
func soakLookups(ctx context.Context, s *server, perSecond float64, spansPer int, acked *ackedSet, st *soakStats) {
	if perSecond <= 0 {
		return
	}
	t := time.NewTicker(time.Duration(float64(time.Second) / perSecond))
	defer t.Stop()
	client := &http.Client{Timeout: 30 * time.Second}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id, ok := acked.random()
		if !ok {
			continue
		}
		before := st.restarting.Load()
		n, status, err := lookupSpans(ctx, client, s, id[:])
		if ctx.Err() != nil {
			return
		}
		st.lookups.Add(1)
		switch {
		case err != nil || status >= 500:
			st.lookupErrors.Add(1)
		case (status != http.StatusOK || n != spansPer) && (before || st.restarting.Load()):
			// The server answered while it was stopping or starting
			// (before /ready): reported apart, not a soak failure.
			st.restartMisses.Add(1)
			fmt.Printf("miss:     %x during a restart: HTTP %d, %d spans at %s\n", id, status, n, time.Now().UTC().Format(time.TimeOnly))
		case status != http.StatusOK:
			st.miss("%x: HTTP %d at %s", id, status, time.Now().UTC().Format(time.TimeOnly))
		case n != spansPer:
			st.miss("%x: %d spans, want %d at %s", id, n, spansPer, time.Now().UTC().Format(time.TimeOnly))
		}
	}
}

// lookupSpans fetches a trace as protobuf and counts its spans.
func lookupSpans(ctx context.Context, client *http.Client, s *server, id []byte) (spans, status int, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(fmt.Sprintf("/api/traces/%x", id)), nil)
	req.Header.Set("Accept", "application/protobuf")
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, resp.StatusCode, err
	}
	var tr rubatopb.Trace
	if err := proto.Unmarshal(body, &tr); err != nil {
		return 0, resp.StatusCode, err
	}
	for _, rs := range tr.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			spans += len(ss.Spans)
		}
	}
	return spans, resp.StatusCode, nil
}

// soakSearches runs the search cases of search.go over the last ten
// minutes, one after another with a pause between them.
func soakSearches(ctx context.Context, s *server, pause time.Duration, st *soakStats) {
	cases := searchCases()
	client := &http.Client{Timeout: time.Minute}
	for i := 0; ctx.Err() == nil; i++ {
		c := cases[i%len(cases)]
		now := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(fmt.Sprintf("%s%cstart=%d&end=%d", c.path, sep(c.path), now.Add(-10*time.Minute).Unix(), now.Unix())), nil)
		resp, err := client.Do(req)
		if err == nil {
			var body []byte
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if ctx.Err() != nil {
				return
			}
			st.searches.Add(1)
			switch {
			case err != nil || resp.StatusCode >= 500:
				st.searchErrors.Add(1)
			case resp.StatusCode != http.StatusOK:
				st.searchFailures.Add(1)
				fmt.Printf("search:   %s: %s: %.200s\n", c.name, resp.Status, body)
			default:
				if _, _, err := c.want(body); err != nil {
					st.searchFailures.Add(1)
					fmt.Printf("search:   %s: decode: %v\n", c.name, err)
				}
			}
		} else if ctx.Err() == nil {
			st.searches.Add(1)
			st.searchErrors.Add(1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

func sep(path string) byte {
	if strings.Contains(path, "?") {
		return '&'
	}
	return '?'
}

type restartEvent struct {
	at   time.Duration // since the soak started
	kind string        // "graceful" or "kill -9"
	down time.Duration
	note string // a graceful stop that did not exit 0
}

// soakRestarts restarts the server every period until ctx ends: the first
// time with SIGTERM (graceful), then with SIGKILL, in turn.
func soakRestarts(ctx context.Context, s *server, period time.Duration, smp *sampler) ([]restartEvent, error) {
	var out []restartEvent
	if period <= 0 {
		return nil, nil
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return out, nil
		case <-t.C:
		}
		// No restart in the last seconds: the tick of the last period
		// races with the end of the run.
		if dl, ok := ctx.Deadline(); ctx.Err() != nil || ok && time.Until(dl) < min(30*time.Second, period/4) {
			return out, nil
		}
		ev := restartEvent{at: time.Since(smp.start), kind: "graceful"}
		if i%2 == 1 {
			ev.kind = "kill -9"
		}
		t0 := time.Now()
		smp.setDown(true)
		smp.st.restarting.Store(true)
		if ev.kind == "graceful" {
			// A graceful stop that exits non-zero (its shutdown timed
			// out) is reported, not fatal: what the soak checks is that
			// nothing acknowledged is lost across it.
			if err := s.stop(); err != nil {
				ev.note = "exited with " + err.Error() + "; see rubato.log"
			}
		} else {
			_ = s.cmd.Process.Signal(syscall.SIGKILL)
			err := s.cmd.Wait()
			s.log.Close()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				return out, fmt.Errorf("kill -9: %w", err)
			}
		}
		if err := s.start(); err != nil {
			return out, fmt.Errorf("restart at %s: %w", ev.at.Round(time.Second), err)
		}
		smp.setDown(false)
		smp.st.restarting.Store(false)
		ev.down = time.Since(t0)
		out = append(out, ev)
		fmt.Printf("restart:  %s at %s, down %s, %d spans acknowledged so far %s\n", ev.kind, ev.at.Round(time.Second), ev.down.Round(time.Millisecond), smp.st.spans.Load(), ev.note)
	}
}
