package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

type config struct {
	binary       string
	spans        int
	spansPer     int
	tracesPerReq int
	concurrency  int
	lookups      int
	lookupConc   int
	blocks       int
	dir          string
	keep         bool
	s3Endpoint   string
	s3Bucket     string
	s3Access     string
	s3Secret     string
	syncPolicy   string
	timeout      time.Duration
	cpuProfile   string
	phases       int
	searches     int
	profile      string
	// -search-load: ingest with and without a concurrent search load.
	searchLoadSpans int
	searchLoadQPS   float64
	// searchLoadProfile: a 10 s CPU profile of the second round with searches.
	searchLoadProfile string
	searchProfile     string

	// -cluster: CPU per span of an RF3 cluster against the single binary.
	cluster         bool
	clusterRounds   int
	clusterAllBuild bool

	bigTraceMB       int
	bigTraceRequests int
	bigTraceRSSCap   int64
}

func (c *config) registerFlags(f *flag.FlagSet) {
	f.StringVar(&c.binary, "binary", "", "rubato binary to run (default: build ./cmd/rubato)")
	f.IntVar(&c.spans, "spans", 2_000_000, "spans to push")
	f.IntVar(&c.spansPer, "spans-per-trace", 10, "spans per trace")
	f.StringVar(&c.profile, "profile", profileRealistic, "traffic: realistic (9 services × 2 pods, per-pod resources, IDs in URLs and statements, 3% errors with exceptions, ~450 B/span) or simple (3 services, ~380 B/span; flatters CPU and bytes per span)")
	f.IntVar(&c.tracesPerReq, "traces-per-request", 50, "traces per OTLP request")
	f.IntVar(&c.concurrency, "concurrency", 4, "concurrent OTLP clients")
	f.IntVar(&c.lookups, "lookups", 0, "traces to look up (0: every trace)")
	f.IntVar(&c.lookupConc, "lookup-concurrency", 1, "concurrent lookups (1 gives clean latencies)")
	f.IntVar(&c.blocks, "blocks", 20, "aim for about this many backend blocks (max_block_bytes = data / blocks)")
	f.IntVar(&c.searches, "searches", 0, "after the lookups, run each search case (cmd/rubato-bench/search.go) this many times")
	f.IntVar(&c.searchLoadSpans, "search-load-spans", 0, "after the searches, push this many spans in each of 6 alternating rounds, without and with a search load, and compare ingest rates (0: skip)")
	f.StringVar(&c.searchLoadProfile, "search-load-cpuprofile", "", "write a 10 s CPU profile of the server during the second ingest round with searches to this file")
	f.Float64Var(&c.searchLoadQPS, "search-load-qps", 2, "searches per second of the -search-load-spans load (one client, cases (a)-(e) in turn)")
	f.StringVar(&c.searchProfile, "search-cpuprofile", "", "after the searches, write a 5 s CPU profile of the server running case (a) back to back to this file")
	f.IntVar(&c.phases, "phases", 0, "push in this many phases, each ending with a synchronous /flush: exactly this many blocks")
	f.StringVar(&c.dir, "dir", "", "working directory (default: a temp dir, removed afterwards)")
	f.BoolVar(&c.keep, "keep", false, "keep the working directory")
	f.StringVar(&c.s3Endpoint, "s3.endpoint", "", "use an S3/MinIO backend at host:port instead of the local backend")
	f.StringVar(&c.s3Bucket, "s3.bucket", "rubato-bench", "S3 bucket (must exist)")
	f.StringVar(&c.s3Access, "s3.access-key", "minioadmin", "S3 access key")
	f.StringVar(&c.s3Secret, "s3.secret-key", "minioadmin", "S3 secret key")
	f.StringVar(&c.syncPolicy, "wal.sync-policy", "always", "WAL sync policy of the server")
	f.DurationVar(&c.timeout, "timeout", 30*time.Minute, "give up after this long")
	f.IntVar(&c.bigTraceMB, "bigtrace", 0, "instead of the ingest benchmark: request one trace of this many MB this many times at once (-bigtrace.requests) and report the server's peak RSS, with and without the read bounds (bigtrace.go)")
	f.IntVar(&c.bigTraceRequests, "bigtrace.requests", 10, "concurrent requests of the big trace")
	f.Int64Var(&c.bigTraceRSSCap, "bigtrace.rss-cap", 8<<30, "kill the server if its RSS passes this many bytes (reported)")
	f.BoolVar(&c.cluster, "cluster", false, "instead of the ingest benchmark: push -spans to the single binary, then to an RF3 cluster (1 distributor + 3 ingesters over memberlist), and compare their CPU per span (cluster.go)")
	f.BoolVar(&c.clusterAllBuild, "cluster.all-build", false, "with -cluster: every replica builds every trace into blocks (distributor.build_on_one_replica: false), as in Tempo")
	f.IntVar(&c.clusterRounds, "cluster.rounds", 1, "with -cluster: measure both setups this many times, alternating")
	f.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the server during the push phase to this file")
}

// prepare makes the run's working directory (-dir, or a temporary one that
// cleanup removes unless -keep) and builds the rubato binary into it
// unless -binary names one.
func (c *config) prepare(prefix string) (dir string, cleanup func(), err error) {
	cleanup = func() {}
	dir = c.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", prefix); err != nil {
			return "", cleanup, err
		}
		if !c.keep {
			cleanup = func() { _ = os.RemoveAll(dir) }
		}
	}
	if c.binary == "" {
		c.binary = filepath.Join(dir, "rubato")
		if out, err := exec.Command("go", "build", "-o", c.binary, "./cmd/rubato").CombinedOutput(); err != nil {
			cleanup()
			return "", func() {}, fmt.Errorf("build rubato: %v\n%s", err, out)
		}
	}
	return dir, cleanup, nil
}
