// Package overrides holds per-tenant limits.
//
// Invariants: Limits returned by Overrides are never nil and never change
// while a caller holds them (a reload swaps in a new value); every limit of 0
// means "unlimited". Both of Tempo's YAML layouts are accepted: the nested
// one (overrides.defaults.ingestion.rate_limit_bytes, …) and the legacy flat
// one (overrides.ingestion_rate_limit_bytes, …).
package overrides

import (
	"errors"
	"flag"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Limits are one tenant's limits.
type Limits struct {
	// IngestionRateLimitBytes is the sustained ingest rate per tenant, in
	// bytes of OTLP protobuf per second, enforced by each distributor.
	IngestionRateLimitBytes int `yaml:"rate_limit_bytes"`
	// IngestionBurstSizeBytes is the token-bucket size for the rate limit.
	IngestionBurstSizeBytes int `yaml:"burst_size_bytes"`
	// MaxTracesPerUser bounds live traces per tenant in each ingester.
	MaxTracesPerUser int `yaml:"max_traces_per_user"`
	// MaxBytesPerTrace bounds one trace's size in an ingester, summed over
	// all pushes until it is written to a block.
	MaxBytesPerTrace int `yaml:"max_bytes_per_trace"`
}

// RegisterFlagsAndApplyDefaults registers the default limits.
func (l *Limits) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.IntVar(&l.IngestionRateLimitBytes, prefix+"ingestion.rate-limit-bytes", 15_000_000, "Per-tenant ingestion rate limit in bytes per second (0 = unlimited).")
	f.IntVar(&l.IngestionBurstSizeBytes, prefix+"ingestion.burst-size-bytes", 20_000_000, "Per-tenant ingestion burst size in bytes.")
	f.IntVar(&l.MaxTracesPerUser, prefix+"ingestion.max-traces-per-user", 10_000, "Maximum live traces per tenant per ingester (0 = unlimited).")
	f.IntVar(&l.MaxBytesPerTrace, prefix+"global.max-bytes-per-trace", 5_000_000, "Maximum size of one trace in bytes (0 = unlimited).")
}

// Validate checks the limits.
func (l *Limits) Validate() error {
	if l.IngestionRateLimitBytes < 0 || l.IngestionBurstSizeBytes < 0 || l.MaxTracesPerUser < 0 || l.MaxBytesPerTrace < 0 {
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
}

// RegisterFlagsAndApplyDefaults registers the default limits' flags.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	c.Defaults.RegisterFlagsAndApplyDefaults(prefix+"overrides.defaults.", f)
}

// Validate checks the config.
func (c *Config) Validate() error { return c.Defaults.Validate() }

// UnmarshalYAML accepts Tempo's nested and legacy layouts. Keys it does not
// know are ignored here; the config loader reports them.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	var nested struct {
		Defaults *struct {
			Ingestion struct {
				RateLimitBytes   *int `yaml:"rate_limit_bytes"`
				BurstSizeBytes   *int `yaml:"burst_size_bytes"`
				MaxTracesPerUser *int `yaml:"max_traces_per_user"`
			} `yaml:"ingestion"`
			Global struct {
				MaxBytesPerTrace *int `yaml:"max_bytes_per_trace"`
			} `yaml:"global"`
		} `yaml:"defaults"`
		IngestionRateLimitBytes *int `yaml:"ingestion_rate_limit_bytes"`
		IngestionBurstSizeBytes *int `yaml:"ingestion_burst_size_bytes"`
		MaxTracesPerUser        *int `yaml:"max_traces_per_user"`
		MaxBytesPerTrace        *int `yaml:"max_bytes_per_trace"`
	}
	if err := n.Decode(&nested); err != nil {
		return err
	}
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	d := &c.Defaults
	set(&d.IngestionRateLimitBytes, nested.IngestionRateLimitBytes)
	set(&d.IngestionBurstSizeBytes, nested.IngestionBurstSizeBytes)
	set(&d.MaxTracesPerUser, nested.MaxTracesPerUser)
	set(&d.MaxBytesPerTrace, nested.MaxBytesPerTrace)
	if nd := nested.Defaults; nd != nil {
		set(&d.IngestionRateLimitBytes, nd.Ingestion.RateLimitBytes)
		set(&d.IngestionBurstSizeBytes, nd.Ingestion.BurstSizeBytes)
		set(&d.MaxTracesPerUser, nd.Ingestion.MaxTracesPerUser)
		set(&d.MaxBytesPerTrace, nd.Global.MaxBytesPerTrace)
	}
	return nil
}

// Overrides answers limits per tenant.
type Overrides struct {
	defaults Limits
}

// New returns Overrides serving cfg.
func New(cfg Config) *Overrides { return &Overrides{defaults: cfg.Defaults} }

// For returns the limits of tenant.
func (o *Overrides) For(tenant string) *Limits {
	l := o.defaults
	return &l
}
