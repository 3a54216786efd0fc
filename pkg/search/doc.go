// Package search runs TraceQL searches over every place a trace can be: it
// turns a query's conditions into block pushdown predicates, evaluates
// candidate traces exactly with traceql.Query.Eval, builds Tempo's
// TraceSearchMetadata, merges results from several sources, collects tag
// names and values, and splits a search into jobs (ingesters, batches of
// backend blocks) run with bounded concurrency.
//
// Invariants:
//   - Pushdown is only a pre-filter: a trace is reported iff Eval over the
//     candidate trace says it matches; predicates given to pkg/block never
//     exclude a trace that could match (conditions that cannot be expressed
//     safely are dropped, which only widens the candidate set).
//   - SearchBlock asks a block for only what Match reads of a candidate
//     (BlockFields, from traceql's Fields) and, for one filter's &&, for
//     candidates where one span may satisfy every condition (SameSpan);
//     Candidates returns whole traces (tag calls read every attribute).
//   - Results are merged by trace ID; a span appears at most once per
//     spanset, spansets are identified by their by() attributes, and at most
//     limit traces and spss spans per spanset are returned (0 = unbounded).
//   - Run never has more than its concurrency of jobs (goroutines) alive;
//     a limited search runs one block job at first and doubles that after
//     each block job that leaves the limit unmet (ingester jobs are not
//     held back). It
//     stops scheduling and cancels running jobs once limit traces are found,
//     and reports completedJobs/totalJobs in every progress message and the
//     final response. Jobs are plain values, so a query-frontend can ship
//     them to queriers. Block jobs of one Run in one process share a budget
//     of limit distinct traces and stop when it is spent, so a limited
//     search decodes about limit traces, not limit per job.
//   - Plan reads each block once: its ingester jobs carry the IDs of the
//     ingester-cut blocks its block jobs read (Job.SkipBlocks), and an
//     ingester leaves its local copies of those out; a block the plan does
//     not list is searched wherever it is.
//   - IDs are written as Tempo does: trace IDs in hex without leading zeros,
//     span IDs as 16 hex digits.
package search
