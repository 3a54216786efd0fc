// Package worker is the querier's side of the query-frontend: it keeps
// `querier.frontend_worker.parallelism` Process streams open to the frontend
// at `frontend_address`, runs each job it is sent against the local querier
// (querier.(*Querier).RunJob) and sends the answer back on the same stream.
//
// Invariants:
//   - A stream carries one job at a time (the frontend sends the next only
//     after the answer), so parallelism bounds the jobs this querier runs
//     for the frontend.
//   - Every job sent is answered exactly once while the stream lives, with
//     its result or its error and gRPC code; a cancel from the frontend
//     cancels the job's context, and the (now useless) answer is still sent
//     so the stream is free again.
//   - A broken stream cancels the job running on it; the frontend gives
//     that job to another worker. The worker reconnects with backoff until
//     it is stopped; stopping waits for every job goroutine.
package worker
