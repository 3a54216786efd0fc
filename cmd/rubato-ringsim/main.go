// Command rubato-ringsim measures how Rubato's rings and query-frontend
// queue share work, with dskit's ring code and the frontend's queue type
// rather than a model of them:
//
//   - trace IDs hashed as the distributor hashes them (FNV-1a over tenant
//     and trace ID) and placed with ring.Ring.Get(key, ring.WriteNoExtend)
//     on rings of 3–100 ingesters, each with the lifecycler's default 128
//     random tokens, at replication factor 1 and 3;
//   - (tenant, window) compaction jobs hashed the same way over 1–20
//     compactors (replication factor 1: one owner per job);
//   - tenants with very different backlogs through querier/frontend.Queue.
//
// It prints Markdown tables: load imbalance (max/mean and p99/mean of the
// copies each instance holds), the share of copies that move to another
// instance when one instance joins or leaves (beside the ideal 1/(n+1) and
// 1/n), and each tenant's share of dequeues and wait in the queue.
//
// Usage: go run ./cmd/rubato-ringsim [-keys 10000000] [-only ingesters|compactors|queue]
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/rubatodb/rubato/ingester/client"
)

type config struct {
	keys           int
	tenants        int
	ingesters      []int
	rfs            []int
	tokens         int
	compactors     []int
	compTenants    int
	compWindows    int
	compTokens     int
	workers        int
	maxOutstanding int
	smallJobs      int
	ratio          int
	smallTenants   int
	seed           uint64
	only           string
}

