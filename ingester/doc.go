// Package ingester holds recent traces: it appends every push to its
// write-ahead log before acknowledging it, keeps live traces until they go
// idle, gathers idle traces into a head block, cuts the head block into a
// complete block (Parquet, pkg/block) in a local store, uploads complete
// blocks to the backend, and answers lookups for everything it holds.
//
// Invariants:
//   - A push is acknowledged only after its record is in the WAL, durable per
//     the WAL's sync policy (pkg/wal).
//   - Trace bytes are not kept in memory: live traces and head blocks hold
//     WAL positions, and bytes are read back from the segment files when a
//     block is built or a lookup needs them. Memory grows with the number of
//     traces, not their size.
//   - Live traces are bounded per tenant by a memory budget,
//     max_live_traces_bytes, checked against an estimate of the index's
//     memory (liveCost, kept at or above the measured heap by
//     TestLiveTraceCostEstimate), and optionally by a count,
//     max_traces_per_user. Only new traces are refused (MAX_LIVE_TRACES);
//     spans of a trace already live are not.
//   - Admission and append are atomic per tenant (limits.go): a push
//     reserves its live-trace slot, budget share and trace bytes under the
//     tenant's lock before its WAL append, and gives them back if the
//     append fails, so concurrent pushes never pass a limit. A trace's
//     bytes count against max_bytes_per_trace while any part of it is live,
//     in the head block or being cut, and for 3 × trace_idle_period after
//     it is written to a block.
//   - Every acknowledged span is findable by FindTraceByID at every moment:
//     stage moves (live → head → cutting → complete) happen under the
//     instance lock, and a complete block stays readable locally for
//     complete_block_timeout after its upload, longer than a querier's
//     blocklist poll.
//   - A WAL segment is deleted only when no live trace, head block, block
//     being cut, or complete block not yet in the backend refers to it, and
//     no push between its append and its indexing, and no lookup or search
//     reading it, pins it; pushes and lookups never wait for a truncation.
//     A failed upload is retried with backoff for as long as the ingester
//     runs, keeping the block and its WAL data. Each retry writes under a
//     new block ID derived from the block's (uploadID), after deleting the
//     previous attempt's objects, or takes the previous attempt as the
//     flush if its meta.json is in the backend: no attempt writes into a
//     directory an earlier one wrote, so the compactor's janitor, which
//     deletes directories without meta.json whose objects are all older
//     than partial_block_grace (> flush_op_timeout), never deletes an
//     object of an upload in progress.
//   - Every acknowledged span is found by SearchRecent, SearchTags and
//     SearchTagValues at every moment: a search copies, under the instance
//     lock, the WAL positions of live, head, cutting and held traces and
//     the list of complete blocks, pins the WAL segments it refers to
//     against truncation, and reads without any lock held, so pushes wait
//     for the copy (BenchmarkSnapshot/locked), never for the reads. The
//     copy shares each trace's parts slice, capped at its length: parts are
//     only ever appended, never changed in place. A trace's parts in
//     several stages are joined after the lock is released.
//     A complete block the caller names in skipBlocks is left out: the
//     caller reads it in the backend (search.Plan lists only blocks in its
//     blocklist, so a block it does not know yet is still searched here).
//     A trace with parts both in the WAL and
//     in a complete block is evaluated per part and merged by pkg/search
//     (spans deduplicated by ID), as Tempo does. The WAL parts of one
//     trace are joined with each span once (readParts; a write the
//     distributor retried after a failed quorum appends the same spans
//     again), so searches count each span once and the blocks cut from
//     the WAL hold it once (TestRetriedPushCountedOnce).
//   - A search reads and evaluates only the WAL-held traces that may match:
//     each WAL part has a search summary (searchsummary.go: time bounds,
//     duration range, status and kind masks, a bloom filter of attribute
//     keys and values, span names and status messages), built from its
//     bytes the first time a search needs it and cached per tenant within
//     search_summary_bytes. A summary is a superset: it never rejects a
//     part on which a condition of the query (traceql Conditions) holds,
//     so results stay exact (TestSummaryNeverDropsAMatch,
//     TestSearchRecentMatchesBruteForce). Candidates are evaluated most
//     recent first until limit, decoded without what the query does not
//     read (searchproject.go; TestProjectedPartMatchesLikeWhole). At most
//     max_concurrent_searches searches and tag calls run at once, 4× as
//     many wait, the rest get ResourceExhausted.
//   - Tag names and values of WAL-held parts come from a per-tag,
//     per-segment cache of what the parts already read hold (tagvalues.go);
//     a call uses an entry whole only when every part behind it lies in the
//     call's range, so answers equal reading every part. Summaries and tag
//     entries go with their segments when the WAL is truncated.
//   - On start the WAL is replayed into live traces and local complete blocks
//     are discarded (they are rebuilt from the WAL), so a crash never loses
//     an acknowledged span. A block whose upload finished before a crash is
//     not written twice: its flush mark (flushmark.go, written durably when
//     it is cut) lists its WAL fragments, and replay skips them once the
//     block's meta.json is found in the backend; its segments are then
//     truncated. Without that proof (no mark, meta.json missing, backend
//     unreachable) the fragments are replayed and the block is uploaded
//     again, which queries and compaction deduplicate by span ID.
//   - With replication, each trace is built by one replica (the distributor
//     picks it); the others hold its fragments (held.go): in the WAL and
//     answering lookups and searches, but in no block. A held fragment goes
//     only when its builder, having flushed the block holding it, releases
//     it (ReleaseHeld, sent by the builder: releaseOnReplicas), or it is
//     promoted and built here: on the distributor's request (the builder
//     failed the push) or after hold_timeout without a release. Releases
//     and promotions are WAL records, replayed like pushes. So the spans of
//     an acknowledged push are on a quorum of WALs until a block holding
//     them is in the backend, and the replicas spend their CPU on blocks
//     once, not replication_factor times.
//   - Ring lifecycle (lifecycle.go, dskit's Lifecycler): the ingester joins
//     the ring only after its WAL is replayed, heartbeats while it runs, and
//     on a clean stop refuses pushes, goes LEAVING, uploads everything it
//     holds if flush_all_on_shutdown is set (else its WAL keeps it for the
//     next start), and leaves the ring. Instances whose heartbeat is older
//     than auto_forget_unhealthy_periods heartbeat timeouts are removed
//     from the ring, so a dead ingester stops counting as a replica.
package ingester
