// Package overrides holds per-tenant limits.
//
// Invariants: Limits returned by Overrides are never nil and never change
// while a caller holds them (a reload swaps in a new value); every limit of 0
// means "unlimited" (for BlockRetention: "the compactor's default"). Both of
// Tempo's YAML layouts are accepted, in the main config and in the runtime
// file: the nested one (overrides.defaults.ingestion.rate_limit_bytes, …)
// and the legacy flat one (overrides.ingestion_rate_limit_bytes, …).
// A runtime file (per_tenant_override_config) is reloaded every
// per_tenant_override_period; a file that fails to parse or validate is
// rejected whole and the previous overrides stay in force.
package overrides

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// Limits are one tenant's limits.
type Limits struct {
	// IngestionRateLimitBytes is the sustained ingest rate per tenant, in
	// bytes of OTLP protobuf per second, enforced by each distributor.
	IngestionRateLimitBytes int `yaml:"rate_limit_bytes"`
	// IngestionBurstSizeBytes is the token-bucket size for the rate limit.
	IngestionBurstSizeBytes int `yaml:"burst_size_bytes"`
	// MaxTracesPerUser is an explicit cap on live traces per tenant in each
	// ingester (Tempo's key); 0, the default, leaves only
	// MaxLiveTracesBytes.
	MaxTracesPerUser int `yaml:"max_traces_per_user"`
	// MaxLiveTracesBytes is the memory budget of a tenant's live traces in
	// each ingester: the ingester's estimate of the memory its live-trace
	// index takes (a fixed cost per trace plus one per WAL fragment; the
	// span bytes themselves stay in the WAL). A new trace that would go
	// past it is refused.
	MaxLiveTracesBytes int `yaml:"max_live_traces_bytes"`
	// MaxBytesPerTrace bounds one trace's size in an ingester, summed over
	// all its pushes while any part of it is in the ingester and for
	// 3 × trace_idle_period after it is written to a block.
	MaxBytesPerTrace int `yaml:"max_bytes_per_trace"`
	// BlockRetention is the tenant's block retention in the compactor;
	// 0 means compactor.compaction.block_retention.
	BlockRetention time.Duration `yaml:"block_retention"`
	// RetryAfterOnResourceExhausted, when positive, is the retry delay told
	// to this tenant's rate-limited clients, over the distributor's
	// retry_after_on_resource_exhausted and the delay computed from the
	// limiter.
	RetryAfterOnResourceExhausted time.Duration `yaml:"retry_after_on_resource_exhausted"`
}

// DefaultMaxLiveTracesBytes is the default live-trace memory budget per
// tenant and ingester. The ingester estimates a live trace at 240 bytes
// plus 48 per further WAL fragment (it measures 160-200 bytes of heap:
// BenchmarkLiveTraceMemory in ingester; span bytes stay in the WAL), so
// this holds 416,666 single-fragment live traces: 10,000 new traces a
// second for 41 s, twice the ~20 s a trace stays live with the default
// trace_idle_period (10 s) and flush_check_period (10 s).
const DefaultMaxLiveTracesBytes = 100_000_000

// RegisterFlagsAndApplyDefaults registers the default limits.
func (l *Limits) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.IntVar(&l.IngestionRateLimitBytes, prefix+"ingestion.rate-limit-bytes", 15_000_000, "Per-tenant ingestion rate limit in bytes per second (0 = unlimited).")
	f.IntVar(&l.IngestionBurstSizeBytes, prefix+"ingestion.burst-size-bytes", 20_000_000, "Per-tenant ingestion burst size in bytes.")
	f.IntVar(&l.MaxTracesPerUser, prefix+"ingestion.max-traces-per-user", 0, "Explicit cap on live traces per tenant per ingester (0 = none: only max-live-traces-bytes applies).")
	f.IntVar(&l.MaxLiveTracesBytes, prefix+"ingestion.max-live-traces-bytes", DefaultMaxLiveTracesBytes, "Memory budget of a tenant's live traces per ingester, in bytes (0 = unlimited).")
	f.IntVar(&l.MaxBytesPerTrace, prefix+"global.max-bytes-per-trace", 5_000_000, "Maximum size of one trace in bytes (0 = unlimited).")
	f.DurationVar(&l.BlockRetention, prefix+"compaction.block-retention", 0, "Per-tenant block retention (0 = the compactor's block_retention).")
	f.DurationVar(&l.RetryAfterOnResourceExhausted, prefix+"ingestion.retry-after-on-resource-exhausted", 0, "Per-tenant retry delay for rate-limited clients (0 = the distributor's setting).")
}

