// Command rubato-compact-bench measures one compaction: input MB per CPU
// second and the peak RSS of a fresh process that does nothing else.
//
//	go run ./cmd/rubato-compact-bench -case=many   # 10 blocks × 100k traces
//	go run ./cmd/rubato-compact-bench -case=big    # 2 blocks sharing one 50 MB trace
//	go run ./cmd/rubato-compact-bench -case=big-mixed  # the same, shared spans interleaved
//
// Input blocks are generated once under -dir (local backend) and reused.
// The compaction runs in a child process (the same binary, -child), so
// its VmHWM counts only the compaction.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/log"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/compactor"
	"github.com/rubatodb/rubato/pkg/backend/local"
	"github.com/rubatodb/rubato/pkg/block"
	"github.com/rubatodb/rubato/pkg/blocklist"
)

const tenantID = "bench"

type result struct {
	Case        string  `json:"case"`
	Blocks      int     `json:"blocks"`
	InputBytes  int64   `json:"input_bytes"`
	OutputBytes int64   `json:"output_bytes"`
	TracesIn    int     `json:"traces_in"`
	TracesOut   int     `json:"traces_out"`
	WallSeconds float64 `json:"wall_s"`
	CPUSeconds  float64 `json:"cpu_s"`
	MBPerCPUSec float64 `json:"input_mb_per_cpu_s"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
}

func main() {
	var (
		dir     = flag.String("dir", filepath.Join(os.TempDir(), "rubato-compact-bench"), "Directory of the generated input blocks.")
		bcase   = flag.String("case", "many", "many: 10 blocks of 100k traces; big: 2 blocks sharing one 50 MB trace (a third of its spans in both); big-mixed: the same, shared spans interleaved.")
		blocks  = flag.Int("blocks", 10, "Input blocks (case many).")
		traces  = flag.Int("traces", 100_000, "Traces per block (case many).")
		bigMB   = flag.Int("big-mb", 50, "Size of the big trace in MB of OTLP (case big).")
		child   = flag.Bool("child", false, "Internal: run the compaction and print the result.")
		maxPerT = flag.Int("max-bytes-per-trace", 0, "compaction.max_bytes_per_trace.")
	)
	flag.Parse()
	path := filepath.Join(*dir, *bcase)
	if *child {
		if err := runChild(path, *bcase, *maxPerT); err != nil {
			fmt.Fprintln(os.Stderr, "compaction:", err)
			os.Exit(1)
		}
		return
	}
	if err := prepare(path, *bcase, *blocks, *traces, *bigMB); err != nil {
		fmt.Fprintln(os.Stderr, "prepare:", err)
		os.Exit(1)
	}
	cmd := exec.Command(os.Args[0], "-child", "-dir", *dir, "-case", *bcase, fmt.Sprintf("-max-bytes-per-trace=%d", *maxPerT))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	fmt.Print(string(out))
}

// prepare generates the inputs unless present, and removes the output and
// compacted marks of an earlier run.
func prepare(path, bcase string, blocks, traces, bigMB int) error {
	ctx := context.Background()
	be, err := local.New(local.Config{Path: path}, log.NewNopLogger())
	if err != nil {
		return err
	}
	defer be.Close()
	entries, _ := be.List(ctx, tenantID+"/")
	var inputs int
	for _, e := range entries {
		if !strings.HasSuffix(e, "/") {
			_ = be.Delete(ctx, e) // index
			continue
		}
		keys, err := be.List(ctx, e)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "/"+block.CompactedMetaName) {
				_ = be.Delete(ctx, k)
			}
		}
		data, err := os.ReadFile(filepath.Join(path, e, block.MetaName))
		if err != nil {
			continue
		}
		m, err := block.ParseMeta(data)
		if err != nil {
			continue
		}
		if m.CompactionLevel > 0 {
			if err := blocklist.DeleteBlock(ctx, be, tenantID, m.BlockID); err != nil {
				return err
			}
			continue
		}
		inputs++
	}
	if inputs > 0 {
		return nil
	}
	cfg := blockConfig()
	start := time.Now()
	switch bcase {
	case "many":
		for i := range blocks {
			m, err := writeBlock(ctx, be, cfg, newGen(uint64(i+1)), tenantID, traces, nil, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "generated block %d/%d: %d traces, %.1f MB (%s)\n", i+1, blocks, m.TotalObjects, float64(m.Size)/1e6, time.Since(start).Round(time.Second))
		}
	case "big", "big-mixed":
		// One trace of bigMB MB. big: block 0 holds its first two thirds,
		// block 1 its last two thirds: a third of the spans are in both
		// copies (replicas) and each block also has spans the other lacks
		// (late spans). big-mixed: the same shares, interleaved span by
		// span (block 0 every span but each third one, block 1 every span
		// but the one after), so that every row of block 1 mixes spans of
		// block 0 with new ones. Each block also holds 10k ordinary traces.
		g := newGen(99)
		id := g.id(16)
		full := g.trace(id, 1)
		for proto.Size(full) < bigMB<<20 {
			more := g.trace(id, 3000)
			full.ResourceSpans = append(full.ResourceSpans, more.ResourceSpans...)
		}
		n := len(full.ResourceSpans)
		parts := []*tracev1.TracesData{
			{ResourceSpans: full.ResourceSpans[:2*n/3]},
			{ResourceSpans: full.ResourceSpans[n/3:]},
		}
		if bcase == "big-mixed" {
			parts = []*tracev1.TracesData{everyButOne(full, 2), everyButOne(full, 0)}
		}
		for i, part := range parts {
			m, err := writeBlock(ctx, be, cfg, newGen(uint64(i+1)), tenantID, 10_000, id, part)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "generated block %d/2: %d traces, %.1f MB, big trace part %.1f MB OTLP\n", i+1, m.TotalObjects, float64(m.Size)/1e6, float64(proto.Size(part))/1e6)
		}
	default:
		return fmt.Errorf("unknown case %q", bcase)
	}
	return nil
}

// everyButOne returns td without the spans whose index in their ScopeSpans
// is skip modulo 3.
func everyButOne(td *tracev1.TracesData, skip int) *tracev1.TracesData {
	out := &tracev1.TracesData{}
	for _, rs := range td.ResourceSpans {
		nrs := &tracev1.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}
		for _, ss := range rs.ScopeSpans {
			nss := &tracev1.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}
			for i, sp := range ss.Spans {
				if i%3 != skip {
					nss.Spans = append(nss.Spans, sp)
				}
			}
			nrs.ScopeSpans = append(nrs.ScopeSpans, nss)
		}
		out.ResourceSpans = append(out.ResourceSpans, nrs)
	}
	return out
}

func blockConfig() block.Config {
	var cfg block.Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	return cfg
}

func runChild(path, bcase string, maxPerTrace int) error {
	ctx := context.Background()
	be, err := local.New(local.Config{Path: path}, log.NewNopLogger())
	if err != nil {
		return err
	}
	defer be.Close()
	p := blocklist.New(blocklist.Config{BuildIndex: true}, be, log.NewNopLogger(), nil)
	if err := p.Poll(ctx); err != nil {
		return err
	}
	inputs := p.Metas(tenantID)
	var cfg compactor.Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	cfg.Compaction.MaxInputBlocks = max(len(inputs), 2)
	cfg.Compaction.MaxBytesPerTrace = maxPerTrace
	c, err := compactor.New(cfg, blockConfig(), time.Minute, be, nil, log.NewNopLogger(), nil)
	if err != nil {
		return err
	}
	res := result{Case: bcase, Blocks: len(inputs)}
	for _, m := range inputs {
		res.InputBytes += m.Size
		res.TracesIn += m.TotalObjects
	}
	if pf := os.Getenv("RUBATO_CPUPROFILE"); pf != "" {
		f, err := os.Create(pf)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if pf := os.Getenv("RUBATO_HEAPPROFILE"); pf != "" {
		stop := make(chan struct{})
		defer close(stop)
		go snapshotPeakHeap(pf, stop)
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	out, err := c.Compact(ctx, compactor.Job{Tenant: tenantID, Level: 1, Inputs: inputs})
	if err != nil {
		return err
	}
	res.WallSeconds = time.Since(start).Seconds()
	if pf := os.Getenv("RUBATO_MEMPROFILE"); pf != "" {
		f, err := os.Create(pf)
		if err != nil {
			return err
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
		_ = f.Close()
	}
	res.CPUSeconds = cpuSeconds() - cpu0
	res.OutputBytes = out.Size
	res.TracesOut = out.TotalObjects
	res.MBPerCPUSec = float64(res.InputBytes) / 1e6 / res.CPUSeconds
	res.PeakRSSMB = peakRSSMB()
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
	return nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func peakRSSMB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmHWM:" {
			var kb float64
			fmt.Sscanf(f[1], "%g", &kb)
			return kb / 1024
		}
	}
	return -1
}

// snapshotPeakHeap writes a heap profile whenever the live heap after a GC
// reaches a new high (diagnostics: RUBATO_HEAPPROFILE).
func snapshotPeakHeap(path string, stop <-chan struct{}) {
	var peak uint64
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > peak+peak/10 {
			peak = ms.HeapAlloc
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				_ = f.Close()
			}
		}
	}
}
