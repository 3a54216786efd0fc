package ingester

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/ring"
)

// Config is the `ingester` YAML block; keys are Tempo's.
type Config struct {
	LifecyclerConfig ring.LifecyclerConfig `yaml:"lifecycler"`

	TraceIdlePeriod      time.Duration `yaml:"trace_idle_period"`
	MaxBlockDuration     time.Duration `yaml:"max_block_duration"`
	MaxBlockBytes        uint64        `yaml:"max_block_bytes"`
	CompleteBlockTimeout time.Duration `yaml:"complete_block_timeout"`
	FlushCheckPeriod     time.Duration `yaml:"flush_check_period"`
	FlushOpTimeout       time.Duration `yaml:"flush_op_timeout"`
	ConcurrentFlushes    int           `yaml:"concurrent_flushes"`
	// FlushRetryMaxBackoff caps the delay between attempts to flush a block
	// whose upload failed; attempts never stop while the ingester runs.
	FlushRetryMaxBackoff time.Duration `yaml:"flush_retry_max_backoff"`
	// FlushAllOnShutdown (Tempo's key) uploads every trace the ingester
	// holds while it leaves the ring on a clean stop, for an ingester that
	// will not come back (scale-down). Off, the WAL keeps them and a
	// restart replays it; replicas answer for them meanwhile.
	FlushAllOnShutdown bool `yaml:"flush_all_on_shutdown"`
	// AutoForgetUnhealthyPeriods removes from the ring an instance whose
	// last heartbeat is older than this many heartbeat timeouts (0: never),
	// so an ingester that died without leaving stops counting as a replica.
	AutoForgetUnhealthyPeriods int `yaml:"auto_forget_unhealthy_periods"`
	// MaxInflightPushBytes bounds the trace bytes of pushes being appended
	// at once (0: no bound); a push over it is refused with
	// ResourceExhausted, which the distributor counts as this replica
	// failing (the others can still make the quorum).
	MaxInflightPushBytes int64 `yaml:"max_inflight_push_bytes"`
	// BlockCacheBytes bounds the in-memory cache of bloom shards and Parquet
	// footers of the ingester's local complete blocks.
	BlockCacheBytes int64 `yaml:"block_cache_bytes"`
	// MaxConcurrentSearches bounds the searches and tag calls an ingester
	// runs at once; up to 4× as many more wait for a slot, and beyond
	// that a call is refused with ResourceExhausted.
	MaxConcurrentSearches int `yaml:"max_concurrent_searches"`
	// SearchSummaryBytes bounds, per tenant, the cache of search summaries
	// of WAL-held traces (searchsummary.go).
	SearchSummaryBytes int `yaml:"search_summary_bytes"`
	// HoldTimeout is how long a held fragment (held.go) waits for its
	// builder's release before this replica builds it itself; 0 means
	// 2 × max_block_duration + flush_op_timeout.
	HoldTimeout time.Duration `yaml:"hold_timeout"`
}

