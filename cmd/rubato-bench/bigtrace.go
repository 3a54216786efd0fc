package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/google/uuid"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/backend/local"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// The -bigtrace mode measures what a giant trace costs the read path: it
// writes one trace of -bigtrace MB of OTLP (realistic spans of 18 pods)
// into a backend block, starts the server on that block, requests the
// trace -bigtrace.requests times at once over /api/v2/traces/{id}
// (protobuf, as Grafana does) and reports the server's peak RSS. It runs
// the server twice: with the read bounds as configured by default
// (max_bytes_per_trace 5 MB, querier.max_concurrent_queries,
// querier.max_trace_bytes_in_flight) and with every bound off. The server
// is killed if its RSS passes -bigtrace.rss-cap, which is then reported.
//
//	go run ./cmd/rubato-bench -bigtrace 200

const bigTraceTenant = "single-tenant"

const bigTraceConfig = `server:
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
storage:
  trace:
    backend: local
    local:
      path: %s/blocks
    wal:
      path: %s/wal
%s`

const unboundedConfig = `querier:
  max_concurrent_queries: 0
  max_trace_bytes_in_flight: 0
overrides:
  defaults:
    global:
      max_bytes_per_trace: 0
`

func runBigTrace(cfg config) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	dir, cleanup, err := cfg.prepare("rubato-bigtrace-")
	if err != nil {
		return err
	}
	defer cleanup()
	id, size, spans, err := writeBigTraceBlock(ctx, dir, cfg.bigTraceMB<<20)
	if err != nil {
		return err
	}
	fmt.Printf("trace %x: %d spans, %.1f MB of OTLP protobuf, in one block\n", id, spans, float64(size)/(1<<20))
	for _, run := range []struct{ name, extra string }{{"bounded (defaults)", ""}, {"unbounded", unboundedConfig}} {
		if err := bigTraceRun(ctx, cfg, dir, id, run.name, run.extra); err != nil {
			return fmt.Errorf("%s: %w", run.name, err)
		}
	}
	return nil
}

// writeBigTraceBlock writes a block holding one trace of about size bytes.
func writeBigTraceBlock(ctx context.Context, dir string, size int) (id []byte, bytes, spans int, err error) {
	be, err := local.New(local.Config{Path: filepath.Join(dir, "blocks")}, log.NewNopLogger())
	if err != nil {
		return nil, 0, 0, err
	}
	defer be.Close()
	id = random(16)
	td := &tracev1.TracesData{}
	var groups []*tracev1.ScopeSpans
	for _, svc := range realisticServices {
		for pod := 0; pod < podsPerService; pod++ {
			ss := &tracev1.ScopeSpans{Scope: &commonv1.InstrumentationScope{Name: "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", Version: "0.63.0"}}
			td.ResourceSpans = append(td.ResourceSpans, &tracev1.ResourceSpans{Resource: podResource(svc, pod), ScopeSpans: []*tracev1.ScopeSpans{ss}})
			groups = append(groups, ss)
		}
	}
	start := uint64(time.Now().Add(-time.Hour).UnixNano())
	for bytes < size {
		g := groups[spans%len(groups)]
		sp := &tracev1.Span{
			TraceId: id, SpanId: random(8), ParentSpanId: random(8),
			Name: "GET /api/v1/orders/{id}", Kind: tracev1.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: start + uint64(spans)*1000, EndTimeUnixNano: start + uint64(spans)*1000 + 250_000,
			Attributes: []*commonv1.KeyValue{
				str("http.request.method", "GET"), str("url.path", fmt.Sprintf("/api/v1/orders/%x", random(8))),
				num("http.response.status_code", 200), str("server.address", "checkout.shop-prod.svc.cluster.local"),
				str("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0 Safari/537.36"),
				str("http.route", "/api/v1/orders/{id}"), str("request.id", fmt.Sprintf("%x", random(16))),
			},
			Status: &tracev1.Status{},
		}
		g.Spans = append(g.Spans, sp)
		bytes += proto.Size(sp) + 4
		spans++
	}
	var bcfg block.Config
	bcfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("block", flag.ContinueOnError))
	w, err := block.NewWriter(ctx, be, bcfg, bigTraceTenant, uuid.New(), 0, 1, dir)
	if err != nil {
		return nil, 0, 0, err
	}
	if err := w.Add(id, td); err != nil {
		w.Abort()
		return nil, 0, 0, err
	}
	if _, err := w.Close(ctx); err != nil {
		return nil, 0, 0, err
	}
	return id, proto.Size(td), spans, nil
}

