// Package worker is the querier's side of the query-frontend: it keeps
// `querier.frontend_worker.parallelism` Process streams open to every
// query-frontend that `frontend_address` names, runs each job it is sent
// against the local querier (querier.(*Querier).RunJob) and sends the answer
// back on the same stream.
//
// Frontends: frontend_address is resolved when the worker starts and every
// `dns_lookup_duration` (Tempo's key, 10 s) with dskit's dns package:
// host:port and dns+host:port take every A/AAAA record of host (a headless
// Service names every frontend pod), dnssrv+name and dnssrvnoa+name take SRV
// records, and an ip:port is used as is. Each distinct address resolved is
// one frontend with its own gRPC connection and streams;
// rubato_querier_worker_frontends counts them.
//
// Invariants:
//   - A stream carries one job at a time (the frontend sends the next only
//     after the answer), so parallelism bounds the jobs this querier runs
//     for each frontend: parallelism × frontends in all.
//   - Every job sent is answered exactly once while the stream lives, with
//     its result or its error and gRPC code; a cancel from the frontend
//     cancels the job's context, and the (now useless) answer is still sent
//     so the stream is free again.
//   - A frontend that a lookup no longer returns is drained, not cut off:
//     its streams run no further job, each closes its side once its running
//     job is answered (the frontend ends the stream at that io.EOF and gives
//     a job it sent meanwhile to another worker, not counted as a retry), and
//     its connection closes after its last stream. A frontend that does not
//     end a closed stream within 5 s is cut off, and a stream still opening
//     (an unreachable address) is given up at once.
//   - A failed lookup keeps the frontends resolved before
//     (rubato_querier_worker_dns_failures_total); a lookup that succeeds with
//     no address drains them all.
//   - A broken stream cancels the job running on it; the frontend gives
//     that job to another worker. The worker reconnects with backoff while
//     the frontend is resolved. Stopping the worker cancels every running
//     job (the frontends retry them elsewhere) and waits for every stream
//     and job goroutine and closes every connection.
package worker
