package querier

import (
	"errors"
	"flag"
)

// SearchExecConfig is the `querier.search` YAML block: how one search is split
// and how much it may hold.
type SearchExecConfig struct {
	// ConcurrentJobs bounds the jobs (an ingester, or a batch of backend
	// blocks) one search runs at once.
	ConcurrentJobs int `yaml:"concurrent_jobs"`
	// TargetBytesPerJob groups backend blocks into jobs of about this size.
	TargetBytesPerJob uint64 `yaml:"target_bytes_per_job"`
	// MaxBlocksPerJob caps the blocks of one job.
	MaxBlocksPerJob int `yaml:"max_blocks_per_job"`
	// MaxTagBytes bounds the names or values one tag call collects.
	MaxTagBytes int `yaml:"max_tag_bytes"`
	// TagCacheEntries bounds the per-block tag names and values kept in
	// memory (blocks are immutable, so entries never go stale).
	TagCacheEntries int `yaml:"tag_cache_entries"`
}

// RegisterFlagsAndApplyDefaults registers flags.
func (c *SearchExecConfig) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.IntVar(&c.ConcurrentJobs, prefix+"querier.search.concurrent-jobs", 8, "Jobs (an ingester or a batch of backend blocks) one search runs at once.")
	f.Uint64Var(&c.TargetBytesPerJob, prefix+"querier.search.target-bytes-per-job", 100<<20, "Backend blocks are grouped into search jobs of about this many bytes.")
	f.IntVar(&c.MaxBlocksPerJob, prefix+"querier.search.max-blocks-per-job", 4, "Most backend blocks in one search job.")
	f.IntVar(&c.MaxTagBytes, prefix+"querier.search.max-tag-bytes", 1<<20, "Most bytes of tag names or values one tag call collects.")
	f.IntVar(&c.TagCacheEntries, prefix+"querier.search.tag-cache-entries", 4096, "Per-block tag name and tag value lists kept in memory.")
}

// Validate checks the config.
func (c *SearchExecConfig) Validate() error {
	if c.ConcurrentJobs < 1 || c.MaxBlocksPerJob < 1 || c.TagCacheEntries < 0 {
		return errors.New("querier: search concurrent_jobs and max_blocks_per_job must be at least 1")
	}
	return nil
}