// RegisterFlagsAndApplyDefaults registers flags and sets defaults.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	c.LifecyclerConfig.RegisterFlagsWithPrefix(prefix+"ingester.", f, log.NewNopLogger())
	// A single binary must be ready as soon as its ring entry is ACTIVE.
	c.LifecyclerConfig.MinReadyDuration = 0
	c.LifecyclerConfig.RingConfig.ReplicationFactor = 1
	// The single binary keeps its ring in process; a cluster configures
	// consul, etcd or memberlist.
	c.LifecyclerConfig.RingConfig.KVStore.Store = "inmemory"
	f.DurationVar(&c.TraceIdlePeriod, prefix+"ingester.trace-idle-period", 10*time.Second, "A trace with no new spans for this long moves from live traces to the head block.")
	f.DurationVar(&c.MaxBlockDuration, prefix+"ingester.max-block-duration", 30*time.Minute, "The head block is cut once it is this old.")
	f.Uint64Var(&c.MaxBlockBytes, prefix+"ingester.max-block-bytes", 500_000_000, "The head block is cut once it holds this many bytes of OTLP protobuf.")
	f.DurationVar(&c.CompleteBlockTimeout, prefix+"ingester.complete-block-timeout", 15*time.Minute, "How long a flushed block stays in the ingester for reads; must exceed the querier's blocklist poll period.")
	f.DurationVar(&c.FlushCheckPeriod, prefix+"ingester.flush-check-period", 10*time.Second, "How often idle traces are swept and blocks cut and flushed.")
	f.DurationVar(&c.FlushOpTimeout, prefix+"ingester.flush-op-timeout", 5*time.Minute, "Timeout of one block upload.")
	f.IntVar(&c.ConcurrentFlushes, prefix+"ingester.concurrent-flushes", 4, "Blocks uploaded at once.")
	f.DurationVar(&c.FlushRetryMaxBackoff, prefix+"ingester.flush-retry-max-backoff", time.Minute, "Longest wait between attempts to upload a block.")
	f.BoolVar(&c.FlushAllOnShutdown, prefix+"ingester.flush-all-on-shutdown", false, "On a clean stop, upload every trace held before leaving the ring (otherwise the WAL keeps them for the next start).")
	f.IntVar(&c.AutoForgetUnhealthyPeriods, prefix+"ingester.auto-forget-unhealthy-periods", 10, "Remove from the ring an instance whose last heartbeat is older than this many heartbeat timeouts (0: never).")
	f.Int64Var(&c.MaxInflightPushBytes, prefix+"ingester.max-inflight-push-bytes", 0, "Trace bytes of pushes appended at once; more are refused with RESOURCE_EXHAUSTED (0: no bound).")
	f.Int64Var(&c.BlockCacheBytes, prefix+"ingester.block-cache-bytes", 64<<20, "Size of the cache of bloom shards and Parquet footers of local blocks.")
	f.IntVar(&c.MaxConcurrentSearches, prefix+"ingester.max-concurrent-searches", 2, "Searches and tag calls run at once; 4× as many more wait, beyond that they are refused with RESOURCE_EXHAUSTED.")
	f.DurationVar(&c.HoldTimeout, prefix+"ingester.hold-timeout", 0, "How long a replica keeps a fragment another replica builds before building it itself, if not told that its block is in the backend (0: 2 × max_block_duration + flush_op_timeout).")
	f.IntVar(&c.SearchSummaryBytes, prefix+"ingester.search-summary-bytes", 64<<20, "Per tenant, memory of the cached search summaries of traces still in the WAL.")
}

// Validate checks the config.
func (c *Config) Validate() error {
	var errs []error
	if c.TraceIdlePeriod <= 0 {
		errs = append(errs, errors.New("ingester: trace_idle_period must be positive"))
	}
	if c.MaxBlockDuration <= 0 || c.MaxBlockBytes == 0 {
		errs = append(errs, errors.New("ingester: max_block_duration and max_block_bytes must be positive"))
	}
	if c.FlushCheckPeriod <= 0 || c.FlushOpTimeout <= 0 || c.FlushRetryMaxBackoff <= 0 {
		errs = append(errs, errors.New("ingester: flush_check_period, flush_op_timeout and flush_retry_max_backoff must be positive"))
	}
	if c.ConcurrentFlushes < 1 {
		errs = append(errs, fmt.Errorf("ingester: concurrent_flushes %d < 1", c.ConcurrentFlushes))
	}
	if c.MaxInflightPushBytes < 0 {
		errs = append(errs, errors.New("ingester: max_inflight_push_bytes must not be negative"))
	}
	if c.AutoForgetUnhealthyPeriods < 0 {
		errs = append(errs, errors.New("ingester: auto_forget_unhealthy_periods must not be negative"))
	}
	if c.MaxConcurrentSearches < 1 {
		errs = append(errs, fmt.Errorf("ingester: max_concurrent_searches %d < 1", c.MaxConcurrentSearches))
	}
	if c.HoldTimeout < 0 {
		errs = append(errs, errors.New("ingester: hold_timeout must not be negative"))
	}
	if c.CompleteBlockTimeout < 0 {
		errs = append(errs, errors.New("ingester: complete_block_timeout must not be negative"))
	}
	return errors.Join(errs...)
}
