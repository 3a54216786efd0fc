package compactor

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Defaults; each is also the default of a flag.
const (
	DefaultCompactionWindow        = time.Hour
	DefaultMaxBlockBytes           = 100 << 30 // Tempo's default, 100 GiB
	DefaultBlockRetention          = 14 * 24 * time.Hour
	DefaultCompactedBlockRetention = time.Hour
	DefaultMaxCompactionObjects    = 6_000_000
	DefaultCompactionCycle         = 30 * time.Second
	DefaultMinInputBlocks          = 2
	DefaultMaxInputBlocks          = 8
	DefaultMaxCombineSpans         = 50_000
	DefaultMemoryLimitBytes        = 400 << 20
	DefaultPartialBlockGrace       = time.Hour
)

// Config is the `compactor` YAML block.
type Config struct {
	Compaction CompactionConfig `yaml:"compaction"`
	// MemoryLimitBytes is the soft memory limit (Go's runtime/debug
	// SetMemoryLimit) the compactor sets while a job runs, on top of the
	// live heap of the rest of the process when the job starts: the
	// garbage collector then collects before the heap reaches twice its
	// live size, which it otherwise lets happen. It does not bound the
	// live heap itself (see doc.go for what does). 0 = leave the runtime's
	// limit alone; a limit set by GOMEMLIMIT always wins.
	MemoryLimitBytes int64 `yaml:"memory_limit_bytes"`
	// Ring is the compactor ring the compactors share the work over
	// (ring.go); inmemory by default, where the one compactor owns all.
	Ring RingConfig `yaml:"ring"`
}

// CompactionConfig is `compactor.compaction`, Tempo's keys plus a few of
// Rubato's own.
type CompactionConfig struct {
	// CompactionWindow groups blocks by the window their newest span falls
	// in; only blocks of one window are merged together.
	CompactionWindow time.Duration `yaml:"compaction_window"`
	// MaxBlockBytes bounds the summed data size of one job's inputs, hence
	// the size of its output.
	MaxBlockBytes uint64 `yaml:"max_block_bytes"`
	// BlockRetention deletes blocks whose newest span is older; a tenant's
	// overrides may set its own (compaction.block_retention).
	BlockRetention time.Duration `yaml:"block_retention"`
	// CompactedBlockRetention is how long a block marked compacted stays
	// readable before it is deleted; it covers queriers whose blocklist
	// is older than the compaction.
	CompactedBlockRetention time.Duration `yaml:"compacted_block_retention"`
	// MaxCompactionObjects bounds the summed trace count of one job's inputs.
	MaxCompactionObjects int `yaml:"max_compaction_objects"`
	// CompactionCycle is the pause between compaction rounds.
	CompactionCycle time.Duration `yaml:"compaction_cycle"`
	// MaxTimePerTenant bounds one tenant's share of a round; jobs not
	// started by then wait for the next round.
	MaxTimePerTenant time.Duration `yaml:"max_time_per_tenant"`
	// RetentionConcurrency bounds parallel block deletions.
	RetentionConcurrency int `yaml:"retention_concurrency"`

	// MinInputBlocks and MaxInputBlocks bound the inputs of one job
	// (Rubato's keys).
	MinInputBlocks int `yaml:"min_input_blocks"`
	MaxInputBlocks int `yaml:"max_input_blocks"`
	// MaxBytesPerTrace bounds a trace combined from several input copies,
	// in OTLP protobuf bytes. Spans past the limit are dropped (counted in
	// rubato_compactor_spans_dropped_total and logged with the counts). A
	// trace present in one input only is written as it is. 0 = no limit.
	MaxBytesPerTrace int `yaml:"max_bytes_per_trace"`
	// MaxCombineSpans bounds the memory of combining the copies of one
	// trace, each stored as one row (copies of a trace stored as several
	// rows are combined part by part, in bounded memory, whatever their
	// size): copies holding more spans than this together are not decoded;
	// the copy with the most spans is written as it is and the others are
	// dropped (their span count goes to
	// rubato_compactor_spans_dropped_total{reason="too_large_to_combine"},
	// duplicates included, and is logged). 0 = always combine.
	MaxCombineSpans int `yaml:"max_combine_spans"`
	// PartialBlockGrace is how old every object of a block directory with
	// neither meta.json nor meta.compacted.json must be before the janitor
	// deletes it (an upload that never finished). It must exceed the
	// longest single upload attempt of any writer (the ingester's
	// flush_op_timeout, the compactor's own output upload). 0 = keep
	// partial blocks forever.
	PartialBlockGrace time.Duration `yaml:"partial_block_grace"`
	// TmpDir holds the output block's Parquet file while it is written
	// ("" = the system temporary directory); it needs room for one block.
	TmpDir string `yaml:"tmp_dir"`
}