func main() {
	var cfg config
	var ingesters, rfs, compactors string
	flag.IntVar(&cfg.keys, "keys", 10_000_000, "Trace IDs to place on the ingester rings.")
	flag.IntVar(&cfg.tenants, "tenants", 10, "Tenants the trace IDs are spread over (the tenant is part of the hash).")
	flag.StringVar(&ingesters, "ingesters", "3,5,10,20,50,100", "Ingester counts, comma-separated.")
	flag.StringVar(&rfs, "rf", "1,3", "Replication factors, comma-separated.")
	flag.IntVar(&cfg.tokens, "tokens", 128, "Tokens per ingester (ingester.lifecycler.num_tokens; dskit's default).")
	flag.StringVar(&compactors, "compactors", "1,2,3,5,10,20", "Compactor counts, comma-separated.")
	flag.IntVar(&cfg.compTenants, "compactor-tenants", 100, "Tenants of the compaction jobs.")
	flag.IntVar(&cfg.compWindows, "compactor-windows", 336, "Windows per tenant (336 one-hour windows: two weeks).")
	flag.IntVar(&cfg.compTokens, "compactor-tokens", 128, "Tokens per compactor.")
	flag.IntVar(&cfg.workers, "workers", 4, "Querier workers pulling from the queue (2 queriers × parallelism 2).")
	flag.IntVar(&cfg.maxOutstanding, "max-outstanding", 2000, "query_frontend.max_outstanding_per_tenant (0: no limit).")
	flag.IntVar(&cfg.smallJobs, "small-jobs", 20, "Jobs of each small tenant.")
	flag.IntVar(&cfg.ratio, "ratio", 1000, "The big tenant's jobs as a multiple of a small tenant's.")
	flag.IntVar(&cfg.smallTenants, "small-tenants", 9, "Small tenants beside the big one.")
	flag.Uint64Var(&cfg.seed, "seed", 1, "Seed of the trace IDs and the tokens.")
	flag.StringVar(&cfg.only, "only", "", "Run one part: ingesters, compactors or queue (default all).")
	flag.Parse()
	var err error
	for _, p := range []struct {
		s   string
		dst *[]int
	}{{ingesters, &cfg.ingesters}, {rfs, &cfg.rfs}, {compactors, &cfg.compactors}} {
		if *p.dst, err = ints(p.s); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "rubato-ringsim:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad count %q in %q", f, s)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(cfg config) error {
	if cfg.only == "" || cfg.only == "ingesters" {
		start := time.Now()
		keys := traceKeys(cfg.keys, cfg.tenants, cfg.seed)
		fmt.Printf("### Trace IDs over ingesters\n\n%d trace IDs of %d tenants, %d random tokens per ingester, ring.WriteNoExtend.\n\n", len(keys), cfg.tenants, cfg.tokens)
		if err := ringTable(keys, cfg.ingesters, cfg.rfs, cfg.tokens, cfg.seed); err != nil {
			return err
		}
		fmt.Printf("\n(%s)\n\n", time.Since(start).Round(time.Second))
	}
	if cfg.only == "" || cfg.only == "compactors" {
		keys := jobKeys(cfg.compTenants, cfg.compWindows)
		fmt.Printf("### (tenant, window) jobs over compactors\n\n%d jobs (%d tenants × %d one-hour windows), %d random tokens per compactor, replication factor 1.\n\n", len(keys), cfg.compTenants, cfg.compWindows, cfg.compTokens)
		if err := ringTable(keys, cfg.compactors, []int{1}, cfg.compTokens, cfg.seed+1); err != nil {
			return err
		}
		fmt.Println()
	}
	if cfg.only == "" || cfg.only == "queue" {
		return queueTables(cfg)
	}
	return nil
}

// traceKeys returns the ring tokens of n random 16-byte trace IDs, tenant
// k%tenants each.
func traceKeys(n, tenants int, seed uint64) []uint32 {
	r := rand.New(rand.NewPCG(seed, 0x7269))
	names := make([]string, tenants)
	for i := range names {
		names[i] = fmt.Sprintf("tenant-%d", i)
	}
	keys := make([]uint32, n)
	var id [16]byte
	for k := range keys {
		for i := 0; i < 16; i += 8 {
			v := r.Uint64()
			for j := range 8 {
				id[i+j] = byte(v >> (8 * j))
			}
		}
		keys[k] = client.TokenFor(names[k%tenants], id[:])
	}
	return keys
}

// jobKeys returns the ring tokens of tenants × windows compaction jobs: the
// same FNV-1a, over the tenant and the window's start in Unix seconds (the
// compactor's (tenant, window) job identity; hourly windows back from a
// fixed time).
func jobKeys(tenants, windows int) []uint32 {
	end := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	keys := make([]uint32, 0, tenants*windows)
	for t := range tenants {
		tenant := fmt.Sprintf("tenant-%d", t)
		for w := range windows {
			start := end.Add(-time.Duration(w+1) * time.Hour).Unix()
			keys = append(keys, client.TokenFor(tenant, []byte(strconv.FormatInt(start, 10))))
		}
	}
	return keys
}

// ringTable prints, for every count n and replication factor, the
// imbalance of keys over n instances and the copies that move when an
// (n+1)th joins or the first leaves.
func ringTable(keys []uint32, counts, rfs []int, tokens int, seed uint64) error {
	fmt.Println("| instances | RF | max/mean | p99/mean | moved on join | ideal 1/(n+1) | moved on leave | ideal 1/n |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, n := range counts {
		gen := ring.NewRandomTokenGeneratorWithSeed(int64(seed) + int64(n))
		toks := tokensOf(gen, n+1, tokens, nil) // toks[n] joins
		for _, rf := range rfs {
			if rf > n {
				continue
			}
			row, err := ringRow(keys, toks, n, rf)
			if err != nil {
				return fmt.Errorf("%d instances, RF %d: %w", n, rf, err)
			}
			fmt.Println(row)
		}
	}
	return nil
}

func ringRow(keys []uint32, toks [][]uint32, n, rf int) (string, error) {
	base, err := newSimRing(descOf(toks[:n], -1), rf)
	if err != nil {
		return "", err
	}
	defer base.Close()
	join, err := newSimRing(descOf(toks, -1), rf)
	if err != nil {
		return "", err
	}
	defer join.Close()
	var leave *simRing
	if n-1 >= rf && n > 1 {
		if leave, err = newSimRing(descOf(toks[:n], 0), rf); err != nil {
			return "", err
		}
		defer leave.Close()
	}
	p, err := place(base, join, leave, n+1, func(yield func(uint32) bool) {
		for _, k := range keys {
			if !yield(k) {
				return
			}
		}
	})
	if err != nil {
		return "", err
	}
	maxMean, p99Mean := imbalance(p.Loads[:n])
	leaveCol := "n/a"
	if leave != nil {
		leaveCol = pct(p.MovedLeave, p.Copies)
	}
	return fmt.Sprintf("| %d | %d | %.3f | %.3f | %s | %.2f%% | %s | %.2f%% |",
		n, rf, maxMean, p99Mean, pct(p.MovedJoin, p.Copies), 100/float64(n+1), leaveCol, 100/float64(n)), nil
}

func pct(a, b int64) string { return fmt.Sprintf("%.2f%%", 100*float64(a)/float64(b)) }

func queueTables(cfg config) error {
	big := cfg.smallJobs * cfg.ratio
	// Late tenants arrive while the big one still has jobs queued even when
	// the limit refused most of them.
	late := big / 10
	if cfg.maxOutstanding > 0 {
		late = min(late, cfg.maxOutstanding/2)
	}
	scenarios := []struct {
		title string
		loads []tenantLoad
	}{
		{"all tenants enqueue at once", nil},
		{fmt.Sprintf("small tenants arrive after %d dequeues of the big tenant", late), nil},
	}
	for i := range scenarios {
		arrive := 0
		if i == 1 {
			arrive = late
		}
		l := []tenantLoad{{Name: "big", Jobs: big}}
		for s := range cfg.smallTenants {
			l = append(l, tenantLoad{Name: fmt.Sprintf("small-%d", s), Jobs: cfg.smallJobs, Arrive: arrive})
		}
		scenarios[i].loads = l
	}
	fmt.Printf("### Query-frontend queue fairness\n\nThe real querier/frontend.Queue; %d workers; one tenant with %d jobs (%d× each of %d small tenants' %d). Waits in job slots (one slot = one job's run time, all workers busy). FIFO: the same arrivals through one shared queue, for comparison (a model, not Rubato code).\n\n",
		cfg.workers, big, cfg.ratio, cfg.smallTenants, cfg.smallJobs)
	for _, sc := range scenarios {
		for _, limit := range []int{cfg.maxOutstanding, 0} {
			res, err := simulateQueue(sc.loads, limit, cfg.workers)
			if err != nil {
				return err
			}
			fifo := fifoBaseline(sc.loads, limit, cfg.workers)
			fmt.Printf("**%s, max_outstanding_per_tenant=%d**\n\n", sc.title, limit)
			fmt.Println("| tenant | jobs | refused (429) | share of dequeues while all queued | mean wait | p99 wait | last job starts | FIFO mean wait | FIFO last job starts |")
			fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
			for i, r := range res {
				if i > 2 && i < len(res)-1 {
					continue // small tenants look alike: print the first two and the last
				}
				fmt.Printf("| %s | %d | %d | %.1f%% | %.1f | %.0f | %d | %.1f | %d |\n",
					r.Name, r.Jobs, r.Refused, 100*r.Share, r.MeanWait, r.P99Wait, r.LastStart, fifo[i].MeanWait, fifo[i].LastStart)
			}
			fmt.Println()
		}
	}
	return nil
}
