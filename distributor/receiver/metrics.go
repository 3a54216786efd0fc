package receiver

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Metrics are the counters every receiver keeps, labelled by protocol
// (otlp, zipkin, jaeger) and transport (grpc, http, udp_compact, ...).
// NewMetrics may be called once per receiver with the same registry: the
// second call reuses the collectors the first registered.
type Metrics struct {
	AcceptedSpans     *prometheus.CounterVec // protocol, transport
	RefusedSpans      *prometheus.CounterVec // protocol, transport, reason
	MalformedRequests *prometheus.CounterVec // protocol, transport
}

// NewMetrics registers (or finds already registered) the receiver metrics.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		AcceptedSpans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_receiver_accepted_spans_total",
			Help: "Spans accepted by the distributor, by receiver protocol and transport.",
		}, []string{"protocol", "transport"}),
		RefusedSpans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_receiver_refused_spans_total",
			Help: "Spans received but not accepted, by receiver protocol, transport and reason.",
		}, []string{"protocol", "transport", "reason"}),
		MalformedRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_receiver_malformed_requests_total",
			Help: "Requests or packets dropped because they could not be decoded.",
		}, []string{"protocol", "transport"}),
	}
	var err error
	if m.AcceptedSpans, err = register(reg, m.AcceptedSpans); err != nil {
		return nil, err
	}
	if m.RefusedSpans, err = register(reg, m.RefusedSpans); err != nil {
		return nil, err
	}
	if m.MalformedRequests, err = register(reg, m.MalformedRequests); err != nil {
		return nil, err
	}
	return m, nil
}

func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, err
	}
	return c, nil
}

// Reason returns the refused_spans reason label for a Consumer error.
func Reason(err error) string {
	switch status.Code(err) {
	case codes.InvalidArgument:
		return "invalid"
	case codes.ResourceExhausted:
		return "rate_limited"
	case codes.FailedPrecondition:
		if hasErrorReason(err, ReasonRequestTooLarge) {
			return "request_too_large"
		}
		return "invalid"
	case codes.Unauthenticated, codes.PermissionDenied:
		return "tenant"
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return "unavailable"
	}
	return "internal"
}
