package distributor

import (
	"errors"
	"flag"
	"time"
)

// DefaultPushTimeout is the push timeout when none is set.
const DefaultPushTimeout = 5 * time.Second

// Config is the distributor's own part of the `distributor` block (the
// receivers are configured beside it).
type Config struct {
	// RetryAfterOnResourceExhausted is Tempo's key: when positive, it is the
	// retry delay sent with every rate-limit refusal (gRPC RetryInfo, HTTP
	// Retry-After). Zero (the default) computes the delay from the tenant's
	// limiter: how long until the refused request would fit. A tenant's
	// ingestion.retry_after_on_resource_exhausted override wins over both.
	RetryAfterOnResourceExhausted time.Duration `yaml:"retry_after_on_resource_exhausted"`

	// MaxInflightPushBytes bounds the bytes of requests this distributor
	// holds at once, received and not yet answered (0: no bound). A
	// request over it is refused with ResourceExhausted (HTTP 429) and
	// RetryInfo (1s), or FailedPrecondition (HTTP 413) if it alone is
	// larger; its spans are counted under reason inflight_bytes_limit.
	MaxInflightPushBytes int64 `yaml:"max_inflight_push_bytes"`

	// BuildOnOneReplica: with a replication factor above 1, one replica of
	// each trace (the first of its replication set on the ring, the
	// "builder") builds it into blocks; the others keep its spans in their
	// WAL, held, until the builder's block is in the backend. Replication
	// then costs one block build per span instead of one per replica. A
	// push is acknowledged only once every fragment is in the WAL of a
	// replica that builds it (its builder, or a holder promoted with
	// PromoteHeld when the builder failed). Off, every replica builds
	// every trace, as in Tempo. Default true (its flag's).
	BuildOnOneReplica bool `yaml:"build_on_one_replica"`

	// PushTimeout bounds the pushes of one request to its ingesters. It is
	// Tempo's ingester_client.remote_timeout, set by the caller
	// (0: DefaultPushTimeout).
	PushTimeout time.Duration `yaml:"-"`
}

// RegisterFlagsAndApplyDefaults registers the flags under prefix.
func (c *Config) RegisterFlagsAndApplyDefaults(prefix string, f *flag.FlagSet) {
	f.DurationVar(&c.RetryAfterOnResourceExhausted, prefix+"retry-after-on-resource-exhausted", 0,
		"Retry delay sent with rate-limit refusals (gRPC RetryInfo, HTTP Retry-After); 0 computes it from the tenant's rate limiter.")
	f.BoolVar(&c.BuildOnOneReplica, prefix+"build-on-one-replica", true,
		"With replication factor > 1, only one replica of each trace builds it into blocks; the others hold its spans in their WAL until that block is in the backend. Off: every replica builds, as in Tempo.")
	f.Int64Var(&c.MaxInflightPushBytes, prefix+"max-inflight-push-bytes", 0, "Bytes of requests held at once, received and not yet answered; more are refused with 429 / RESOURCE_EXHAUSTED (0: no bound).")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.RetryAfterOnResourceExhausted < 0 {
		return errors.New("distributor: retry_after_on_resource_exhausted must not be negative")
	}
	if c.MaxInflightPushBytes < 0 {
		return errors.New("distributor: max_inflight_push_bytes must not be negative")
	}
	if c.PushTimeout < 0 {
		return errors.New("distributor: the push timeout must not be negative")
	}
	return nil
}
