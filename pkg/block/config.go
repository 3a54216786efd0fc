package block

import (
	"errors"
	"flag"
	"fmt"
)

// Defaults; each is also the default of a flag.
const (
	DefaultBloomFP             = 0.01
	DefaultBloomShardSizeBytes = 100 * 1024
	DefaultRowGroupSizeBytes   = 512 << 10
	// DefaultCompactedRowGroupSizeBytes: see Config.CompactedRowGroupSizeBytes.
	DefaultCompactedRowGroupSizeBytes = 2 << 20
	DefaultPageSizeBytes              = 32 << 10
	DefaultMaxSpansPerRow             = 2000
)

// Config tunes the block writer. The reader needs no configuration: every
// choice the writer makes is recorded in meta.json or the Parquet footer.
type Config struct {
	// BloomFP is the target false-positive rate of the bloom filter.
	BloomFP float64 `yaml:"bloom_filter_false_positive"`
	// BloomShardSizeBytes caps the size of one bloom-<n> object; the writer
	// uses as many shards as needed to stay under it.
	BloomShardSizeBytes int `yaml:"bloom_filter_shard_size_bytes"`
	// RowGroupSizeBytes is the target size of a row group on disk: the
	// writer sizes the first row group by its estimate (pages encoded so
	// far plus the raw size of the pages being filled), later ones by the
	// bytes per row of those written. A trace lookup downloads one whole
	// row group.
	RowGroupSizeBytes int `yaml:"row_group_size_bytes"`
	// CompactedRowGroupSizeBytes replaces RowGroupSizeBytes in blocks
	// written by the compactor (compaction level > 0). Compacted blocks are
	// big: with bigger row groups their footer and page index, which the
	// writer holds until it closes the file and every reader decodes, are
	// that much smaller, and writing costs less CPU; a lookup then downloads
	// the bigger row group. 0 means RowGroupSizeBytes.
	CompactedRowGroupSizeBytes int `yaml:"compacted_row_group_size_bytes"`
	// PageSizeBytes is the in-memory size of a column page buffer before it
	// is encoded and compressed; smaller pages make the page index finer.
	PageSizeBytes int `yaml:"parquet_page_size_bytes"`
	// MaxSpansPerRow splits a trace with more spans into several rows with
	// the same trace ID (parts.go), so that memory for one row stays
	// bounded however big a trace grows; readers join the parts. 0 = one
	// row per trace whatever its size.
	MaxSpansPerRow int `yaml:"max_spans_per_row"`
}

// RegisterFlagsAndApplyDefaults registers the flags under prefix (for
// example "storage.trace.block.") and sets every field to its default.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.Float64Var(&c.BloomFP, prefix+"bloom-filter-false-positive", DefaultBloomFP, "Bloom filter false-positive rate, in (0, 1).")
	f.IntVar(&c.BloomShardSizeBytes, prefix+"bloom-filter-shard-size-bytes", DefaultBloomShardSizeBytes, "Maximum size in bytes of one bloom filter shard object.")
	f.IntVar(&c.RowGroupSizeBytes, prefix+"row-group-size-bytes", DefaultRowGroupSizeBytes, "Target Parquet row group size in bytes on disk; one trace lookup reads one row group.")
	f.IntVar(&c.CompactedRowGroupSizeBytes, prefix+"compacted-row-group-size-bytes", DefaultCompactedRowGroupSizeBytes, "Target Parquet row group size in bytes of blocks written by the compactor (0: row-group-size-bytes).")
	f.IntVar(&c.PageSizeBytes, prefix+"parquet-page-size-bytes", DefaultPageSizeBytes, "Parquet page buffer size in bytes before encoding and compression.")
	f.IntVar(&c.MaxSpansPerRow, prefix+"max-spans-per-row", DefaultMaxSpansPerRow, "Traces with more spans are stored as several rows, read back as one trace (0: never split).")
}

// rowGroupSizeBytes is the row group target of a block of the given
// compaction level.
func (c *Config) rowGroupSizeBytes(level uint8) int {
	if level > 0 && c.CompactedRowGroupSizeBytes > 0 {
		return c.CompactedRowGroupSizeBytes
	}
	return c.RowGroupSizeBytes
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	var errs []error
	if !(c.BloomFP > 0 && c.BloomFP < 1) {
		errs = append(errs, fmt.Errorf("bloom_filter_false_positive %v must be in (0, 1)", c.BloomFP))
	}
	if c.BloomShardSizeBytes < minShardSizeBytes {
		errs = append(errs, fmt.Errorf("bloom_filter_shard_size_bytes %d must be at least %d", c.BloomShardSizeBytes, minShardSizeBytes))
	}
	if c.RowGroupSizeBytes < 1024 {
		errs = append(errs, fmt.Errorf("row_group_size_bytes %d must be at least 1024", c.RowGroupSizeBytes))
	}
	if c.CompactedRowGroupSizeBytes != 0 && c.CompactedRowGroupSizeBytes < 1024 {
		errs = append(errs, fmt.Errorf("compacted_row_group_size_bytes %d must be 0 or at least 1024", c.CompactedRowGroupSizeBytes))
	}
	if c.MaxSpansPerRow < 0 {
		errs = append(errs, fmt.Errorf("max_spans_per_row %d must not be negative", c.MaxSpansPerRow))
	}
	if c.PageSizeBytes < 1024 {
		errs = append(errs, fmt.Errorf("parquet_page_size_bytes %d must be at least 1024", c.PageSizeBytes))
	}
	if len(errs) > 0 {
		return fmt.Errorf("block config: %w", errors.Join(errs...))
	}
	return nil
}
