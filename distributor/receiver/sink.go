package receiver

import (
	"context"
	"errors"
	"net/http"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rubatodb/rubato/pkg/tenant"
)

// Sink is what a protocol package hands converted requests to: it resolves
// the tenant, calls the Consumer and counts the outcome.
type Sink struct {
	Consumer  Consumer
	Tenants   tenant.Resolver
	Metrics   *Metrics
	Protocol  string
	Transport string
}

// ForTransport returns a copy of s counting under another transport label.
func (s Sink) ForTransport(transport string) *Sink {
	s.Transport = transport
	return &s
}

// TenantError turns a tenant resolution error into a gRPC status:
// Unauthenticated when the header is missing, InvalidArgument otherwise.
func TenantError(err error) error {
	if errors.Is(err, tenant.ErrMissing) {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	return status.Error(codes.InvalidArgument, err.Error())
}

// ConsumeHTTP resolves the tenant of an HTTP request and consumes req.
func (s *Sink) ConsumeHTTP(r *http.Request, req *coltracepb.ExportTraceServiceRequest) (int64, string, error) {
	id, err := s.Tenants.FromHTTP(r)
	if err != nil {
		err = TenantError(err)
		s.refused(CountSpans(req), err)
		return 0, "", err
	}
	return s.Consume(tenant.WithTenant(r.Context(), id), req)
}

// ConsumeGRPC resolves the tenant of an incoming gRPC call and consumes req.
func (s *Sink) ConsumeGRPC(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (int64, string, error) {
	id, err := s.Tenants.FromGRPC(ctx)
	if err != nil {
		err = TenantError(err)
		s.refused(CountSpans(req), err)
		return 0, "", err
	}
	return s.Consume(tenant.WithTenant(ctx, id), req)
}

// Consume calls the Consumer with a context that already carries the
// tenant, and counts accepted and refused spans. A Consumer error that is
// not a gRPC status becomes codes.Internal.
func (s *Sink) Consume(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (int64, string, error) {
	n := CountSpans(req)
	if n == 0 {
		return 0, "", nil
	}
	rejected, msg, err := s.Consumer.Consume(ctx, req)
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			err = status.Error(codes.Internal, err.Error())
		}
		s.refused(n, err)
		return 0, "", err
	}
	rejected = min(max(rejected, 0), int64(n))
	if rejected > 0 {
		s.Metrics.RefusedSpans.WithLabelValues(s.Protocol, s.Transport, "partial").Add(float64(rejected))
	}
	s.Metrics.AcceptedSpans.WithLabelValues(s.Protocol, s.Transport).Add(float64(int64(n) - rejected))
	return rejected, msg, nil
}

// Raw returns the Consumer as a RawConsumer, if it is one.
func (s *Sink) Raw() (RawConsumer, bool) {
	rc, ok := s.Consumer.(RawConsumer)
	return rc, ok
}

// ConsumeRaw hands an encoded request to a RawConsumer with a context that
// already carries the tenant, and counts the outcome.
func (s *Sink) ConsumeRaw(ctx context.Context, rc RawConsumer, body []byte) (int64, string, error) {
	n, rejected, msg, err := rc.ConsumeRaw(ctx, body)
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			err = status.Error(codes.Internal, err.Error())
		}
		if status.Code(err) == codes.InvalidArgument && n == 0 {
			s.Malformed()
		}
		s.refused(n, err)
		return 0, "", err
	}
	if n == 0 {
		return 0, "", nil
	}
	rejected = min(max(rejected, 0), int64(n))
	if rejected > 0 {
		s.Metrics.RefusedSpans.WithLabelValues(s.Protocol, s.Transport, "partial").Add(float64(rejected))
	}
	s.Metrics.AcceptedSpans.WithLabelValues(s.Protocol, s.Transport).Add(float64(int64(n) - rejected))
	return rejected, msg, nil
}

func (s *Sink) refused(n int, err error) {
	if n > 0 {
		s.Metrics.RefusedSpans.WithLabelValues(s.Protocol, s.Transport, Reason(err)).Add(float64(n))
	}
}

// Malformed counts one request or packet that could not be decoded.
func (s *Sink) Malformed() {
	s.Metrics.MalformedRequests.WithLabelValues(s.Protocol, s.Transport).Inc()
}

// CountSpans returns the number of spans in req.
func CountSpans(req *coltracepb.ExportTraceServiceRequest) int {
	n := 0
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}
