// Package frontend is Rubato's query-frontend (`-target=query-frontend`): it
// serves every query API, splits each query into jobs, queues the jobs per
// tenant and lets the queriers' workers (querier/worker) pull and run them
// over the Frontend gRPC service (pkg/rubatopb frontend.proto).
//
// The HTTP and streaming gRPC APIs are the querier package's own handlers
// (querier.SearchAPI, StreamingServer, the trace-by-ID Handler) over the
// Frontend, which implements querier.Searcher and querier.TraceFinder: the
// parsing, validation, limits and wire encoding are one code path whether a
// querier or the frontend answers.
//
// Splitting:
//   - Trace by ID: one job for the ingesters, plus the backend blocks whose
//     trace-ID and time ranges admit the ID, split into at most
//     query_frontend.trace_by_id.query_shards jobs. All run at once. Each
//     job is bounded on its querier as the querier's own lookups are, and
//     the frontend admits the jobs' spans into one answer cut at the
//     tenant's max_bytes_per_trace (querier.Admission), cancelling the
//     jobs still running once it is full.
//   - Search: pkg/search's Plan (one job for the ingesters, then batches of
//     blocks of about query_frontend.search.target_bytes_per_job, most recent
//     first, each job's time range narrowed to its blocks') and Run (at most
//     query_frontend.search.concurrent_jobs at once, a limited search
//     starting with one block job and widening, merged, stopped at limit).
//   - Tag names and values: one job each (the querier fans out itself,
//     over its own blocklist poll: these are not sharded yet).
//   - Jobs name their blocks by meta.json, read from the frontend's own
//     blocklist poller, so a querier reads exactly the planned blocks.
//
// Invariants:
//   - Fairness: the queue holds one FIFO per tenant and serves tenants
//     round-robin, one job per turn; a tenant with max_outstanding_per_tenant
//     jobs queued has the next refused, and the query answers 429 /
//     ResourceExhausted (querier.ErrTooManyRequests). Retries bypass the
//     limit and go to the front of their tenant's queue.
//   - A worker stream carries one job at a time. A job is answered exactly
//     once: with the worker's result or error, with its query's context
//     error, or, when its worker's stream breaks while it runs, it is given
//     to another worker, at most max_retries times, after which it fails
//     (Unavailable; a trace lookup reports that job's blocks as unread,
//     i.e. PARTIAL or 503, never a false not-found).
//   - A worker that closes its side of a stream (io.EOF: it drains this
//     frontend, having left the querier's DNS answer) has no job in flight;
//     the stream ends at once, and a job sent to it meanwhile goes back to
//     the front of the queue without counting as a retry.
//   - When a query ends (search limit met, client gone) its queued jobs
//     leave the queue at once, and a worker running one is sent a cancel.
//   - Errors the querier classes as the request's (InvalidArgument) come
//     back as querier.ErrInvalidQuery: 400, like a querier's own answer.
//
// Known limits: a worker that hangs without breaking its TCP connection
// holds its job until the query's deadline (no keepalive probing yet);
// block jobs carry each block's meta.json, a few hundred bytes per block.
package frontend