// Validate checks the limits.
func (l *Limits) Validate() error {
	if l.IngestionRateLimitBytes < 0 || l.IngestionBurstSizeBytes < 0 || l.MaxTracesPerUser < 0 || l.MaxLiveTracesBytes < 0 ||
		l.MaxBytesPerTrace < 0 || l.BlockRetention < 0 || l.RetryAfterOnResourceExhausted < 0 {
		return errors.New("overrides: limits must not be negative")
	}
	if l.IngestionRateLimitBytes > 0 && l.IngestionBurstSizeBytes < l.IngestionRateLimitBytes {
		return fmt.Errorf("overrides: burst_size_bytes %d below rate_limit_bytes %d", l.IngestionBurstSizeBytes, l.IngestionRateLimitBytes)
	}
	return nil
}

// Config is the `overrides` YAML block.
type Config struct {
	Defaults Limits
	// PerTenantOverrideConfig names a runtime YAML file of per-tenant
	// limits (Tempo's format: `overrides: {<tenant>: <limits>}`, "*" for
	// every tenant without an entry of its own), reloaded without restart.
	PerTenantOverrideConfig string
	// PerTenantOverridePeriod is how often that file is reloaded.
	PerTenantOverridePeriod time.Duration
}

// RegisterFlagsAndApplyDefaults registers the default limits' flags.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	c.Defaults.RegisterFlagsAndApplyDefaults(prefix+"overrides.defaults.", f)
	f.StringVar(&c.PerTenantOverrideConfig, prefix+"config.per-user-override-config", "", "File of per-tenant overrides, reloaded periodically (empty: none).")
	f.DurationVar(&c.PerTenantOverridePeriod, prefix+"config.per-user-override-period", 10*time.Second, "How often the per-tenant overrides file is reloaded.")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.PerTenantOverrideConfig != "" && c.PerTenantOverridePeriod <= 0 {
		return errors.New("overrides: per_tenant_override_period must be positive")
	}
	return c.Defaults.Validate()
}

// limitsYAML is one set of limits in either layout; nil means "not set".
type limitsYAML struct {
	Ingestion struct {
		RateLimitBytes   *int `yaml:"rate_limit_bytes"`
		BurstSizeBytes   *int `yaml:"burst_size_bytes"`
		MaxTracesPerUser *int `yaml:"max_traces_per_user"`
		// Rubato's keys.
		MaxLiveTracesBytes            *int      `yaml:"max_live_traces_bytes"`
		RetryAfterOnResourceExhausted *duration `yaml:"retry_after_on_resource_exhausted"`
	} `yaml:"ingestion"`
	Global struct {
		MaxBytesPerTrace *int `yaml:"max_bytes_per_trace"`
	} `yaml:"global"`
	Compaction struct {
		BlockRetention *duration `yaml:"block_retention"`
	} `yaml:"compaction"`
	IngestionRateLimitBytes *int      `yaml:"ingestion_rate_limit_bytes"`
	IngestionBurstSizeBytes *int      `yaml:"ingestion_burst_size_bytes"`
	MaxTracesPerUser        *int      `yaml:"max_traces_per_user"`
	MaxBytesPerTrace        *int      `yaml:"max_bytes_per_trace"`
	BlockRetention          *duration `yaml:"block_retention"`
	// Rubato's keys in the legacy layout.
	MaxLiveTracesBytes            *int      `yaml:"max_live_traces_bytes"`
	RetryAfterOnResourceExhausted *duration `yaml:"retry_after_on_resource_exhausted"`
}

