package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/integration/minio"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
)

// cluster is Rubato run as separate processes of the one binary on
// 127.0.0.1, gossiping their ring over memberlist: ingesters with
// replication factor 3, one distributor, one querier, two compactors
// sharing the compaction jobs over their ring.
type cluster struct {
	ingesters   []*server
	distributor *server
	querier     *server
	compactors  []*server
}

// clusterOptions shape a cluster.
type clusterOptions struct {
	Storage string // storage.trace body; empty: a local directory per process
	// Join renders one gossip peer's address from its port (default
	// 127.0.0.1:PORT).
	Join func(port int) string
	// NoCompactor leaves the compactors out.
	NoCompactor bool
	// IngesterPorts, when set, gives ingester i's gRPC listen port and the
	// port it advertises in the ring (a fault proxy's, forwarding to it).
	IngesterPorts func(i int) (listen, advertise int)
	// RemoteTimeout, when set, is ingester_client.remote_timeout (the
	// distributor's push timeout) of every process.
	RemoteTimeout time.Duration
	// KVStore, when set, replaces "store: memberlist" as the body of the
	// ingester and compactor rings' kvstore blocks (one line per key, no
	// indentation).
	KVStore string
	// HoldTimeout, when set, is the ingesters' hold_timeout.
	HoldTimeout time.Duration
}

// startCluster starts three ingesters, then the distributor, querier and
// compactor, each ready before the next starts. Every process lists every
// ingester's gossip port in memberlist.join_members.
func startCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	if o.Join == nil {
		o.Join = func(p int) string { return fmt.Sprintf("127.0.0.1:%d", p) }
	}
	if o.KVStore == "" {
		o.KVStore = "store: memberlist"
	}
	kv := func(indent string) string {
		return indent + strings.ReplaceAll(strings.TrimSpace(o.KVStore), "\n", "\n"+indent)
	}
	gossip := []int{freePort(t), freePort(t), freePort(t)}
	var join []string
	for _, p := range gossip {
		join = append(join, o.Join(p))
	}
	proc := func(target string, port int, id string) options {
		extra := fmt.Sprintf(`target: %s
memberlist:
  bind_addr: [127.0.0.1]
  bind_port: %d
  join_members: [%s]
  gossip_interval: 100ms
  left_ingesters_timeout: 30s
ingester_client:
  pool_config:
    checkinterval: 1s
`, target, port, strings.Join(join, ", "))
		if o.RemoteTimeout > 0 {
			extra += fmt.Sprintf("  remote_timeout: %s\n", o.RemoteTimeout)
		}
		ing := fmt.Sprintf(`  lifecycler:
    id: %s
    heartbeat_period: 500ms
    ring:
      heartbeat_timeout: 1m
      replication_factor: 3
      kvstore:
%s`, id, kv("        "))
		if o.HoldTimeout > 0 {
			ing += fmt.Sprintf("\n  hold_timeout: %s", o.HoldTimeout)
		}
		return options{IdlePeriod: "1s", Extra: extra, Ingester: ing, Storage: o.Storage}
	}
	c := &cluster{}
	for i := range gossip {
		opts := proc("ingester", gossip[i], fmt.Sprintf("ingester-%d", i))
		if o.IngesterPorts != nil {
			listen, advertise := o.IngesterPorts(i)
			opts.GRPCPort = listen
			opts.Ingester += fmt.Sprintf("\n    port: %d", advertise)
		}
		c.ingesters = append(c.ingesters, startServer(t, opts))
	}
	c.distributor = startServer(t, proc("distributor", freePort(t), "unused"))
	c.querier = startServer(t, proc("querier", freePort(t), "unused"))
	if !o.NoCompactor {
		for i := range 2 {
			opts := proc("compactor", freePort(t), "unused")
			opts.Extra += fmt.Sprintf(`compactor:
  compaction:
    compaction_cycle: 500ms
  ring:
    instance_id: compactor-%d
    instance_addr: 127.0.0.1
    heartbeat_period: 500ms
    kvstore:
%s
`, i, kv("      "))
			c.compactors = append(c.compactors, startServer(t, opts))
		}
		for _, s := range c.compactors {
			require.Eventually(t, func() bool { return strings.Count(page(t, s, "/compactor/ring"), ">ACTIVE<") == 2 }, 20*time.Second, 100*time.Millisecond,
				"%s does not see 2 ACTIVE compactors:\n%s", s.url(""), page(t, s, "/compactor/ring"))
		}
	}
	c.waitActive(t, 3)
	return c
}

