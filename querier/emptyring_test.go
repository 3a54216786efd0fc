package querier

import (
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/flagext"
	"github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/rubatodb/rubato/pkg/backend/inmem"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// TestEmptyIngesterRingIsNotNotFound: with no ingester in the ring (all
// starting, replaying their WAL, or stopping), acknowledged traces may be
// only there, so a lookup must not answer "not found" nor a search "no
// results": v1 answers 503, v2 PARTIAL, search 503. The soak saw false
// 404s around restarts when an empty ring read as "nothing live".
func TestEmptyIngesterRingIsNotNotFound(t *testing.T) {
	ctx := context.Background()
	var rcfg ring.Config
	flagext.DefaultValues(&rcfg)
	rcfg.KVStore.Store = "inmemory"
	rcfg.ReplicationFactor = 1
	r, err := ring.New(rcfg, "ingester", "empty-ring-test", log.NewNopLogger(), nil)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(ctx, r))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(ctx, r) })

	var cfg Config
	cfg.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	q := New(cfg, StoreConfig{}, r, nil, inmem.New(), nil, log.NewNopLogger(), prometheus.NewRegistry())

	var id [16]byte
	id[15] = 1
	td, err := q.FindTraceByID(ctx, "t1", id, TimeRange{})
	require.ErrorIs(t, err, ErrNoIngesters)
	require.Nil(t, td)

	mux := http.NewServeMux()
	NewHandler(q, tenant.Resolver{}).Register(mux)
	for path, want := range map[string]int{
		"/api/traces/01":    http.StatusServiceUnavailable,
		"/api/v2/traces/01": http.StatusOK, // PARTIAL, below
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Accept", mimeJSON)
		mux.ServeHTTP(rec, req)
		require.Equal(t, want, rec.Code, "%s: %s", path, rec.Body)
		if want == http.StatusOK {
			require.Contains(t, rec.Body.String(), "PARTIAL")
		}
	}

	_, err = q.Search(ctx, "t1", &rubatopb.SearchRequest{Query: "{}", Limit: 20}, nil)
	require.ErrorIs(t, err, ErrNoIngesters)
}
