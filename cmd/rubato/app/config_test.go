package app

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// tempoGuideConfig is the Tempo config from CONTRACT.md, verbatim.
const tempoGuideConfig = `server:
  http_listen_port: 3200

distributor:
  receivers:
    otlp:
      protocols:
        grpc:
        http:
    jaeger:
      protocols:
        thrift_http:
    zipkin:

ingester:
  trace_idle_period: 10s
  max_block_bytes: 1_000_000
  max_block_duration: 5m

compactor:
  compaction:
    compaction_window: 1h
    max_block_bytes: 100_000_000
    block_retention: 1h

storage:
  trace:
    backend: local
    local:
      path: /tmp/tempo/blocks
`

func load(t *testing.T, yamlText string, args ...string) (*Config, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yamlText), 0o644))
	var logs bytes.Buffer
	cfg, err := Load(append([]string{"-config.file=" + path}, args...), log.NewLogfmtLogger(&logs))
	require.NoError(t, err)
	return cfg, logs.String()
}

func TestTempoGuideConfigLoads(t *testing.T) {
	cfg, _ := load(t, tempoGuideConfig)
	require.NoError(t, cfg.Validate())
	require.Equal(t, 3200, cfg.Server.HTTPListenPort)
	require.Equal(t, uint64(1_000_000), cfg.Ingester.MaxBlockBytes)
	require.Equal(t, 5*time.Minute, cfg.Ingester.MaxBlockDuration)
	require.Equal(t, "/tmp/tempo/blocks", cfg.Storage.Trace.Local.Path)
	rc := cfg.Distributor.Receivers
	require.NotNil(t, rc.OTLP.GRPC)
	require.Equal(t, "0.0.0.0:4317", rc.OTLP.GRPC.Endpoint, "a bare `grpc:` means defaults")
	require.NotNil(t, rc.OTLP.HTTP)
	require.NotNil(t, rc.Zipkin)
	require.Equal(t, "0.0.0.0:9411", rc.Zipkin.Endpoint)
	require.NotNil(t, rc.jaeger.cfg.ThriftHTTP)
	require.Nil(t, rc.jaeger.cfg.GRPC, "only the named jaeger protocols listen")
	require.Nil(t, rc.jaeger.cfg.ThriftCompact)
}

func TestDefaultsWithoutConfig(t *testing.T) {
	cfg, err := Load(nil, log.NewNopLogger())
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	require.Equal(t, "all", cfg.Target)
	require.Equal(t, "local", cfg.Storage.Trace.Backend)
	require.Equal(t, "./data/blocks", cfg.Storage.Trace.Local.Path)
	require.Equal(t, 3200, cfg.Server.HTTPListenPort)
	require.Equal(t, 9095, cfg.Server.GRPCListenPort)
	require.NotNil(t, cfg.Distributor.Receivers.OTLP.GRPC)
	require.NotNil(t, cfg.Distributor.Receivers.OTLP.HTTP)
	require.Nil(t, cfg.Distributor.Receivers.Zipkin, "only OTLP by default")
	require.Equal(t, 10*time.Second, cfg.Ingester.TraceIdlePeriod)
	require.Equal(t, 30*time.Minute, cfg.Ingester.MaxBlockDuration)
	require.Equal(t, uint64(500_000_000), cfg.Ingester.MaxBlockBytes)
	require.Equal(t, "inmemory", cfg.Ingester.LifecyclerConfig.RingConfig.KVStore.Store)
}

func TestUnknownKeysWarn(t *testing.T) {
	cfg, logs := load(t, "server:\n  http_listen_port: 3300\n  some_future_key: 1\nnot_a_block:\n  x: 1\n")
	require.Equal(t, 3300, cfg.Server.HTTPListenPort, "known keys still apply")
	require.Contains(t, logs, "level=warn")
	require.Contains(t, logs, "some_future_key")
	require.Contains(t, logs, "not_a_block")
}

func TestBadValuesFail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte("server:\n  http_listen_port: not-a-number\n"), 0o644))
	_, err := Load([]string{"-config.file=" + path}, log.NewNopLogger())
	require.Error(t, err)
}

func TestFlagsOverrideYAML(t *testing.T) {
	cfg, _ := load(t, "server:\n  http_listen_port: 3300\n", "-server.http-listen-port=3400")
	require.Equal(t, 3400, cfg.Server.HTTPListenPort)
}

func TestExpandEnv(t *testing.T) {
	t.Setenv("RUBATO_TEST_PORT", "3500")
	cfg, _ := load(t, "server:\n  http_listen_port: ${RUBATO_TEST_PORT}\n  grpc_listen_port: ${RUBATO_UNSET:-9300}\n", "-config.expand-env")
	require.Equal(t, 3500, cfg.Server.HTTPListenPort)
	require.Equal(t, 9300, cfg.Server.GRPCListenPort)
	_, err := Load([]string{"-config.file=/nonexistent/rubato.yaml"}, log.NewNopLogger())
	require.Error(t, err)
}

