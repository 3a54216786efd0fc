package wal

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	appends         prometheus.Counter
	appendBytes     prometheus.Counter
	fsyncs          prometheus.Counter
	fsyncDuration   prometheus.Histogram
	segments        prometheus.Gauge
	segmentsDeleted prometheus.Counter
	corruptions     prometheus.Counter
	truncatedBytes  prometheus.Counter
	failures        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appends: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_wal_appends_total",
			Help: "Records appended to the write-ahead log.",
		}),
		appendBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_wal_append_bytes_total",
			Help: "Payload bytes appended to the write-ahead log, framing excluded.",
		}),
		fsyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_wal_fsyncs_total",
			Help: "fsync calls on write-ahead log segment files.",
		}),
		fsyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rubato_wal_fsync_duration_seconds",
			Help:    "Duration of fsync calls on write-ahead log segment files.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9),
		}),
		segments: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rubato_wal_segments",
			Help: "Segment files in the write-ahead log directory, the active one included.",
		}),
		segmentsDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_wal_segments_deleted_total",
			Help: "Segment files deleted by Truncate.",
		}),
		corruptions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_wal_corruptions_total",
			Help: "Torn or corrupt records found by replay; each cut its segment short.",
		}),
		truncatedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_wal_corrupt_bytes_truncated_total",
			Help: "Bytes cut off segment files by replay after a torn or corrupt record.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_wal_failures_total",
			Help: "Write or fsync errors; each leaves the write-ahead log refusing appends.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.appends, err = register(reg, m.appends)
	if err == nil {
		m.appendBytes, err = register(reg, m.appendBytes)
	}
	if err == nil {
		m.fsyncs, err = register(reg, m.fsyncs)
	}
	if err == nil {
		m.fsyncDuration, err = register(reg, m.fsyncDuration)
	}
	if err == nil {
		m.segments, err = register(reg, m.segments)
	}
	if err == nil {
		m.segmentsDeleted, err = register(reg, m.segmentsDeleted)
	}
	if err == nil {
		m.corruptions, err = register(reg, m.corruptions)
	}
	if err == nil {
		m.truncatedBytes, err = register(reg, m.truncatedBytes)
	}
	if err == nil {
		m.failures, err = register(reg, m.failures)
	}
	return m, err
}

// register registers c, or returns the collector already registered under
// the same name (a WAL reopened on the same registry keeps counting).
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, err
}
