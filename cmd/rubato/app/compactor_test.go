package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTempoCompactorKeys(t *testing.T) {
	cfg, logs := load(t, tempoGuideConfig)
	require.NoError(t, cfg.Validate())
	c := cfg.Compactor.Compaction
	require.Equal(t, time.Hour, c.CompactionWindow)
	require.Equal(t, uint64(100_000_000), c.MaxBlockBytes)
	require.Equal(t, time.Hour, c.BlockRetention)
	require.NotContains(t, logs, "compaction_window")

	cfg, logs = load(t, `
target: compactor
compactor:
  compaction:
    compaction_window: 30m
    max_block_bytes: 5_000_000
    block_retention: 48h
    compacted_block_retention: 10m
    max_compaction_objects: 1_000
    compaction_cycle: 15s
    retention_concurrency: 3
    v2_in_buffer_bytes: 5242880
  ring:
    kvstore:
      store: memberlist
overrides:
  per_tenant_override_config: /etc/overrides.yaml
  per_tenant_override_period: 5s
  defaults:
    compaction:
      block_retention: 7d
`)
	require.NoError(t, cfg.Validate())
	require.Equal(t, TargetCompactor, cfg.Target)
	c = cfg.Compactor.Compaction
	require.Equal(t, 30*time.Minute, c.CompactionWindow)
	require.Equal(t, uint64(5_000_000), c.MaxBlockBytes)
	require.Equal(t, 48*time.Hour, c.BlockRetention)
	require.Equal(t, 10*time.Minute, c.CompactedBlockRetention)
	require.Equal(t, 1000, c.MaxCompactionObjects)
	require.Equal(t, 15*time.Second, c.CompactionCycle)
	require.Equal(t, 3, c.RetentionConcurrency)
	require.Contains(t, logs, "v2_in_buffer_bytes", "keys Rubato does not use are warned about")
	require.Equal(t, "/etc/overrides.yaml", cfg.Overrides.PerTenantOverrideConfig)
	require.Equal(t, 5*time.Second, cfg.Overrides.PerTenantOverridePeriod)
	require.Equal(t, 7*24*time.Hour, cfg.Overrides.Defaults.BlockRetention)

	cfg, _ = load(t, "", "-target=compactor", "-compactor.compaction.block-retention=2h")
	require.NoError(t, cfg.Validate())
	require.Equal(t, 2*time.Hour, cfg.Compactor.Compaction.BlockRetention)
}
