package ingester

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	pushedTraces   prometheus.Counter
	pushedBytes    prometheus.Counter
	rejectedTraces *prometheus.CounterVec
	tracesCreated  *prometheus.CounterVec
	liveTraces     *prometheus.GaugeVec
	// liveTracesBytes is the estimate max_live_traces_bytes is checked against.
	liveTracesBytes *prometheus.GaugeVec
	blocksCut       prometheus.Counter
	failedCuts      prometheus.Counter
	cutDuration     prometheus.Histogram
	searchDuration  *prometheus.HistogramVec
	searchesRefused prometheus.Counter
	// searchBlocksSkipped: local complete blocks a search left to the
	// caller's backend search (IngesterSearchRequest.skipBlocks).
	searchBlocksSkipped prometheus.Counter
	// tagValueParts: WAL parts read for tag values, into the tag-value
	// cache or by one call (tagvalues.go).
	tagValueParts  *prometheus.CounterVec
	blocksFlushed  prometheus.Counter
	failedFlushes  prometheus.Counter
	flushDuration  prometheus.Histogram
	pendingFlushes prometheus.Gauge
	replayedRecs   prometheus.Counter
	badRecords     prometheus.Counter
	// Held fragments (held.go).
	heldFragments *prometheus.GaugeVec
	heldReleased  prometheus.Counter
	heldPromoted  *prometheus.CounterVec
	releases      *prometheus.CounterVec
	// Search summaries of WAL parts (searchsummary.go).
	summaryBytes       prometheus.Gauge
	summariesBuilt     *prometheus.CounterVec
	summariesNotCached prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		pushedTraces: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_traces_pushed_total", Help: "Trace fragments appended to the WAL and acknowledged."}),
		pushedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_bytes_received_total", Help: "Bytes of trace fragments appended to the WAL."}),
		rejectedTraces: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_ingester_rejected_traces_total", Help: "Trace fragments refused by a limit."}, []string{"reason"}),
		tracesCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_ingester_traces_created_total", Help: "Live traces created."}, []string{"tenant"}),
		liveTraces: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rubato_ingester_live_traces", Help: "Live traces per tenant."}, []string{"tenant"}),
		liveTracesBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rubato_ingester_live_traces_bytes", Help: "Estimated memory of the live-trace index per tenant, checked against max_live_traces_bytes."}, []string{"tenant"}),
		blocksCut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_blocks_cut_total", Help: "Head blocks written as complete blocks."}),
		failedCuts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_failed_cuts_total", Help: "Attempts to write a complete block that failed (retried)."}),
		cutDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rubato_ingester_block_cut_duration_seconds", Help: "Time to write a complete block.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)}),
		blocksFlushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_blocks_flushed_total", Help: "Complete blocks uploaded to the backend."}),
		failedFlushes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_failed_flushes_total", Help: "Block uploads that failed (retried)."}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "rubato_ingester_flush_duration_seconds", Help: "Time to upload a block.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 8)}),
		pendingFlushes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rubato_ingester_blocks_pending_flush", Help: "Complete blocks not yet in the backend."}),
		replayedRecs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_wal_replayed_records_total", Help: "WAL records replayed at start-up."}),
		searchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rubato_ingester_search_duration_seconds", Help: "Time to answer a search, tags or tag values call.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, []string{"op"}),
		searchesRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_searches_refused_total", Help: "Searches and tag calls refused with RESOURCE_EXHAUSTED: max_concurrent_searches running and the queue full."}),
		searchBlocksSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_search_blocks_skipped_total", Help: "Local complete blocks a search left out because the querier searches them in the backend."}),
		tagValueParts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_ingester_tag_value_parts_read_total", Help: "WAL parts read for tag names or values: into the per-segment tag cache (for=cache), or by one call that could not use it (for=call)."}, []string{"for"}),
		badRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_wal_bad_records_total", Help: "WAL records with valid checksums but unreadable framing, skipped at replay."}),
		heldFragments: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rubato_ingester_held_fragments", Help: "Fragments held for durability while another replica builds them, per tenant."}, []string{"tenant"}),
		heldReleased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_held_released_total", Help: "Held fragments released: their builder's block is in the backend."}),
		heldPromoted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_ingester_held_promoted_total", Help: "Held fragments built here: asked by the distributor (the builder failed the push) or past hold_timeout."}, []string{"reason"}),
		summaryBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rubato_ingester_search_summary_bytes", Help: "Memory of the cached search summaries of WAL parts, all tenants (bounded per tenant by search_summary_bytes)."}),
		summariesBuilt: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_ingester_search_summaries_built_total", Help: "Search summaries of WAL parts built, by the push appending the part or by a search not finding it cached."}, []string{"by"}),
		summariesNotCached: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rubato_ingester_search_summaries_not_cached_total", Help: "Search summaries built but not cached: the tenant's search_summary_bytes is full."}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rubato_ingester_replica_releases_total", Help: "Fragments of flushed blocks this ingester told another replica to release, by result."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.pushedTraces, m.pushedBytes, m.rejectedTraces, m.tracesCreated, m.liveTraces, m.liveTracesBytes,
			m.blocksCut, m.failedCuts, m.cutDuration, m.blocksFlushed, m.failedFlushes, m.flushDuration,
			m.pendingFlushes, m.replayedRecs, m.badRecords, m.searchDuration, m.searchesRefused, m.searchBlocksSkipped, m.tagValueParts,
			m.heldFragments, m.heldReleased, m.heldPromoted, m.releases,
			m.summaryBytes, m.summariesBuilt, m.summariesNotCached)
	}
	return m
}
