package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFrontendWorkerConfig(t *testing.T) {
	cfg, logs := load(t, tempoGuideConfig+`
querier:
  frontend_worker:
    frontend_address: query-frontend:9095
    parallelism: 4
    dns_lookup_duration: 30s
    grpc_client_config:
      max_send_msg_size: 1000
`, "-target=querier")
	require.NoError(t, cfg.Validate())
	require.Equal(t, "query-frontend:9095", cfg.Querier.FrontendWorker.FrontendAddress)
	require.Equal(t, 4, cfg.Querier.FrontendWorker.Parallelism)
	require.Equal(t, 30*time.Second, cfg.Querier.FrontendWorker.DNSLookupPeriod)
	require.NotContains(t, logs, "dns_lookup_duration", "honoured, not ignored")
	require.Contains(t, logs, "querier.frontend_worker.grpc_client_config")
	require.NotContains(t, logs, "frontend_address")

	cfg, _ = load(t, tempoGuideConfig, "-target=query-frontend")
	require.NoError(t, cfg.Validate())
	require.Equal(t, 2, cfg.Querier.FrontendWorker.Parallelism, "Tempo's default")
	require.Equal(t, 10*time.Second, cfg.Querier.FrontendWorker.DNSLookupPeriod, "Tempo's default")
	require.Empty(t, cfg.Querier.FrontendWorker.FrontendAddress, "no worker unless asked")

	cfg, _ = load(t, tempoGuideConfig+`
querier:
  frontend_worker:
    frontend_address: query-frontend:9095
    parallelism: 0
`)
	require.ErrorContains(t, cfg.Validate(), "parallelism must be at least 1")
}