// RegisterFlagsAndApplyDefaults registers the flags under prefix (for
// example "compactor.") and sets every field to its default.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	cc := &c.Compaction
	p := prefix + "compaction."
	f.DurationVar(&cc.CompactionWindow, p+"compaction-window", DefaultCompactionWindow, "Blocks whose newest spans fall in one window of this length are merged together.")
	f.Uint64Var(&cc.MaxBlockBytes, p+"max-block-bytes", DefaultMaxBlockBytes, "Maximum summed size in bytes of one compaction's input blocks.")
	f.DurationVar(&cc.BlockRetention, p+"block-retention", DefaultBlockRetention, "Blocks whose newest span is older than this are deleted (per-tenant override: compaction.block_retention).")
	f.DurationVar(&cc.CompactedBlockRetention, p+"compacted-block-retention", DefaultCompactedBlockRetention, "How long a compacted block stays readable before it is deleted.")
	f.IntVar(&cc.MaxCompactionObjects, p+"max-compaction-objects", DefaultMaxCompactionObjects, "Maximum summed trace count of one compaction's inputs.")
	f.DurationVar(&cc.CompactionCycle, p+"compaction-cycle", DefaultCompactionCycle, "Pause between compaction rounds.")
	f.DurationVar(&cc.MaxTimePerTenant, p+"max-time-per-tenant", 5*time.Minute, "Time after which a round starts no new job for a tenant.")
	f.IntVar(&cc.RetentionConcurrency, p+"retention-concurrency", 10, "Blocks deleted in parallel.")
	f.IntVar(&cc.MinInputBlocks, p+"min-input-blocks", DefaultMinInputBlocks, "Fewest blocks one compaction merges.")
	f.IntVar(&cc.MaxInputBlocks, p+"max-input-blocks", DefaultMaxInputBlocks, "Most blocks one compaction merges.")
	f.IntVar(&cc.MaxBytesPerTrace, p+"max-bytes-per-trace", 0, "Largest trace, in OTLP bytes, that combining copies may produce; spans past it are dropped (0 = no limit).")
	f.IntVar(&cc.MaxCombineSpans, p+"max-combine-spans", DefaultMaxCombineSpans, "Copies of one trace holding more spans than this together are not combined: the largest copy is kept (0 = always combine).")
	f.Int64Var(&c.MemoryLimitBytes, prefix+"memory-limit-bytes", DefaultMemoryLimitBytes, "Soft memory limit in bytes set while a compaction runs, above the live heap of the rest of the process (0: none; GOMEMLIMIT wins).")
	f.DurationVar(&cc.PartialBlockGrace, p+"partial-block-grace", DefaultPartialBlockGrace, "A block directory without meta.json whose objects are all older than this is deleted as a failed upload; must exceed the longest upload attempt (ingester.flush-op-timeout). 0 disables.")
	c.Ring.RegisterFlagsAndApplyDefaults(prefix+"ring.", f)
	f.StringVar(&cc.TmpDir, p+"tmp-dir", "", "Directory for the output block while it is written (empty: system temporary directory).")
}

// Validate checks the config.
func (c *Config) Validate() error {
	cc := &c.Compaction
	var errs []error
	if cc.CompactionWindow <= 0 {
		errs = append(errs, errors.New("compaction_window must be positive"))
	}
	if cc.MaxBlockBytes == 0 {
		errs = append(errs, errors.New("max_block_bytes must be positive"))
	}
	if cc.BlockRetention < 0 || cc.CompactedBlockRetention < 0 {
		errs = append(errs, errors.New("block_retention and compacted_block_retention must not be negative"))
	}
	if cc.MaxCompactionObjects <= 0 {
		errs = append(errs, errors.New("max_compaction_objects must be positive"))
	}
	if cc.CompactionCycle <= 0 || cc.MaxTimePerTenant <= 0 {
		errs = append(errs, errors.New("compaction_cycle and max_time_per_tenant must be positive"))
	}
	if cc.RetentionConcurrency < 1 {
		errs = append(errs, errors.New("retention_concurrency must be at least 1"))
	}
	if cc.MinInputBlocks < 2 || cc.MaxInputBlocks < cc.MinInputBlocks {
		errs = append(errs, fmt.Errorf("want 2 <= min_input_blocks (%d) <= max_input_blocks (%d)", cc.MinInputBlocks, cc.MaxInputBlocks))
	}
	if cc.PartialBlockGrace < 0 {
		errs = append(errs, errors.New("partial_block_grace must not be negative"))
	}
	if c.MemoryLimitBytes < 0 {
		errs = append(errs, errors.New("memory_limit_bytes must not be negative"))
	}
	if cc.MaxBytesPerTrace < 0 || cc.MaxCombineSpans < 0 {
		errs = append(errs, errors.New("max_bytes_per_trace and max_combine_spans must not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("compactor: %w", errors.Join(errs...))
	}
	return nil
}