// apply sets the fields present in y on d; nested keys win over legacy ones.
func (y *limitsYAML) apply(d *Limits) {
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setD := func(dst *time.Duration, v *duration) {
		if v != nil {
			*dst = time.Duration(*v)
		}
	}
	set(&d.IngestionRateLimitBytes, y.IngestionRateLimitBytes)
	set(&d.IngestionBurstSizeBytes, y.IngestionBurstSizeBytes)
	set(&d.MaxTracesPerUser, y.MaxTracesPerUser)
	set(&d.MaxBytesPerTrace, y.MaxBytesPerTrace)
	setD(&d.BlockRetention, y.BlockRetention)
	set(&d.MaxLiveTracesBytes, y.MaxLiveTracesBytes)
	setD(&d.RetryAfterOnResourceExhausted, y.RetryAfterOnResourceExhausted)
	set(&d.IngestionRateLimitBytes, y.Ingestion.RateLimitBytes)
	set(&d.IngestionBurstSizeBytes, y.Ingestion.BurstSizeBytes)
	set(&d.MaxTracesPerUser, y.Ingestion.MaxTracesPerUser)
	set(&d.MaxBytesPerTrace, y.Global.MaxBytesPerTrace)
	setD(&d.BlockRetention, y.Compaction.BlockRetention)
	set(&d.MaxLiveTracesBytes, y.Ingestion.MaxLiveTracesBytes)
	setD(&d.RetryAfterOnResourceExhausted, y.Ingestion.RetryAfterOnResourceExhausted)
}

// duration accepts Go durations ("36h") and Prometheus ones ("14d", "1w").
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	if v, err := time.ParseDuration(s); err == nil {
		*d = duration(v)
		return nil
	}
	v, err := model.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = duration(v)
	return nil
}

// UnmarshalYAML accepts Tempo's nested and legacy layouts. Keys it does not
// know are ignored here; the config loader reports them.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	var doc configYAML
	if err := n.Decode(&doc); err != nil {
		return err
	}
	doc.limitsYAML.apply(&c.Defaults)
	if doc.Defaults != nil {
		doc.Defaults.apply(&c.Defaults)
	}
	if doc.PerTenantOverrideConfig != nil {
		c.PerTenantOverrideConfig = *doc.PerTenantOverrideConfig
	}
	if doc.PerTenantOverridePeriod != nil {
		c.PerTenantOverridePeriod = time.Duration(*doc.PerTenantOverridePeriod)
	}
	return nil
}

// Wildcard is the runtime-file tenant whose limits apply to every tenant
// without an entry of its own.
const Wildcard = "*"

// ParseRuntimeConfig decodes a per-tenant overrides file: a top-level
// `overrides` map from tenant to limits, in either layout. Each tenant's
// limits start from defaults; every result is validated.
func ParseRuntimeConfig(data []byte, defaults Limits) (map[string]*Limits, error) {
	var doc runtimeYAML
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("overrides: runtime config: %w", err)
	}
	out := make(map[string]*Limits, len(doc.Overrides))
	for t, y := range doc.Overrides {
		l := defaults
		if y != nil {
			y.apply(&l)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("overrides: runtime config, tenant %q: %w", t, err)
		}
		out[t] = &l
	}
	return out, nil
}

// Overrides answers limits per tenant. Safe for concurrent use.
type Overrides struct {
	cfg      Config
	tenants  atomic.Pointer[map[string]*Limits]
	keyCheck atomic.Pointer[func([]byte) error]
}

// New returns Overrides serving cfg's defaults; Reload (or the service
// from NewReloader) adds the runtime file's per-tenant limits.
func New(cfg Config) *Overrides { return &Overrides{cfg: cfg} }

// For returns the limits of tenant: its runtime-file entry, else the
// wildcard entry, else the defaults.
func (o *Overrides) For(tenant string) *Limits {
	if m := o.tenants.Load(); m != nil {
		if l, ok := (*m)[tenant]; ok {
			c := *l
			return &c
		}
		if l, ok := (*m)[Wildcard]; ok {
			c := *l
			return &c
		}
	}
	l := o.cfg.Defaults
	return &l
}

// Reload reads the runtime file and swaps in its limits. On error the
// previous limits stay. Without a configured file it does nothing.
func (o *Overrides) Reload() error {
	if o.cfg.PerTenantOverrideConfig == "" {
		return nil
	}
	data, err := os.ReadFile(o.cfg.PerTenantOverrideConfig)
	if err != nil {
		return fmt.Errorf("overrides: %w", err)
	}
	if check := o.keyCheck.Load(); check != nil {
		if err := (*check)(data); err != nil {
			return err
		}
	}
	m, err := ParseRuntimeConfig(data, o.cfg.Defaults)
	if err != nil {
		return err
	}
	o.tenants.Store(&m)
	return nil
}