// compactionJobs sums rubato_compactor_jobs_total{result="success"} over
// the cluster's compactors.
func (c *cluster) compactionJobs(t *testing.T) int {
	n := 0
	for _, s := range c.compactors {
		for _, line := range strings.Split(page(t, s, "/metrics"), "\n") {
			if v, ok := strings.CutPrefix(line, `rubato_compactor_jobs_total{result="success"} `); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				require.NoError(t, err)
				n += int(f)
			}
		}
	}
	return n
}

// waitActive waits until the distributor and the querier each see n
// ingesters ACTIVE in the ring.
func (c *cluster) waitActive(t *testing.T, n int) {
	t.Helper()
	for _, s := range []*server{c.distributor, c.querier} {
		require.Eventually(t, func() bool { return activeIngesters(t, s) == n }, 20*time.Second, 100*time.Millisecond,
			"%s does not see %d ACTIVE ingesters:\n%s", s.url(""), n, ringPage(t, s))
	}
}

func ringPage(t *testing.T, s *server) string { return page(t, s, "/ingester/ring") }

// page is s's answer to GET path, status line first.
func page(t *testing.T, s *server, path string) string {
	t.Helper()
	resp, err := http.Get(s.url(path))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, resp.Status, "\n")
	buf := make([]byte, 64<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// activeIngesters counts the ACTIVE instances on s's /ingester/ring page.
func activeIngesters(t *testing.T, s *server) int {
	t.Helper()
	return strings.Count(ringPage(t, s), ">ACTIVE<")
}

// load is clients pushing to the distributor until stopped, recording
// what was acknowledged and how writes failed.
type load struct {
	mu        sync.Mutex
	acked     map[string]bool
	retryable map[codes.Code]int
	fatal     []error
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

const clusterSpansPer = 4

func startLoad(t *testing.T, s *server, clients int) *load {
	t.Helper()
	conn, err := grpc.NewClient(s.otlpGRPC(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	c := coltracepb.NewTraceServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{acked: map[string]bool{}, retryable: map[codes.Code]int{}, cancel: cancel}
	for w := 0; w < clients; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				req, ids := makeRequest(2, clusterSpansPer)
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				resp, err := c.Export(rctx, req)
				rcancel()
				l.mu.Lock()
				switch code := status.Code(err); {
				case err == nil && resp.GetPartialSuccess().GetRejectedSpans() == 0:
					for _, id := range ids {
						l.acked[string(id)] = true
					}
				case err == nil:
					l.fatal = append(l.fatal, fmt.Errorf("partial success: %v", resp.GetPartialSuccess()))
				case ctx.Err() != nil:
					// The test stopped the load: nothing was promised.
				case code == codes.Unavailable || code == codes.ResourceExhausted || code == codes.DeadlineExceeded:
					l.retryable[code]++
				default:
					l.fatal = append(l.fatal, err)
				}
				l.mu.Unlock()
				// A paced client (about 20 traces/s each), so checking every
				// acknowledged trace stays quick; after an error, its backoff.
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	return l
}

// stop ends the load and returns the acknowledged trace IDs.
func (l *load) stop(t *testing.T) []string {
	t.Helper()
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Empty(t, l.fatal, "writes failed with errors a client must not retry")
	ids := make([]string, 0, len(l.acked))
	for id := range l.acked {
		ids = append(ids, id)
	}
	t.Logf("%d traces acknowledged; retryable refusals by code: %v", len(ids), l.retryable)
	return ids
}

func (l *load) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// requireAllExact reads every trace through the querier: each must have
// exactly its spans, none twice.
func (c *cluster) requireAllExact(t *testing.T, ids []string, stage string) {
	t.Helper()
	require.NotEmpty(t, ids)
	work := make(chan string)
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				td := c.querier.traceByID(t, []byte(id), "")
				seen := map[string]bool{}
				for _, rs := range td.GetResourceSpans() {
					for _, ss := range rs.ScopeSpans {
						for _, sp := range ss.Spans {
							seen[string(sp.SpanId)] = true
						}
					}
				}
				if n := countSpans(td); n != clusterSpansPer || len(seen) != n {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%x: %d spans, %d distinct, want %d", id, n, len(seen), clusterSpansPer))
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	require.Empty(t, bad, "%s: acknowledged traces not found exactly", stage)
	t.Logf("%s: all %d acknowledged traces found exactly (checked in %s)", stage, len(ids), time.Since(start).Round(time.Millisecond))
}

// requireSearchExact searches the querier for every trace of the load:
// each acknowledged trace is listed once with all its spans, none twice,
// though three replicas (the builder and two holding it, and later the
// backend and the replicas still answering) answer for it.
// Traces of writes that failed retryably may be listed too.
func (c *cluster) requireSearchExact(t *testing.T, ids []string, stage string) {
	t.Helper()
	res := &rubatopb.SearchResponse{}
	getJSON(t, c.querier, "/api/search?limit=1000000&spss=10&q="+url.QueryEscape(`{ resource.service.name = "crash" }`), res)
	require.Equal(t, res.Metrics.TotalJobs, res.Metrics.CompletedJobs, stage)
	found := map[string]bool{}
	for _, tr := range res.Traces {
		require.False(t, found[tr.TraceID], "%s: trace %s listed twice", stage, tr.TraceID)
		found[tr.TraceID] = true
		require.Len(t, tr.SpanSets, 1, stage)
		spans := map[string]bool{}
		for _, sp := range tr.SpanSets[0].Spans {
			spans[sp.SpanID] = true
		}
		require.Equal(t, uint32(clusterSpansPer), tr.SpanSets[0].Matched, "%s: trace %s", stage, tr.TraceID)
		require.Len(t, spans, clusterSpansPer, "%s: trace %s: distinct spans", stage, tr.TraceID)
		require.Len(t, tr.SpanSets[0].Spans, clusterSpansPer, "%s: trace %s: no span twice", stage, tr.TraceID)
	}
	var missing int
	for _, id := range ids {
		if !found[search.TraceIDString([]byte(id))] {
			missing++
		}
	}
	require.Zero(t, missing, "%s: acknowledged traces the search did not find (of %d; %d listed)", stage, len(ids), len(found))
	t.Logf("%s: search lists all %d acknowledged traces exactly (%d listed)", stage, len(ids), len(found))
}

func waitAcked(t *testing.T, l *load, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return l.ackedCount() >= n }, 20*time.Second, 10*time.Millisecond)
}

// TestClusterIngesterKilled: kill -9 one of three ingesters (replication
// factor 3) while four clients write through the distributor. Every
// acknowledged trace is found exactly, with no span twice, while it is
// down, after it restarts and replays its WAL, and once every ingester has
// flushed its copy to MinIO.
func TestClusterIngesterKilled(t *testing.T) {
	srv := minio.Start(t)
	c := startCluster(t, clusterOptions{Storage: s3Storage(srv, srv.NewBucket(t, "cluster"))})
	l := startLoad(t, c.distributor, 4)
	waitAcked(t, l, 100)
	victim := c.ingesters[1]
	victim.kill()
	before := l.ackedCount()
	waitAcked(t, l, before+100) // writes keep reaching a quorum
	ids := l.stop(t)
	c.requireAllExact(t, ids, "one ingester down")
	c.requireSearchExact(t, ids, "one ingester down") // it is still in the ring: a replica fails

	victim.start() // replays its WAL
	c.waitActive(t, 3)
	c.requireAllExact(t, ids, "after the restart")

	for _, ing := range c.ingesters {
		ing.flush(t) // each trace's builder flushes it (a promoted replica too)
	}
	time.Sleep(time.Second) // the querier's blocklist poll (500ms)
	c.requireAllExact(t, ids, "after every ingester flushed")
	c.requireSearchExact(t, ids, "after every ingester flushed")

	// The two compactors merge the copies; every trace stays exact.
	require.Eventually(t, func() bool { return c.compactionJobs(t) > 0 }, 30*time.Second, 200*time.Millisecond)
	time.Sleep(time.Second)
	c.requireAllExact(t, ids, "after compaction by two compactors")
	c.requireSearchExact(t, ids, "after compaction by two compactors")
}

// TestClusterBuilderLosesWAL: an ingester dies with its disk (kill -9, its
// WAL deleted, started afresh). The traces it was building are held by
// the two other replicas, which answer for them at once and, when
// hold_timeout passes with no release from the builder, build them
// themselves: after every ingester has flushed, no fragment is held
// anywhere and every acknowledged trace is found exactly.
func TestClusterBuilderLosesWAL(t *testing.T) {
	srv := minio.Start(t)
	const hold = 4 * time.Second
	c := startCluster(t, clusterOptions{Storage: s3Storage(srv, srv.NewBucket(t, "lostwal")), NoCompactor: true, HoldTimeout: hold})
	l := startLoad(t, c.distributor, 4)
	waitAcked(t, l, 200)
	ids := l.stop(t)
	lost := time.Now()
	victim := c.ingesters[0]
	victim.kill()
	require.NoError(t, os.RemoveAll(filepath.Join(victim.dir, "wal")))
	victim.start()
	c.waitActive(t, 3)
	c.requireAllExact(t, ids, "builder's WAL lost, within hold_timeout")
	c.requireSearchExact(t, ids, "builder's WAL lost, within hold_timeout")

	time.Sleep(time.Until(lost.Add(hold + time.Second)))
	for _, ing := range c.ingesters {
		ing.flush(t)
	}
	for _, ing := range c.ingesters {
		require.Eventually(t, func() bool { return ing.metric(t, "rubato_ingester_held_fragments") == 0 }, 10*time.Second, 100*time.Millisecond,
			"%s still holds fragments", ing.url(""))
		require.Zero(t, ing.metric(t, "rubato_ingester_blocks_pending_flush"), "%s", ing.url(""))
	}
	var promoted float64
	for _, ing := range c.ingesters[1:] {
		promoted += ing.metric(t, "rubato_ingester_held_promoted_total", `reason="timeout"`)
	}
	require.Positive(t, promoted, "the survivors built what the lost builder held")
	time.Sleep(time.Second) // the querier's blocklist poll
	c.requireAllExact(t, ids, "after the survivors built and flushed the lost builder's traces")
	c.requireSearchExact(t, ids, "after the survivors built and flushed the lost builder's traces")
}

// TestClusterRollingRestart restarts the three ingesters one after the
// other (SIGTERM, wait, start, wait until ACTIVE) while four clients write:
// clients see only retryable refusals, and every acknowledged trace is
// found exactly.
func TestClusterRollingRestart(t *testing.T) {
	srv := minio.Start(t)
	c := startCluster(t, clusterOptions{Storage: s3Storage(srv, srv.NewBucket(t, "rolling")), NoCompactor: true})
	l := startLoad(t, c.distributor, 4)
	waitAcked(t, l, 50)
	for _, ing := range c.ingesters {
		ing.restart()
		c.waitActive(t, 3)
		waitAcked(t, l, l.ackedCount()+30)
	}
	ids := l.stop(t)
	c.requireAllExact(t, ids, "after a rolling restart")
}

// TestClusterRingOverEtcd: the ingester and compactor rings kept in etcd
// (kvstore store: etcd, dskit's client) instead of gossip, against the
// etcd that scripts/kube.sh builds: the rings form and carry writes and
// reads.
func TestClusterRingOverEtcd(t *testing.T) {
	etcd := etcdBinary(t)
	dir := t.TempDir()
	client, peer := freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	cmd := exec.Command(etcd, "--name=rubato", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=rubato="+peerURL, "--log-level=warn")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	require.Eventually(t, func() bool {
		resp, err := http.Get(etcdURL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 100*time.Millisecond, "etcd not healthy:\n%s", logs)

	c := startCluster(t, clusterOptions{KVStore: fmt.Sprintf("store: etcd\netcd:\n  endpoints: [127.0.0.1:%d]", client)})
	// The rings are keys in etcd (every key, through etcd's v3 JSON
	// gateway): the ingesters' and the compactors'.
	resp, err := http.Post(etcdURL+"/v3/kv/range", "application/json", strings.NewReader(`{"key":"AA==","range_end":"AA==","keys_only":true}`))
	require.NoError(t, err)
	var kvs struct {
		Count string `json:"count"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&kvs))
	resp.Body.Close()
	n, err := strconv.Atoi(kvs.Count)
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 2, "ring keys in etcd")
	l := startLoad(t, c.distributor, 2)
	waitAcked(t, l, 50)
	c.requireAllExact(t, l.stop(t), "ring in etcd")
}

// etcdBinary is the etcd scripts/kube.sh builds ($RUBATO_ETCD to use
// another).
func etcdBinary(t *testing.T) string {
	return cachedTool(t, "RUBATO_ETCD", "kube-v1.36.3/etcd", "scripts/kube.sh") // kube.sh's KUBE_VERSION
}

// cachedTool is a test tool a script builds into $RUBATO_CACHE (default
// ~/.cache/rubato) at rel, or the path in env. Missing, the test skips, or
// fails under CI=true, where the scripts have run.
func cachedTool(t *testing.T, env, rel, script string) string {
	t.Helper()
	bin := os.Getenv(env)
	if bin == "" {
		cache := os.Getenv("RUBATO_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "rubato")
		}
		bin = filepath.Join(cache, rel)
	}
	if _, err := os.Stat(bin); err != nil {
		msg := fmt.Sprintf("%s not found at %s: run %s (or set %s)", filepath.Base(rel), bin, script, env)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// TestClusterGossipDNS: the processes join the gossip cluster through
// dns+localhost:PORT names, resolved by dskit's DNS provider, and the ring
// they build carries writes and reads.
func TestClusterGossipDNS(t *testing.T) {
	c := startCluster(t, clusterOptions{
		Join:        func(p int) string { return fmt.Sprintf("dns+localhost:%d", p) },
		NoCompactor: true,
	})
	resp, err := http.Get(c.distributor.url("/memberlist"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Positive(t, c.distributor.metric(t, "rubato_memberlist_dns_lookups_total"))

	l := startLoad(t, c.distributor, 2)
	waitAcked(t, l, 50)
	c.requireAllExact(t, l.stop(t), "joined through dns+ names")
}
