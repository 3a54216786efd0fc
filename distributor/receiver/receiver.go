// Package receiver holds what every ingest protocol shares: the Consumer the
// protocol packages hand converted spans to, and the mapping of its errors to
// HTTP status codes.
//
// Invariants: a receiver answers success only after Consumer.Consume returned
// nil (the spans are then durable on a quorum of ingesters). Errors carry a
// gRPC status: InvalidArgument (HTTP 400), ResourceExhausted (HTTP 429),
// Unavailable (HTTP 503), FailedPrecondition with ErrorInfo reason
// REQUEST_TOO_LARGE (HTTP 413); anything else is HTTP 500. A
// ResourceExhausted error carries google.rpc.RetryInfo, which gRPC receivers
// pass on as they are and HTTP receivers turn into Retry-After (seconds,
// rounded up): OTLP clients such as the OpenTelemetry Collector retry
// ResourceExhausted only when RetryInfo is present. A receiver never retries
// on its own: the client is told, and decides. A transport configured with a
// tls block (TLSConfig) serves TLS, or mutual TLS with client_ca_file, or
// does not start: it never falls back to plaintext.
package receiver

import (
	"context"
	"net/http"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Consumer takes spans converted to OTLP. The context carries the tenant
// (tenant.WithTenant). Consume returns the number of spans it rejected
// without failing the whole request (an OTLP partial success), with a
// message saying why; err is non-nil when nothing was accepted.
type Consumer interface {
	Consume(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (rejected int64, msg string, err error)
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (int64, string, error)

// Consume calls f.
func (f ConsumerFunc) Consume(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (int64, string, error) {
	return f(ctx, req)
}

// HTTPStatus maps a Consumer error to an HTTP status code.
func HTTPStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	switch status.Code(err) {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.DeadlineExceeded, codes.Canceled:
		return http.StatusServiceUnavailable
	case codes.FailedPrecondition:
		if hasErrorReason(err, ReasonRequestTooLarge) {
			return http.StatusRequestEntityTooLarge
		}
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// Message returns the human-readable part of a Consumer error.
func Message(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}

// RawConsumer is implemented by Consumers that take an encoded
// ExportTraceServiceRequest as received, sparing the receiver a decode and
// the consumer a re-encode. ConsumeRaw validates body itself (malformed
// input is an InvalidArgument error) and also returns the number of spans
// body holds, for the receiver's metrics. body is not retained.
type RawConsumer interface {
	ConsumeRaw(ctx context.Context, body []byte) (spans int, rejected int64, msg string, err error)
}
