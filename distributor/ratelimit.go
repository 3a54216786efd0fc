package distributor

import (
	"fmt"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/pkg/overrides"
)

// Bounds of a retry delay computed from the limiter. The floor matches
// Retry-After's one-second resolution; the ceiling stays well inside the
// OpenTelemetry Collector's retry budget (retry_on_failure.max_elapsed_time,
// 300 s by default): a throttle delay past that budget makes the Collector
// drop the batch instead of waiting.
const (
	minRetryDelay = time.Second
	maxRetryDelay = 30 * time.Second
)

// checkRate takes size bytes from the tenant's token bucket, or returns the
// error the client gets when it cannot:
//   - a request larger than the bucket can never fit: a permanent
//     FailedPrecondition (HTTP 413) naming the limit, without RetryInfo, so
//     that no client retries it;
//   - otherwise a ResourceExhausted carrying google.rpc.RetryInfo (HTTP 429
//     with Retry-After), which the Collector and the OTel SDKs retry.
//
// A refused request takes no tokens.
func (d *Distributor) checkRate(tenantID string, lim *overrides.Limits, size, spans int, now time.Time) error {
	if lim.IngestionRateLimitBytes <= 0 {
		return nil
	}
	if size > lim.IngestionBurstSizeBytes {
		return requestTooLargeError(tenantID, lim, size, spans)
	}
	l := d.limiter(tenantID, lim)
	if l.AllowN(now, size) {
		return nil
	}
	delay := d.retryDelay(l, lim, size, now)
	return rateLimitedError(fmt.Sprintf(
		"RATE_LIMITED: ingestion rate limit (%d bytes/s, burst %d) exceeded for tenant %s; %d spans (%d bytes) refused, retry in %s",
		lim.IngestionRateLimitBytes, lim.IngestionBurstSizeBytes, tenantID, spans, size, delay), delay)
}

// retryDelay is the delay told to a rate-limited client: the tenant's
// override, else the distributor's retry_after_on_resource_exhausted, else
// the time until the bucket holds size tokens, within
// [minRetryDelay, maxRetryDelay].
func (d *Distributor) retryDelay(l *rate.Limiter, lim *overrides.Limits, size int, now time.Time) time.Duration {
	if lim.RetryAfterOnResourceExhausted > 0 {
		return lim.RetryAfterOnResourceExhausted
	}
	if d.cfg.RetryAfterOnResourceExhausted > 0 {
		return d.cfg.RetryAfterOnResourceExhausted
	}
	missing := float64(size) - l.TokensAt(now)
	delay := time.Duration(missing / float64(l.Limit()) * float64(time.Second))
	return min(max(delay, minRetryDelay), maxRetryDelay)
}

// rateLimitedError is a ResourceExhausted status carrying RetryInfo.
func rateLimitedError(msg string, delay time.Duration) error {
	st := status.New(codes.ResourceExhausted, msg)
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)}); err == nil {
		st = withInfo
	}
	return st.Err()
}

// requestTooLargeError is the permanent answer to a request that can never
// pass the tenant's token bucket.
func requestTooLargeError(tenantID string, lim *overrides.Limits, size, spans int) error {
	st := status.New(codes.FailedPrecondition, fmt.Sprintf(
		"REQUEST_TOO_LARGE: request of %d bytes is larger than tenant %s's ingestion burst_size_bytes (%d) and can never be accepted; "+
			"%d spans refused, do not retry. Raise overrides ingestion.burst_size_bytes, or send smaller requests "+
			"(OpenTelemetry Collector: set the batch processor's send_batch_max_size)",
		size, tenantID, lim.IngestionBurstSizeBytes, spans))
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason: receiver.ReasonRequestTooLarge, Domain: receiver.ErrorDomain,
		Metadata: map[string]string{
			"request_bytes":    fmt.Sprint(size),
			"burst_size_bytes": fmt.Sprint(lim.IngestionBurstSizeBytes),
		},
	}); err == nil {
		st = withInfo
	}
	return st.Err()
}