func bigTraceRun(ctx context.Context, cfg config, dir string, id []byte, name, extra string) error {
	s := &server{binary: cfg.binary, dir: dir}
	var grpcPort int
	for _, p := range []*int{&s.httpPort, &s.otlpPort, &grpcPort} {
		var err error
		if *p, err = freePort(); err != nil {
			return err
		}
	}
	s.cfgPath = filepath.Join(dir, "rubato-bigtrace.yaml")
	if err := os.WriteFile(s.cfgPath, fmt.Appendf(nil, bigTraceConfig, s.httpPort, grpcPort, s.otlpPort, dir, dir, extra), 0o644); err != nil {
		return err
	}
	_ = os.RemoveAll(filepath.Join(dir, "wal"))
	if err := s.start(); err != nil {
		return err
	}
	defer func() { _ = s.stop() }()
	idle, err := s.peakRSS()
	if err != nil {
		return err
	}

	// Watch the RSS; past the cap the server is killed (a bounded
	// benchmark must not take the machine down).
	capped := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			rss, err := s.peakRSS()
			if err != nil {
				return
			}
			if rss > cfg.bigTraceRSSCap {
				close(capped)
				_ = s.cmd.Process.Kill()
				return
			}
		}
	}()

	type result struct {
		status  int
		bytes   int
		spans   int
		partial string
		err     error
	}
	results := make([]result, cfg.bigTraceRequests)
	t0 := time.Now()
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(r *result) {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url(fmt.Sprintf("/api/v2/traces/%x", id)), nil)
			if err != nil {
				r.err = err
				return
			}
			req.Header.Set("Accept", "application/protobuf")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				r.err = err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			r.status, r.bytes, r.err = resp.StatusCode, len(b), err
			if err != nil || resp.StatusCode != http.StatusOK {
				return
			}
			var tr rubatopb.TraceByIDResponse
			if r.err = proto.Unmarshal(b, &tr); r.err != nil {
				return
			}
			for _, rs := range tr.GetTrace().GetResourceSpans() {
				for _, ss := range rs.GetScopeSpans() {
					r.spans += len(ss.GetSpans())
				}
			}
			if tr.Status == rubatopb.PartialStatus_PARTIAL {
				r.partial = tr.Message
			}
		}(&results[i])
	}
	wg.Wait()
	elapsed := time.Since(t0)
	peak, rssErr := s.peakRSS()
	select {
	case <-capped:
		fmt.Printf("%s: server killed at RSS > %d MB (-bigtrace.rss-cap) after %s\n", name, cfg.bigTraceRSSCap>>20, elapsed.Round(time.Millisecond))
		<-watchDone
		return nil
	default:
	}
	if rssErr != nil {
		return rssErr
	}
	fmt.Printf("%s: %d concurrent requests in %s; server peak RSS %d MB (idle %d MB)\n", name, len(results), elapsed.Round(time.Millisecond), peak>>20, idle>>20)
	for i, r := range results {
		msg := r.partial
		if r.err != nil {
			msg = "error: " + r.err.Error()
		}
		fmt.Printf("  request %d: HTTP %d, %.1f MB, %d spans %s\n", i, r.status, float64(r.bytes)/(1<<20), r.spans, msg)
	}
	return nil
}
