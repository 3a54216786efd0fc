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

// TestTempoCompactorRingKeys: Tempo's compactor.ring keys, as in its
// distributed examples, are known and reach the compactor's ring config.
func TestTempoCompactorRingKeys(t *testing.T) {
	cfg, logs, err := loadArgs(t, `target: compactor
compactor:
  ring:
    kvstore:
      store: memberlist
      prefix: rubato/
    heartbeat_period: 5s
    heartbeat_timeout: 1m
    instance_id: compactor-1
    instance_addr: 10.0.0.9
    instance_port: 9095
    instance_interface_names: [eth1]
    wait_stability_min_duration: 10s
memberlist:
  join_members: [dns+rubato-gossip-ring:7946]
`, "-config.strict")
	require.NoError(t, err)
	require.NotContains(t, logs, "level=warn")
	require.NoError(t, cfg.Validate())
	r := cfg.Compactor.Ring
	require.Equal(t, "memberlist", r.KVStore.Store)
	require.Equal(t, "rubato/", r.KVStore.Prefix)
	require.Equal(t, 5*time.Second, r.HeartbeatPeriod)
	require.Equal(t, time.Minute, r.HeartbeatTimeout)
	require.Equal(t, "compactor-1", r.InstanceID)
	require.Equal(t, "10.0.0.9", r.InstanceAddr)
	require.Equal(t, 9095, r.InstancePort)
	require.Equal(t, []string{"eth1"}, []string(r.InstanceInterfaceNames))
	require.Equal(t, 10*time.Second, r.WaitStabilityMinDuration)

	// The single binary's default: an in-process ring.
	cfg, _ = load(t, "")
	require.Equal(t, "inmemory", cfg.Compactor.Ring.KVStore.Store)
}
