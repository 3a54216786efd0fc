package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The cost of replication (-cluster): the same realistic traffic is pushed
// to the single binary (configTmpl, replication factor 1) and to a cluster
// of processes of the same binary on 127.0.0.1 (one distributor and three
// ingesters, replication factor 3, ring over memberlist, as in
// integration/cluster_test.go), one after the other in one run, rounds
// times. For each setup the CPU of every process (user+system from
// /proc/PID/stat) is summed over the push and a final synchronous /flush
// of every ingester, and divided by the spans pushed.

// clusterTmpl is one cluster process's config: target, HTTP, gRPC and
// gossip ports, the join list, build_on_one_replica, the receivers block
// (distributor only), the
// ingester's ID, max_block_bytes, storage, WAL path and sync policy.
const clusterTmpl = `target: %s
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %d
memberlist:
  bind_addr: [127.0.0.1]
  bind_port: %d
  join_members: [%s]
  left_ingesters_timeout: 30s
distributor:
  build_on_one_replica: %t
  receivers:
%s
ingester:
  lifecycler:
    id: %s
    ring:
      replication_factor: 3
      kvstore:
        store: memberlist
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

// setupResult is one setup's CPU over a push of spans.
type setupResult struct {
	name   string
	spans  int
	push   time.Duration
	cpu    float64   // CPU-s of every process, push and final flush
	idle   float64   // CPU-s per second of every process, idle before the push
	byProc []float64 // CPU-s per process, same order as names
	names  []string
	// Held fragments (one replica builds each trace): copies sent held,
	// still held after the flush, promoted, and PromoteHeld calls.
	held, stillHeld, promoted, promotions float64
}

func (r setupResult) usPerSpan() float64 { return r.cpu / float64(r.spans) * 1e6 }

func runCluster(cfg config) error {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	dir, cleanup, err := cfg.prepare("rubato-bench-cluster-")
	if err != nil {
		return err
	}
	defer cleanup()
	tp, err := profileTemplate(cfg)
	if err != nil {
		return err
	}
	requests := (cfg.spans + tp.spans - 1) / tp.spans
	totalSpans := requests * tp.spans
	spanBytes := float64(len(tp.bytes)) / float64(tp.spans)
	if cfg.s3Endpoint != "" {
		if err := ensureBucket(ctx, cfg); err != nil {
			return err
		}
	}
	fmt.Printf("rubato-bench -cluster: %d spans per setup (%s profile, %.0f bytes of OTLP per span), %d clients, WAL sync %s, backend %s, %d rounds\n",
		totalSpans, cfg.profile, spanBytes, cfg.concurrency, cfg.syncPolicy, map[bool]string{true: "s3 " + cfg.s3Endpoint, false: "local"}[cfg.s3Endpoint != ""], cfg.clusterRounds)
	var singles, clusters []setupResult
	for r := 0; r < cfg.clusterRounds; r++ {
		maxBlock := int64(float64(totalSpans) * spanBytes / float64(cfg.blocks))
		single, err := measureSingle(ctx, cfg, filepath.Join(dir, fmt.Sprintf("single-%d", r)), tp, requests, maxBlock)
		if err != nil {
			return fmt.Errorf("single binary: %w", err)
		}
		printSetup(single)
		cl, err := measureCluster(ctx, cfg, filepath.Join(dir, fmt.Sprintf("cluster-%d", r)), tp, requests, maxBlock)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		printSetup(cl)
		fmt.Printf("round %d: cluster / single binary CPU per span = %.2f×\n", r+1, cl.usPerSpan()/single.usPerSpan())
		singles, clusters = append(singles, single), append(clusters, cl)
	}
	var s, c float64
	for i := range singles {
		s += singles[i].usPerSpan()
		c += clusters[i].usPerSpan()
	}
	fmt.Printf("replication cost: single binary %.2f CPU-µs/span, RF3 cluster %.2f CPU-µs/span (mean of %d rounds): %.2f× (target ≤ 2.5×)\n",
		s/float64(len(singles)), c/float64(len(clusters)), len(singles), c/s)
	return nil
}

func printSetup(r setupResult) {
	var parts []string
	for i, n := range r.names {
		parts = append(parts, fmt.Sprintf("%s %.2f", n, r.byProc[i]))
	}
	fmt.Printf("%-14s %.2f CPU-µs/span (%.2f CPU-s for %d spans; push %s, %.0f spans/s); CPU-s by process: %s; idle before: %.3f CPU-s/s\n",
		r.name+":", r.usPerSpan(), r.cpu, r.spans, r.push.Round(time.Millisecond), float64(r.spans)/r.push.Seconds(), strings.Join(parts, ", "), r.idle)
	if r.held > 0 {
		fmt.Printf("%-14s %.0f trace fragments sent held (built by another replica); after the flush %.0f still held, %.0f promoted (%.0f PromoteHeld calls)\n",
			"", r.held, r.stillHeld, r.promoted, r.promotions)
	}
}

// storageBlock is the storage.trace body for blocks under dir (local) or
// the S3 bucket.
func storageBlock(cfg config, dir string) string {
	if cfg.s3Endpoint != "" {
		return fmt.Sprintf("    backend: s3\n    s3:\n      endpoint: %s\n      bucket: %s\n      access_key: %s\n      secret_key: %s\n      insecure: true\n      forcepathstyle: true\n      region: us-east-1",
			cfg.s3Endpoint, cfg.s3Bucket, cfg.s3Access, cfg.s3Secret)
	}
	return fmt.Sprintf("    backend: local\n    local:\n      path: %s/blocks", dir)
}

func measureSingle(ctx context.Context, cfg config, dir string, tp *template, requests int, maxBlock int64) (setupResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return setupResult{}, err
	}
	s := &server{binary: cfg.binary, dir: dir}
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return setupResult{}, err
		}
		ports[i] = p
	}
	s.httpPort, s.otlpPort = ports[0], ports[2]
	s.cfgPath = filepath.Join(dir, "rubato.yaml")
	doc := fmt.Appendf(nil, configTmpl, s.httpPort, ports[1], s.otlpPort, maxBlock, storageBlock(cfg, dir), dir, cfg.syncPolicy)
	if err := os.WriteFile(s.cfgPath, doc, 0o644); err != nil {
		return setupResult{}, err
	}
	if err := s.start(); err != nil {
		return setupResult{}, err
	}
	defer s.stop()
	return measure(ctx, cfg, "single binary", s, []*server{s}, []string{"all"}, tp, requests)
}

func measureCluster(ctx context.Context, cfg config, dir string, tp *template, requests int, maxBlock int64) (setupResult, error) {
	type proc struct {
		target, id string
		http, grpc int
		gossip     int
	}
	procs := make([]proc, 4)
	for i := range procs {
		procs[i].target, procs[i].id = "ingester", fmt.Sprintf("ingester-%d", i)
		for _, p := range []*int{&procs[i].http, &procs[i].grpc, &procs[i].gossip} {
			var err error
			if *p, err = freePort(); err != nil {
				return setupResult{}, err
			}
		}
	}
	procs[3].target, procs[3].id = "distributor", "unused"
	var join []string
	for _, p := range procs[:3] {
		join = append(join, fmt.Sprintf("127.0.0.1:%d", p.gossip))
	}
	otlpPort, err := freePort()
	if err != nil {
		return setupResult{}, err
	}
	var all []*server
	defer func() {
		for i := len(all) - 1; i >= 0; i-- {
			_ = all[i].stop()
		}
	}()
	var names []string
	for _, p := range procs {
		pdir := filepath.Join(dir, p.id)
		if p.target == "distributor" {
			pdir = filepath.Join(dir, "distributor")
		}
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return setupResult{}, err
		}
		receivers := "    otlp:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:0"
		if p.target == "distributor" {
			receivers = fmt.Sprintf("    otlp:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:%d\n          max_recv_msg_size_mib: 16", otlpPort)
		}
		// Every process's blocks go to one place, as to one bucket.
		doc := fmt.Appendf(nil, clusterTmpl, p.target, p.http, p.grpc, p.gossip, strings.Join(join, ", "), !cfg.clusterAllBuild, receivers, p.id,
			maxBlock, storageBlock(cfg, dir), pdir, cfg.syncPolicy)
		s := &server{binary: cfg.binary, dir: pdir, httpPort: p.http, cfgPath: filepath.Join(pdir, "rubato.yaml")}
		if p.target == "distributor" {
			s.otlpPort = otlpPort
		}
		if err := os.WriteFile(s.cfgPath, doc, 0o644); err != nil {
			return setupResult{}, err
		}
		if err := s.start(); err != nil {
			return setupResult{}, fmt.Errorf("%s: %w", p.id, err)
		}
		all = append(all, s)
		names = append(names, map[bool]string{true: "distributor", false: p.id}[p.target == "distributor"])
	}
	dist := all[3]
	deadline := time.Now().Add(time.Minute)
	for activeIngesters(dist) < 3 {
		if time.Now().After(deadline) {
			return setupResult{}, fmt.Errorf("the distributor does not see 3 ACTIVE ingesters")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return measure(ctx, cfg, "RF3 cluster", dist, all, names, tp, requests)
}

// activeIngesters counts ACTIVE instances on s's /ingester/ring page.
func activeIngesters(s *server) int {
	resp, err := http.Get(s.url("/ingester/ring"))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Count(string(b), ">ACTIVE<")
}

// measure pushes requests to entry, flushes every process that ingests,
// and sums the CPU of procs over both.
func measure(ctx context.Context, cfg config, name string, entry *server, procs []*server, names []string, tp *template, requests int) (setupResult, error) {
	// The idle cost (gossip, heartbeats, sweeps) is reported, not
	// subtracted: it is part of what a setup costs.
	const idleFor = 5 * time.Second
	var idle0, idle1 float64
	for _, s := range procs {
		c, err := s.cpuSeconds()
		if err != nil {
			return setupResult{}, err
		}
		idle0 += c
	}
	time.Sleep(idleFor)
	cpu0 := make([]float64, len(procs))
	for i, s := range procs {
		c, err := s.cpuSeconds()
		if err != nil {
			return setupResult{}, err
		}
		cpu0[i] = c
		idle1 += c
	}
	profDone := make(chan error, 1)
	profDone <- nil
	if cfg.cpuProfile != "" && len(procs) > 1 {
		// -cpuprofile: 5 s of the first ingester while it ingests.
		<-profDone
		go func() { profDone <- profile(procs[0], cfg.cpuProfile, 5) }()
	}
	start := time.Now()
	if _, err := push(ctx, cfg, entry, tp, requests); err != nil {
		return setupResult{}, err
	}
	pushDur := time.Since(start)
	if err := <-profDone; err != nil {
		return setupResult{}, fmt.Errorf("profile: %w", err)
	}
	for i, s := range procs {
		if names[i] == "distributor" {
			continue
		}
		if err := flush(s); err != nil {
			return setupResult{}, err
		}
	}
	r := setupResult{name: name, spans: requests * tp.spans, push: pushDur, names: names, idle: (idle1 - idle0) / idleFor.Seconds()}
	for i, s := range procs {
		c, err := s.cpuSeconds()
		if err != nil {
			return setupResult{}, err
		}
		r.byProc = append(r.byProc, c-cpu0[i])
		r.cpu += c - cpu0[i]
	}
	if len(procs) > 1 {
		// After the flushes the builders release what the others held:
		// give the last releases a moment to land, then read the counts.
		time.Sleep(time.Second)
		for _, m := range []struct {
			v    *float64
			name string
		}{
			{&r.held, "rubato_distributor_held_fragments_total"},
			{&r.promotions, "rubato_distributor_promotions_total"},
			{&r.stillHeld, "rubato_ingester_held_fragments"},
			{&r.promoted, "rubato_ingester_held_promoted_total"},
		} {
			for _, s := range procs {
				v, err := s.metric(m.name)
				if err != nil {
					return setupResult{}, err
				}
				*m.v += v
			}
		}
	}
	return r, nil
}