func TestReceiversBlockSemantics(t *testing.T) {
	cfg, _ := load(t, "distributor:\n  receivers:\n    zipkin:\n      endpoint: 127.0.0.1:9999\n")
	rc := cfg.Distributor.Receivers
	require.Nil(t, rc.OTLP.GRPC, "a receivers block without otlp turns otlp off")
	require.Nil(t, rc.OTLP.HTTP)
	require.Equal(t, "127.0.0.1:9999", rc.Zipkin.Endpoint)
	path := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(path, []byte("distributor:\n  receivers:\n    kafka:\n"), 0o644))
	_, err := Load([]string{"-config.file=" + path}, log.NewNopLogger())
	require.ErrorContains(t, err, "kafka")
}

func TestValidateReadAfterWriteRule(t *testing.T) {
	cfg, _ := load(t, "ingester:\n  complete_block_timeout: 1m\nstorage:\n  trace:\n    blocklist_poll: 5m\n")
	require.ErrorContains(t, cfg.Validate(), "complete_block_timeout")
}

func TestValidateJanitorGraceRule(t *testing.T) {
	cfg, _ := load(t, "ingester:\n  flush_op_timeout: 10m\ncompactor:\n  compaction:\n    partial_block_grace: 5m\n")
	require.ErrorContains(t, cfg.Validate(), "partial_block_grace")
	cfg, _ = load(t, "compactor:\n  compaction:\n    partial_block_grace: 0s\n") // janitor off
	require.NoError(t, cfg.Validate())
	cfg, _ = load(t, "")
	require.NoError(t, cfg.Validate(), "defaults: 1h grace, 5m upload timeout")
}

func TestStatusConfigRedactsSecrets(t *testing.T) {
	cfg, _ := load(t, "storage:\n  trace:\n    backend: s3\n    s3:\n      bucket: b\n      endpoint: 127.0.0.1:9000\n      access_key: AKIAEXAMPLE\n      secret_key: sup3rs3cret\n")
	b, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	out := string(redactSecrets(b))
	require.NotContains(t, out, "sup3rs3cret")
	require.NotContains(t, out, "AKIAEXAMPLE")
	require.True(t, strings.Contains(out, "<redacted>"))
}

func TestTargetList(t *testing.T) {
	cfg, _ := load(t, "target: distributor, ingester,querier\n")
	require.Equal(t, []string{"distributor", "ingester", "querier"}, cfg.Targets())
	require.NoError(t, cfg.Validate())
	cfg, _ = load(t, "target: all,frontend\n")
	require.ErrorContains(t, cfg.Validate(), `"frontend"`)
}

func TestQueryFrontendSearchConfig(t *testing.T) {
	cfg, err := Load(nil, log.NewNopLogger())
	require.NoError(t, err)
	s := cfg.QueryFrontend.Search
	require.Equal(t, uint32(20), s.DefaultResultLimit, "Tempo's defaults")
	require.Equal(t, uint32(0), s.MaxResultLimit)
	require.Equal(t, 168*time.Hour, s.MaxDuration)
	require.Equal(t, uint32(3), s.DefaultSpansPerSpanSet)
	require.Equal(t, uint32(100), s.MaxSpansPerSpanSet)

	cfg, logs := load(t, tempoGuideConfig+`
query_frontend:
  max_outstanding_per_tenant: 300
  max_retries: 5
  search:
    default_result_limit: 50
    max_result_limit: 500
    max_duration: 24h
    max_spans_per_span_set: 20
    concurrent_jobs: 40
    query_backend_after: 15m
  trace_by_id:
    query_shards: 7
`, "-query-frontend.search.max-result-limit=400")
	require.NoError(t, cfg.Validate())
	s = cfg.QueryFrontend.Search
	require.Equal(t, uint32(50), s.DefaultResultLimit)
	require.Equal(t, uint32(400), s.MaxResultLimit, "a flag wins over the file")
	require.Equal(t, 24*time.Hour, s.MaxDuration)
	require.Equal(t, uint32(20), s.MaxSpansPerSpanSet)
	// The query-frontend's keys (querier/frontend).
	require.Equal(t, 300, cfg.QueryFrontend.MaxOutstandingPerTenant)
	require.Equal(t, 5, cfg.QueryFrontend.MaxRetries)
	require.Equal(t, 40, s.ConcurrentJobs)
	require.Equal(t, uint64(100<<20), s.TargetBytesPerJob, "Tempo's default")
	require.Equal(t, 7, cfg.QueryFrontend.TraceByID.QueryShards)
	require.NotContains(t, logs, "max_outstanding_per_tenant")
	// Tempo keys Rubato does not use are warnings.
	require.Contains(t, logs, "query_backend_after")

	cfg, _ = load(t, tempoGuideConfig+`
query_frontend:
  search:
    default_result_limit: 600
    max_result_limit: 500
`)
	require.ErrorContains(t, cfg.Validate(), "default_result_limit (600) exceeds max_result_limit (500)")
	_, err = Load([]string{"-query-frontend.search.max-result-limit=-1"}, log.NewNopLogger())
	require.Error(t, err)
}
