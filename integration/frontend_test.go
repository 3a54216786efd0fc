package integration

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

// TestQueryFrontendWithQueriers runs the query path as separate processes
// of the one binary: a writer (-target=all) flushing blocks to a shared
// local backend, a -target=query-frontend and two -target=querier
// processes whose workers take the frontend's jobs. Every trace is found
// through the frontend, whole, also while and after one querier is killed
// with SIGKILL.
func TestQueryFrontendWithQueriers(t *testing.T) {
	shared := t.TempDir()
	storage := fmt.Sprintf("    backend: local\n    local:\n      path: %s", shared)
	writer := startServer(t, options{Storage: storage})
	want := map[string]bool{}
	var ids [][]byte
	for range 4 { // four flushes: several blocks
		req, got := makeRequest(10, 3)
		pushOTLP(t, writer.otlpGRPC(), req)
		writer.flush(t)
		for _, id := range got {
			want[strings.TrimLeft(hex.EncodeToString(id), "0")] = true
		}
		ids = append(ids, got...)
	}

	fe := startServer(t, options{Storage: storage, Extra: `target: query-frontend
query_frontend:
  max_retries: 3
  search:
    target_bytes_per_job: 1
  trace_by_id:
    query_shards: 2
`})
	worker := func(host string) string {
		return fmt.Sprintf(`target: querier
querier:
  frontend_worker:
    frontend_address: %s:%d
    parallelism: 2
`, host, fe.ports.GRPC)
	}
	q1 := startServer(t, options{Storage: storage, Extra: worker("127.0.0.1")})
	// The other finds the frontend by name (DNS, /etc/hosts).
	startServer(t, options{Storage: storage, Extra: worker("localhost")})
	require.Eventually(t, func() bool { return fe.metric(t, "rubato_query_frontend_connected_workers") == 4 },
		20*time.Second, 50*time.Millisecond, fe.logs.String())

	search := func() (map[string]bool, error) {
		resp, err := http.Get(fe.url("/api/search?q=%7B%7D&limit=1000&spss=1"))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("search: %d %s", resp.StatusCode, body)
		}
		var sr rubatopb.SearchResponse
		if err := protojson.Unmarshal(body, &sr); err != nil {
			return nil, err
		}
		got := map[string]bool{}
		for _, tr := range sr.Traces {
			got[tr.TraceID] = true
		}
		return got, nil
	}
	// Every block uploaded and polled by the frontend.
	require.Eventually(t, func() bool {
		got, err := search()
		return err == nil && len(got) == len(want)
	}, 30*time.Second, 100*time.Millisecond)
	got, err := search()
	require.NoError(t, err)
	require.Equal(t, want, got)
	for _, id := range ids {
		require.Equal(t, 3, countSpans(fe.traceByID(t, id, "")), "trace %x", id)
	}
	require.Greater(t, fe.metric(t, "rubato_query_frontend_jobs_total", `kind="search_blocks"`, `outcome="ok"`), 1.0)
	require.Greater(t, q1.metric(t, "rubato_querier_worker_jobs_total", `outcome="ok"`), 0.0)

	// Queries run while one querier is killed: every answer is complete.
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	stop := make(chan struct{})
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := search()
				if err == nil && len(got) != len(want) {
					err = fmt.Errorf("search found %d of %d traces", len(got), len(want))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	q1.kill()
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return fe.metric(t, "rubato_query_frontend_connected_workers") == 2 },
		10*time.Second, 50*time.Millisecond)
	for _, id := range ids {
		require.Equal(t, 3, countSpans(fe.traceByID(t, id, "")), "trace %x after the kill", id)
	}
	t.Logf("retries after the kill: %v", fe.metric(t, "rubato_query_frontend_retries_total"))
}
