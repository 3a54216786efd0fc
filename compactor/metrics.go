package compactor

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	jobs            *prometheus.CounterVec
	blocksCompacted prometheus.Counter
	blocksWritten   prometheus.Counter
	bytesRead       prometheus.Counter
	bytesWritten    prometheus.Counter
	objectsRead     prometheus.Counter
	objectsWritten  prometheus.Counter
	objectsCombined prometheus.Counter
	spansDeduped    prometheus.Counter
	spansDropped    *prometheus.CounterVec
	retentionMarked prometheus.Counter
	blocksDeleted   prometheus.Counter
	partialDeleted  prometheus.Counter
	jobsSkipped     prometheus.Counter
	errors          *prometheus.CounterVec
	duration        prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_compactor_jobs_total", Help: "Compaction jobs run, by result."}, []string{"result"}),
		blocksCompacted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_blocks_compacted_total", Help: "Input blocks merged and marked compacted."}),
		blocksWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_blocks_written_total", Help: "Output blocks written."}),
		bytesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_bytes_read_total", Help: "Bytes of input data.parquet merged."}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_bytes_written_total", Help: "Bytes of output data.parquet written."}),
		objectsRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_objects_read_total", Help: "Traces read from input blocks, each copy counted."}),
		objectsWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_objects_written_total", Help: "Traces written to output blocks."}),
		objectsCombined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_objects_combined_total", Help: "Output traces combined from copies in several input blocks."}),
		spansDeduped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_spans_deduplicated_total", Help: "Spans dropped because another copy of the trace had the same span ID."}),
		spansDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_compactor_spans_dropped_total", Help: "Spans dropped by compaction, by reason."}, []string{"reason"}),
		retentionMarked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_retention_blocks_total", Help: "Blocks past their retention, marked for deletion."}),
		blocksDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_blocks_deleted_total", Help: "Compacted or expired blocks deleted from the backend."}),
		partialDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_partial_blocks_deleted_total", Help: "Partial blocks (objects without meta.json, older than partial_block_grace) deleted by the janitor."}),
		jobsSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_compactor_jobs_not_owned_total", Help: "Planned jobs skipped because another compactor owns their (tenant, window) in the ring."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_compactor_errors_total", Help: "Compactor failures, by operation."}, []string{"op"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rubato_compactor_compaction_duration_seconds", Help: "Duration of one compaction job.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 16)}),
	}
	if reg != nil {
		reg.MustRegister(m.jobs, m.blocksCompacted, m.blocksWritten, m.bytesRead, m.bytesWritten, m.objectsRead,
			m.objectsWritten, m.objectsCombined, m.spansDeduped, m.spansDropped, m.retentionMarked, m.blocksDeleted, m.partialDeleted, m.jobsSkipped,
			m.errors, m.duration)
	}
	return m
}
