package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

const configTmpl = `target: distributor,ingester,querier
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %d
  # /flush answers when the block is written: a phase of a million spans
  # on a loaded machine takes longer than the default 30 s.
  http_server_write_timeout: 0s
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:%d
          max_recv_msg_size_mib: 16
ingester:
  max_block_bytes: %d
  trace_idle_period: 1s
  flush_check_period: 200ms
storage:
  trace:
%s
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

func run(cfg config) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	dir, cleanup, err := cfg.prepare("rubato-bench-")
	if err != nil {
		return err
	}
	defer cleanup()
	tp, err := profileTemplate(cfg)
	if err != nil {
		return err
	}
	spanBytes := float64(len(tp.bytes)) / float64(tp.spans)
	requests := (cfg.spans + tp.spans - 1) / tp.spans
	totalSpans := requests * tp.spans

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
	storage := fmt.Sprintf("    backend: local\n    local:\n      path: %s/blocks", dir)
	if cfg.s3Endpoint != "" {
		if err := ensureBucket(ctx, cfg); err != nil {
			return err
		}
		storage = fmt.Sprintf("    backend: s3\n    s3:\n      endpoint: %s\n      bucket: %s\n      access_key: %s\n      secret_key: %s\n      insecure: true\n      forcepathstyle: true\n      region: us-east-1",
			cfg.s3Endpoint, cfg.s3Bucket, cfg.s3Access, cfg.s3Secret)
	}
	maxBlock := int64(float64(totalSpans) * spanBytes / float64(cfg.blocks))
	if cfg.phases > 0 {
		maxBlock = 1 << 40 // blocks are cut by the phases' flushes only
	}
	s.cfgPath = filepath.Join(dir, "rubato.yaml")
	if err := os.WriteFile(s.cfgPath, fmt.Appendf(nil, configTmpl, s.httpPort, grpcPort, s.otlpPort, maxBlock, storage, dir, cfg.syncPolicy), 0o644); err != nil {
		return err
	}
	if err := s.start(); err != nil {
		return err
	}
	defer s.stop()
	fmt.Printf("rubato-bench: %d spans (%d traces × %d spans, %s profile, %.0f bytes of OTLP per span), %d clients, WAL sync %s, backend %s, %s\n",
		totalSpans, totalSpans/cfg.spansPer, cfg.spansPer, cfg.profile, spanBytes, cfg.concurrency, cfg.syncPolicy, map[bool]string{true: "s3 " + cfg.s3Endpoint, false: "local"}[cfg.s3Endpoint != ""],
		map[bool]string{true: fmt.Sprintf("%d phases each ending with /flush", cfg.phases), false: "blocks cut by size"}[cfg.phases > 0])

	cpu0, err := s.cpuSeconds()
	if err != nil {
		return err
	}
	profDone := make(chan error, 1)
	if cfg.cpuProfile != "" {
		go func() { profDone <- profile(s, cfg.cpuProfile, 5) }()
	} else {
		profDone <- nil
	}
	start := time.Now()
	// With -phases N the push is split into N parts, each followed by a
	// synchronous /flush: exactly N blocks, for lookups against a known
	// block count. Without it the ingester cuts blocks by size as it
	// ingests.
	var ids [][]byte
	phases := max(cfg.phases, 1)
	for p := 0; p < phases; p++ {
		n := requests/phases + map[bool]int{true: requests % phases}[p == phases-1]
		got, err := push(ctx, cfg, s, tp, n)
		if err != nil {
			return err
		}
		ids = append(ids, got...)
		if cfg.phases > 0 && p < phases-1 {
			if err := flush(s); err != nil {
				return err
			}
		}
	}
	pushDur := time.Since(start)
	if err := <-profDone; err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	cpuPush, _ := s.cpuSeconds()
	if err := flush(s); err != nil {
		return err
	}
	toBackend := time.Since(start)
	cpuFlush, _ := s.cpuSeconds()
	rssIngest, _ := s.peakRSS()
	blocks, _ := s.metric("rubato_ingester_blocks_flushed_total")
	var diskBytes int64
	if cfg.s3Endpoint == "" {
		diskBytes, err = dirSize(filepath.Join(dir, "blocks"))
	} else {
		diskBytes, err = bucketSize(ctx, cfg)
	}
	if err != nil {
		return err
	}

	// Restart: the WAL was truncated by the flush and local blocks are
	// dropped at start, so every lookup below is served from the backend.
	if err := s.stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if err := s.start(); err != nil {
		return err
	}
	res, err := lookups(ctx, cfg, s, ids)
	if err != nil {
		return err
	}
	rssAll, _ := s.peakRSS()

	n := float64(totalSpans)
	fmt.Printf("ingest:   %.0f spans/s acknowledged (%d spans in %s); %.0f spans/s including the final cut and upload (%s)\n",
		n/pushDur.Seconds(), totalSpans, pushDur.Round(time.Millisecond), n/toBackend.Seconds(), toBackend.Round(time.Millisecond))
	fmt.Printf("cpu:      %.2f CPU-s per million spans (%.2f ingest + %.2f cutting and flushing the last blocks)\n",
		(cpuFlush-cpu0)/n*1e6, (cpuPush-cpu0)/n*1e6, (cpuFlush-cpuPush)/n*1e6)
	fmt.Printf("memory:   peak RSS %.0f MB during ingest and flush, %.0f MB during lookups (after restart)\n", float64(rssIngest)/1e6, float64(rssAll)/1e6)
	fmt.Printf("storage:  %.1f bytes per span in the backend (%d blocks, %.1f MB)\n", float64(diskBytes)/n, int(blocks), float64(diskBytes)/1e6)
	fmt.Printf("lookup:   %d traces, found %.2f%%, p50 %s, p99 %s, max %s; backend GETs per lookup %.2f\n",
		res.n, 100*float64(res.found)/float64(res.n), res.p50, res.p99, res.max, res.getsPerLookup)
	if cfg.searches > 0 {
		if err := searches(ctx, s, cfg.searches); err != nil {
			return err
		}
	}
	if cfg.searchProfile != "" {
		if err := profileSearch(ctx, s, cfg.searchProfile); err != nil {
			return err
		}
	}
	if cfg.searchLoadSpans > 0 {
		return ingestUnderSearch(ctx, cfg, s, tp)
	}
	return nil
}

// profileTemplate is the request template of -profile.
func profileTemplate(cfg config) (*template, error) {
	switch cfg.profile {
	case profileRealistic:
		return newRealisticTemplate(cfg.tracesPerReq, cfg.spansPer)
	case profileSimple:
		return newTemplate(cfg.tracesPerReq, cfg.spansPer)
	}
	return nil, fmt.Errorf("-profile %q: want %s or %s", cfg.profile, profileRealistic, profileSimple)
}

func push(ctx context.Context, cfg config, s *server, tp *template, requests int) ([][]byte, error) {
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", s.otlpPort),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var (
		next  atomic.Int64
		mu    sync.Mutex
		ids   = make([][]byte, 0, requests*tp.traceCount)
		wg    sync.WaitGroup
		first error
	)
	t0 := time.Now()
	for w := 0; w < cfg.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			var batch [][]byte
			out := &raw{}
			for i := next.Add(1); i <= int64(requests) && ctx.Err() == nil; i = next.Add(1) {
				buf, batch = tp.next(buf, batch, uint64(time.Since(t0)))
				if err := conn.Invoke(ctx, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", &raw{b: buf}, out); err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
					return
				}
				var resp coltracepb.ExportTraceServiceResponse
				if err := proto.Unmarshal(out.b, &resp); err != nil || resp.PartialSuccess.GetRejectedSpans() > 0 {
					mu.Lock()
					first = errors.Join(first, fmt.Errorf("spans refused: %v %v", err, resp.PartialSuccess))
					mu.Unlock()
					return
				}
				mu.Lock()
				for _, id := range batch {
					ids = append(ids, slices.Clone(id))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ids, first
}

// profile saves a CPU profile of the server taken over seconds.
func profile(s *server, path string, seconds int) error {
	resp, err := http.Get(s.url(fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

func flush(s *server) error {
	resp, err := http.Post(s.url("/flush"), "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("flush: %s", resp.Status)
	}
	return nil
}

type lookupResult struct {
	n, found      int
	p50, p99, max time.Duration
	getsPerLookup float64
}

func lookups(ctx context.Context, cfg config, s *server, ids [][]byte) (lookupResult, error) {
	if cfg.lookups > 0 && cfg.lookups < len(ids) {
		ids = ids[:cfg.lookups]
	}
	gets0, _ := s.metric("rubato_backend_requests_total", `op="get_range"`)
	gets0b, _ := s.metric("rubato_backend_requests_total", `op="get"`)
	lat := make([]time.Duration, len(ids))
	var found atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, cfg.lookupConc)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.lookupConc}}
	for w := 0; w < cfg.lookupConc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(ids)) && ctx.Err() == nil; i = next.Add(1) - 1 {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url(fmt.Sprintf("/api/traces/%x", ids[i])), nil)
				req.Header.Set("Accept", "application/protobuf")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errc <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t0)
				if err != nil {
					errc <- err
					return
				}
				if resp.StatusCode != http.StatusOK {
					continue
				}
				var tr rubatopb.Trace
				if err := proto.Unmarshal(body, &tr); err != nil {
					errc <- err
					return
				}
				spans := 0
				for _, rs := range tr.ResourceSpans {
					for _, ss := range rs.ScopeSpans {
						spans += len(ss.Spans)
					}
				}
				if spans == cfg.spansPer {
					found.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return lookupResult{}, err
	default:
	}
	gets1, _ := s.metric("rubato_backend_requests_total", `op="get_range"`)
	gets1b, _ := s.metric("rubato_backend_requests_total", `op="get"`)
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return lookupResult{
		n: len(ids), found: int(found.Load()),
		p50: pct(0.50).Round(10 * time.Microsecond), p99: pct(0.99).Round(10 * time.Microsecond), max: lat[len(lat)-1].Round(10 * time.Microsecond),
		getsPerLookup: (gets1 - gets0 + gets1b - gets0b) / float64(len(ids)),
	}, nil
}

func s3Client(cfg config) (*minio.Client, error) {
	return minio.New(cfg.s3Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.s3Access, cfg.s3Secret, ""), Region: "us-east-1"})
}

// ensureBucket creates the bucket, or empties it if it exists, so figures
// are about this run only.
func ensureBucket(ctx context.Context, cfg config) error {
	c, err := s3Client(cfg)
	if err != nil {
		return err
	}
	ok, err := c.BucketExists(ctx, cfg.s3Bucket)
	if err != nil {
		return fmt.Errorf("s3 %s: %w", cfg.s3Endpoint, err)
	}
	if !ok {
		return c.MakeBucket(ctx, cfg.s3Bucket, minio.MakeBucketOptions{Region: "us-east-1"})
	}
	for o := range c.ListObjects(ctx, cfg.s3Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		if err := c.RemoveObject(ctx, cfg.s3Bucket, o.Key, minio.RemoveObjectOptions{}); err != nil {
			return err
		}
	}
	return nil
}

func bucketSize(ctx context.Context, cfg config) (int64, error) {
	c, err := s3Client(cfg)
	if err != nil {
		return 0, err
	}
	var n int64
	for o := range c.ListObjects(ctx, cfg.s3Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return 0, o.Err
		}
		n += o.Size
	}
	return n, nil
}

// raw is a gRPC message sent and received as bytes (with rawCodec).
type raw struct{ b []byte }

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(*raw).b, nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	v.(*raw).b = append(v.(*raw).b[:0], b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }
