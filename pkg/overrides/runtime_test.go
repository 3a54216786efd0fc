package overrides

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func defaults(t *testing.T) Config {
	t.Helper()
	var c Config
	c.RegisterFlagsAndApplyDefaults("", flag.NewFlagSet("", flag.PanicOnError))
	return c
}

func TestBlockRetentionLayouts(t *testing.T) {
	for _, tc := range []struct{ doc string }{
		{"defaults:\n  compaction:\n    block_retention: 72h"},
		{"block_retention: 3d"},
	} {
		c := defaults(t)
		require.NoError(t, yaml.Unmarshal([]byte(tc.doc), &c))
		require.Equal(t, 72*time.Hour, c.Defaults.BlockRetention)
	}
}

func TestParseRuntimeConfig(t *testing.T) {
	d := defaults(t).Defaults
	m, err := ParseRuntimeConfig([]byte(`
overrides:
  nested:
    ingestion:
      rate_limit_bytes: 100
      burst_size_bytes: 200
    compaction:
      block_retention: 1h
  legacy:
    max_traces_per_user: 7
    block_retention: 2h
  "*":
    global:
      max_bytes_per_trace: 9
`), d)
	require.NoError(t, err)
	require.Equal(t, 100, m["nested"].IngestionRateLimitBytes)
	require.Equal(t, time.Hour, m["nested"].BlockRetention)
	require.Equal(t, d.MaxTracesPerUser, m["nested"].MaxTracesPerUser, "unset fields keep the defaults")
	require.Equal(t, 7, m["legacy"].MaxTracesPerUser)
	require.Equal(t, 2*time.Hour, m["legacy"].BlockRetention)
	require.Equal(t, 9, m["*"].MaxBytesPerTrace)

	_, err = ParseRuntimeConfig([]byte("overrides:\n  x:\n    ingestion_rate_limit_bytes: -1\n"), d)
	require.Error(t, err)
	_, err = ParseRuntimeConfig([]byte("overrides: [1"), d)
	require.Error(t, err)
	_, err = ParseRuntimeConfig([]byte("overrides:\n  x:\n    block_retention: soon\n"), d)
	require.Error(t, err)
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(s), 0o644))
	require.NoError(t, os.Rename(tmp, path))
}

func TestReloadWithoutRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "overrides.yaml")
	writeFile(t, path, "overrides:\n  a:\n    max_traces_per_user: 1\n")
	c := defaults(t)
	c.PerTenantOverrideConfig = path
	c.PerTenantOverridePeriod = 10 * time.Millisecond
	require.NoError(t, c.Validate())
	o := New(c)
	svc := NewReloader(o, log.NewNopLogger(), nil)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), svc))
	defer func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), svc)) }()
	require.Equal(t, 1, o.For("a").MaxTracesPerUser, "loaded at start")
	require.Equal(t, c.Defaults.MaxTracesPerUser, o.For("b").MaxTracesPerUser)

	writeFile(t, path, "overrides:\n  a:\n    max_traces_per_user: 2\n  \"*\":\n    max_traces_per_user: 3\n")
	require.Eventually(t, func() bool { return o.For("a").MaxTracesPerUser == 2 }, 5*time.Second, 5*time.Millisecond)
	require.Equal(t, 3, o.For("b").MaxTracesPerUser, "wildcard")

	// A broken file is rejected whole; the previous limits stay.
	writeFile(t, path, "overrides:\n  a:\n    max_traces_per_user: -5\n")
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, 2, o.For("a").MaxTracesPerUser)
}

func TestReloaderFailsStartOnBadFile(t *testing.T) {
	c := defaults(t)
	c.PerTenantOverrideConfig = filepath.Join(t.TempDir(), "missing.yaml")
	svc := NewReloader(New(c), log.NewNopLogger(), nil)
	require.Error(t, services.StartAndAwaitRunning(context.Background(), svc))
}
