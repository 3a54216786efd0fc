// Package querier answers trace-by-ID lookups from ingesters (recent data)
// and backend blocks, and serves Tempo's HTTP query API and the gRPC
// StreamingQuerier.
//
// Invariants:
//   - A lookup asks every ingester that may hold the trace and every backend
//     block whose trace-ID range and time range admit it; each block is read
//     only past its bloom filter and only in the one row group that can hold
//     the ID (pkg/block).
//   - Parts of a trace found in several places are combined, and copies of a
//     span (same span ID) returned once.
//   - A trace is never silently incomplete: when a source fails, the v2
//     endpoint answers what was found with status PARTIAL and a message, the
//     v1 endpoint adds an X-Rubato-Partial header, and a not-found with a
//     failed source is a 503, never a 404. A `q` on trace-by-ID that drops
//     spans is reported the same way.
//   - Lookups are bounded (bounds.go). The answer is at most the tenant's
//     max_bytes_per_trace of protobuf: parts are admitted span by span as
//     they are decoded, copies of a span never counting twice, and a trace
//     cut there is reported like a failed source (v2 PARTIAL with Tempo's
//     message "Trace exceeds maximum size of N bytes, a partial trace is
//     returned", v1 X-Rubato-Partial). Once the answer is full, block
//     reads stop at their next row. A lookup runs at most
//     concurrent_block_reads block reads, and takes the semaphore before
//     it starts a read's goroutine. A process runs at most
//     max_concurrent_queries lookups, each holding its limit's bytes of
//     max_trace_bytes_in_flight until its answer is written; a lookup that
//     cannot start within queue_timeout is answered 429 with Retry-After.
//   - The v1 JSON answer is written span by span, never built whole.
//   - Wire formats follow CONTRACT.md: the v2 trace endpoint always carries
//     field 1 (trace), and answers not-found with 200 and an empty trace; the
//     v1 endpoint answers 404.
//
// Replicas: searches and tag calls ask every ingester of the ring that can
// serve reads; up to the read replication set's MaxErrors of them may fail
// (replication_factor/2 with every ingester healthy), since a span
// acknowledged by a quorum write is on the others, and the answer stays
// complete: copies of a trace from several replicas are merged by trace ID
// (search.Combiner). Past MaxErrors the call fails with
// ErrIngestersUnavailable, 503 / Unavailable (search.go ingesterSet), the
// rule a trace lookup follows through ReplicationSet.Do.
//
// Search API (SearchAPI over a Searcher; search execution lives elsewhere):
//   - Every search, tag and tag-value response is protobuf JSON of the
//     tempopb messages whose field sets are pinned to the version Grafana's
//     plugin decodes strictly (pkg/rubatopb TestPinnedFieldSets); metrics
//     are always present.
//   - A request is validated and bounded before the searcher runs, the same
//     way over HTTP and gRPC: TraceQL parses (else 400/InvalidArgument with
//     the position), limit and spss get query_frontend.search defaults and
//     bounds, the range is within max_duration, and legacy tags/durations
//     become TraceQL, so the searcher only ever sees TraceQL.
//   - Errors caused by the request are 400 plain text (InvalidArgument);
//     a missing searcher is 501 (Unimplemented) naming search; unknown
//     paths are 404 and known-but-unimplemented Tempo routes 501, both with
//     a message.
//   - A streamed search sends at least one message, every message with
//     metrics, and ends with a complete one (completedJobs == totalJobs)
//     holding every trace; progress messages hold no traces, because
//     Grafana keeps the first copy of a trace it is sent;
//     gRPC and HTTP/1.1 share the query port (NewHTTPServer, h2c).
//
// Query-frontend jobs (jobs.go; the frontend is querier/frontend, the
// worker querier/worker): RunJob runs one shard of a query for the
// frontend. The handlers above take a Searcher and a TraceFinder, so the
// frontend is served by the same code. A job names its blocks by their
// meta.json (only blocks of the job's tenant are accepted), so it reads
// exactly what the frontend planned; a trace job's unreadable sources come
// back as Partial, never as a smaller trace; request errors are gRPC
// InvalidArgument, which the frontend answers with 400.
package querier
