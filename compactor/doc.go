// Package compactor merges a tenant's small blocks into bigger ones,
// removes duplicate spans written by replicas, deletes blocks past their
// retention, and writes each tenant's block index (<tenant>/index.json.gz)
// that queriers read instead of listing the bucket. Any number of
// compactors share the work over the compactor ring (ring.go).
//
// A round (every compaction_cycle): poll the backend by listing (at most
// every blocklist_poll) and rewrite the index of every tenant this
// compactor owns; then per tenant apply retention and delete partial
// blocks (if it owns the tenant) and run the jobs Plan makes (planner.go,
// a pure function of the block metas) whose (tenant, window) it owns.
//
// Invariants:
//
//   - Streaming: a job's inputs are read row group by row group (block's
//     RowReader: one ranged GET each, footer without page index, rows as
//     cells of decoded pages, a batch at a time) and merged by trace ID
//     (k-way, heap); the output is written as it goes (the block writer
//     copies rows' levels and values page to page, remapping dictionary
//     indexes, and spills to a temporary file; compacted blocks use bigger
//     row groups, so it holds fewer row-group descriptors). Memory is one
//     row group and two row batches per input, plus the copies of the one
//     trace being combined, plus the writer's current row group, the
//     pages of the rows it has collected (256) and its footer metadata —
//     bounded by row_group_size_bytes, max_input_blocks,
//     max_combine_spans and the block's max_spans_per_row, not by the
//     amount of data merged. compactor.memory_limit_bytes sets Go's soft
//     memory limit while a job runs, so the garbage collector keeps RSS
//     near that live heap instead of letting it reach twice its size.
//   - Deduplication: copies of a trace from several inputs become one trace;
//     spans with the same span ID and kind are kept once (first copy in
//     input order wins), as pkg/model/combine does.
//   - Large traces: a trace found in one input is copied as it is (as
//     Parquet levels and values, never decoded), row by row when the block
//     stores it as several rows (block.Config.MaxSpansPerRow). Copies of a
//     trace of which one is stored as several rows are combined part by
//     part in bounded memory and without decoding: the first copy's rows
//     are copied, then from each row of the other copies the spans already
//     written are dropped and the rest appended as a further part
//     (block.Writer.AddPartRowSpans; a row all of whose spans are new is
//     copied as it is, one none of whose are is skipped). The span keys of
//     the trace, ~40 bytes a span, are all that is held. Copies that are one
//     row each and hold more than compaction.max_combine_spans spans
//     together are not decoded: the copy with the most spans is kept whole
//     and the others are dropped, counted in
//     rubato_compactor_spans_dropped_total{reason="too_large_to_combine"}
//     and logged with the counts. A combined trace over
//     compaction.max_bytes_per_trace (when > 0) is cut: spans are kept in
//     order while the trace fits, the rest are dropped, counted with
//     reason="trace_too_large" and logged (a multi-row first copy is kept
//     whole; only spans from other copies are cut). Otherwise traces are
//     kept whole.
//   - Safe replacement: the output block is complete (meta.json last)
//     before any input gets meta.compacted.json. The output ID is derived
//     from the input IDs (OutputID), so a job retried after a crash finds
//     its finished output and only marks the inputs, or overwrites its own
//     half-written objects. At every point queries stay exact: while an
//     output and (some of) its inputs are both live, the querier combines
//     the copies and drops duplicate spans by span ID.
//   - Deletion: a compacted block stays readable for
//     compacted_block_retention (queriers with an older blocklist still
//     find its traces), then is deleted meta.json first and
//     meta.compacted.json last (blocklist.DeleteBlock), so an interrupted
//     deletion is retried and never resurrects a block.
//   - Partial blocks (janitor.go): an upload that stopped before its
//     meta.json (an ingester flush or a compaction that failed half way and
//     was never retried under that ID) leaves objects no reader sees. A
//     block directory the poll found with neither meta.json nor
//     meta.compacted.json is deleted when every one of its objects is older
//     than compaction.partial_block_grace (default 1h; 0 keeps them), as
//     ListObjects reports their last-modified times, and only if a second
//     listing just before the deletions says the same; counted in
//     rubato_compactor_partial_blocks_deleted_total. This never races an
//     upload in progress as long as partial_block_grace exceeds the longest
//     single upload attempt (the ingester's flush_op_timeout, 5m by
//     default): an attempt puts objects only while it runs, meta.json
//     last, so a directory an attempt is writing holds an object younger
//     than the attempt, and meta.json appears before the attempt ends. A
//     directory whose newest object is older than the grace period is
//     therefore written by no attempt still running, and no later attempt
//     writes it: an ingester retries an upload under a new block ID
//     (ingester.uploadID) and restarts cut new IDs; compaction outputs,
//     whose IDs a retried job reuses, are written by a compaction loop: by
//     this same loop, never while its janitor runs, when one compactor
//     owns both the tenant and the job's window. A block directory that
//     holds meta.json (even unreadable) or meta.compacted.json is never
//     the janitor's. With several compactors the janitor of the tenant's
//     owner runs beside the job owners' loops, so it never deletes the
//     directory of the output of a job it plans itself (OutputID of
//     Plan's jobs): a job retried under its derived ID after a crash is
//     that job. Known gap: if the two compactors' views of the tenant's
//     blocks differ (one polled a new block of the window, the other not)
//     their plans may differ, and a retry more than partial_block_grace
//     after the crash that left its output half written could have
//     objects it just rewrote deleted by a janitor that listed them just
//     before. This needs a crash, no retry for longer than the grace
//     period, differing plans, and the deletions landing during the
//     retry's upload.
//   - Retention: a live block whose EndTime is older than block_retention
//     (or the tenant's compaction.block_retention override) is marked
//     compacted, then deleted like any compacted block.
//
// Sharding (ring.go): every compactor joins the compactor ring (dskit
// BasicLifecycler, ring and key "compactor", 512 tokens, ACTIVE on join,
// leaves on stop, auto-forgets instances silent for two heartbeat
// timeouts). A key's owner is the ACTIVE instance owning the token its
// FNV-1a hash falls on; a ring lookup error means nobody acts on the key
// this round.
//
//   - Jobs: a compactor runs a job only if it owns JobKey (tenant and
//     compaction window start). Plan is a pure function of the metas, so
//     compactors with the same view plan the same jobs and each runs its
//     own; blocks of one (tenant, window) are only ever merged by its one
//     owner, and no block is an input of two owners' jobs.
//   - Tenants: the owner of TenantKey alone writes the tenant's index
//     (at its polls, after its jobs and retention), applies retention and
//     runs the janitor; a non-owner's compaction reaches the index at the
//     owner's next poll (queriers also fall back to listing a stale index).
//   - Ownership changes mid-job: ownership is asked again after the
//     output is written and before any input is marked; a job that moved
//     leaves its inputs unmarked and its output live (copies queries
//     deduplicate), and the new owner's next compaction of the window
//     merges them (with the same inputs, OutputID is the same block).
//   - Double compaction is safe, whatever the interleaving: an input is
//     marked only after an output holding all its spans is complete, and a
//     block is deleted only after it is marked. Two compactors running the
//     same job write the same output ID with the same data (merging is
//     deterministic; only meta.json's createdAt differs), so one block
//     remains. Two jobs sharing inputs (compactors with different views of
//     the ring, both past the re-check) leave both outputs live with some
//     spans in each: nothing is lost, queries return each span once, and
//     the next compaction of the window stores each span once again.
//   - Single binary: the inmemory ring holds this one compactor, which
//     owns everything (behaviour as before sharding). A compactor used
//     without starting its service (RunOnce, Compact; tests and tools)
//     has no ring and acts alone.
package compactor
