package querier

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"
)

// FrontendConfig is the `query_frontend` YAML block. Only the keys Rubato
// uses are fields; Tempo's others are warned about and ignored at load.
type FrontendConfig struct {
	// MaxOutstandingPerTenant bounds the jobs of one tenant waiting for a
	// querier in the query-frontend; more are refused with 429.
	MaxOutstandingPerTenant int `yaml:"max_outstanding_per_tenant"`
	// MaxRetries is how many times the frontend gives a job to another
	// querier after the one running it went away.
	MaxRetries int             `yaml:"max_retries"`
	Search     SearchConfig    `yaml:"search"`
	TraceByID  TraceByIDConfig `yaml:"trace_by_id"`
}

// TraceByIDConfig is `query_frontend.trace_by_id`.
type TraceByIDConfig struct {
	// QueryShards is how many jobs the frontend splits a lookup's backend
	// blocks into (plus one job for the ingesters).
	QueryShards int `yaml:"query_shards"`
}

// SearchConfig is `query_frontend.search`: defaults and bounds applied to
// every search request before it runs (Tempo's keys and defaults).
type SearchConfig struct {
	// DefaultResultLimit is the limit of a search that gives none.
	DefaultResultLimit uint32 `yaml:"default_result_limit"`
	// MaxResultLimit caps a requested limit (0: no cap).
	MaxResultLimit uint32 `yaml:"max_result_limit"`
	// MaxDuration is the longest start..end range a search may ask for
	// (0: no bound). Longer ranges are refused with 400.
	MaxDuration time.Duration `yaml:"max_duration"`
	// DefaultSpansPerSpanSet is the spss of a search that gives none; 0
	// means every matching span (as Tempo), allowed only without a max.
	DefaultSpansPerSpanSet uint32 `yaml:"default_spans_per_span_set"`
	// MaxSpansPerSpanSet bounds spss (0: no bound); more is refused with 400.
	MaxSpansPerSpanSet uint32 `yaml:"max_spans_per_span_set"`
	// ConcurrentJobs bounds the jobs of one search the query-frontend has
	// queued or running at once.
	ConcurrentJobs int `yaml:"concurrent_jobs"`
	// TargetBytesPerJob groups backend blocks into frontend search jobs of
	// about this many bytes (a block is never split).
	TargetBytesPerJob uint64 `yaml:"target_bytes_per_job"`
}

// RegisterFlagsAndApplyDefaults registers flags with Tempo's defaults.
func (c *FrontendConfig) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	s := &c.Search
	p := prefix + "query-frontend.search."
	c.Search.DefaultResultLimit = 20
	f.Func(p+"default-result-limit", "Traces returned by a search that sets no limit (default 20).", uintFlag(&s.DefaultResultLimit))
	f.Func(p+"max-result-limit", "Largest limit a search may ask for; larger ones are lowered to it. 0: no cap.", uintFlag(&s.MaxResultLimit))
	f.DurationVar(&s.MaxDuration, p+"max-duration", 168*time.Hour, "Longest start..end range of a search; longer ones answer 400. 0: no bound.")
	s.DefaultSpansPerSpanSet = 3
	f.Func(p+"default-spans-per-span-set", "Spans per spanset of a search that sets no spss (default 3).", uintFlag(&s.DefaultSpansPerSpanSet))
	s.MaxSpansPerSpanSet = 100
	f.Func(p+"max-spans-per-span-set", "Largest spss a search may ask for; more answers 400. 0: no bound (default 100).", uintFlag(&s.MaxSpansPerSpanSet))
	f.IntVar(&s.ConcurrentJobs, p+"concurrent-jobs", 1000, "Jobs of one search the query-frontend has queued or running at once.")
	f.Uint64Var(&s.TargetBytesPerJob, p+"target-bytes-per-job", 100<<20, "The query-frontend groups backend blocks into search jobs of about this many bytes.")
	f.IntVar(&c.MaxOutstandingPerTenant, prefix+"query-frontend.max-outstanding-per-tenant", 2000, "Jobs of one tenant waiting for a querier in the query-frontend; more answer 429.")
	f.IntVar(&c.MaxRetries, prefix+"query-frontend.max-retries", 2, "Times the query-frontend gives a job to another querier after the one running it went away.")
	f.IntVar(&c.TraceByID.QueryShards, prefix+"query-frontend.trace-by-id.query-shards", 50, "Jobs the query-frontend splits a trace lookup's backend blocks into (plus one for the ingesters).")
}

// Validate checks the config.
func (c *FrontendConfig) Validate() error {
	s := c.Search
	var errs []error
	if s.DefaultResultLimit == 0 {
		errs = append(errs, errors.New("query_frontend.search.default_result_limit must be at least 1"))
	}
	if s.MaxResultLimit != 0 && s.DefaultResultLimit > s.MaxResultLimit {
		errs = append(errs, fmt.Errorf("query_frontend.search.default_result_limit (%d) exceeds max_result_limit (%d)", s.DefaultResultLimit, s.MaxResultLimit))
	}
	if s.MaxDuration < 0 {
		errs = append(errs, errors.New("query_frontend.search.max_duration must not be negative"))
	}
	if s.MaxSpansPerSpanSet != 0 && (s.DefaultSpansPerSpanSet == 0 || s.DefaultSpansPerSpanSet > s.MaxSpansPerSpanSet) {
		errs = append(errs, fmt.Errorf("query_frontend.search.default_spans_per_span_set (%d) exceeds max_spans_per_span_set (%d)", s.DefaultSpansPerSpanSet, s.MaxSpansPerSpanSet))
	}
	if s.ConcurrentJobs < 1 {
		errs = append(errs, errors.New("query_frontend.search.concurrent_jobs must be at least 1"))
	}
	if c.MaxOutstandingPerTenant < 1 {
		errs = append(errs, errors.New("query_frontend.max_outstanding_per_tenant must be at least 1"))
	}
	if c.MaxRetries < 0 {
		errs = append(errs, errors.New("query_frontend.max_retries must not be negative"))
	}
	if c.TraceByID.QueryShards < 1 {
		errs = append(errs, errors.New("query_frontend.trace_by_id.query_shards must be at least 1"))
	}
	return errors.Join(errs...)
}

func uintFlag(dst *uint32) func(string) error {
	return func(s string) error {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return fmt.Errorf("%q: want an unsigned 32-bit integer", s)
		}
		*dst = uint32(v)
		return nil
	}
}
