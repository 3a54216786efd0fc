package backend

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operation names used as the "op" label of the request metrics.
const (
	OpPut      = "put"
	OpGet      = "get"
	OpGetRange = "get_range"
	OpSize     = "size"
	OpList     = "list"
	OpListObjs = "list_objects"
	OpDelete   = "delete"
)

// Metrics counts backend requests. One Metrics can serve several instrumented
// backends; they are told apart by the "backend" label.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the request metrics on reg (nil registers nothing). A
// second NewMetrics on the same registry reuses the collectors already there,
// so several backends can be instrumented against one registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_backend_requests_total",
			Help: "Object-store requests by backend, operation and outcome.",
		}, []string{"backend", "op", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rubato_backend_request_duration_seconds",
			Help:    "Time spent in object-store requests (Get: until the body is available).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"backend", "op"}),
	}
	if reg != nil {
		m.requests = registerOrExisting(reg, m.requests)
		m.duration = registerOrExisting(reg, m.duration)
	}
	return m
}

func registerOrExisting[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A clashing collector of another shape is a programming error that
		// the tests catch; keep the unregistered collector rather than panic.
	}
	return c
}

// Status classifies an error for the "status" label: ok, not_found,
// invalid_key, out_of_range, canceled or error.
func Status(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrInvalidKey):
		return "invalid_key"
	case errors.Is(err, ErrOutOfRange):
		return "out_of_range"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "error"
	}
}

func (m *Metrics) observe(name, op string, start time.Time, err error) {
	m.requests.WithLabelValues(name, op, Status(err)).Inc()
	m.duration.WithLabelValues(name, op).Observe(time.Since(start).Seconds())
}

// Instrument wraps b so that every call is counted in
// rubato_backend_requests_total{backend,op,status} and timed in
// rubato_backend_request_duration_seconds{backend,op}, registered on reg.
// name is the "backend" label ("local", "s3", ...).
func Instrument(b Backend, name string, reg prometheus.Registerer) Backend {
	return InstrumentWith(b, name, NewMetrics(reg))
}

// InstrumentWith is Instrument with metrics made beforehand.
func InstrumentWith(b Backend, name string, m *Metrics) Backend {
	return &instrumented{next: b, name: name, m: m}
}

type instrumented struct {
	next Backend
	name string
	m    *Metrics
}

func (i *instrumented) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	start := time.Now()
	err := i.next.Put(ctx, key, r, size)
	i.m.observe(i.name, OpPut, start, err)
	return err
}

func (i *instrumented) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := i.next.Get(ctx, key)
	i.m.observe(i.name, OpGet, start, err)
	return rc, err
}

func (i *instrumented) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	start := time.Now()
	data, err := i.next.GetRange(ctx, key, off, length)
	i.m.observe(i.name, OpGetRange, start, err)
	return data, err
}

func (i *instrumented) Size(ctx context.Context, key string) (int64, error) {
	start := time.Now()
	n, err := i.next.Size(ctx, key)
	i.m.observe(i.name, OpSize, start, err)
	return n, err
}

func (i *instrumented) List(ctx context.Context, dir string) ([]string, error) {
	start := time.Now()
	keys, err := i.next.List(ctx, dir)
	i.m.observe(i.name, OpList, start, err)
	return keys, err
}

func (i *instrumented) ListObjects(ctx context.Context, dir string) ([]ObjectInfo, error) {
	start := time.Now()
	objs, err := i.next.ListObjects(ctx, dir)
	i.m.observe(i.name, OpListObjs, start, err)
	return objs, err
}

func (i *instrumented) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := i.next.Delete(ctx, key)
	i.m.observe(i.name, OpDelete, start, err)
	return err
}

func (i *instrumented) Close() error { return i.next.Close() }
