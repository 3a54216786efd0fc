// Package distributor receives spans from every protocol's receiver, applies
// per-tenant limits, splits each request by trace ID and pushes each trace
// to its ingesters, found on the dskit ring by hashing tenant and trace ID.
//
// Invariants:
//   - A request is answered with success only after every accepted span is
//     in the WAL of a quorum of its replicas (ring.DoBatch with
//     ring.WriteNoExtend: 2 of 3 with replication factor 3). Without a
//     quorum it fails with Unavailable (HTTP 503), which clients retry.
//   - One builder per trace (build_on_one_replica, the default, with a
//     replication factor above 1): of each fragment's replication set, the
//     first instance ring.Get returns builds it into blocks and the others
//     only hold it in their WAL (PushBytesRequest.hold) until the builder's
//     block is in the backend, so the cluster builds each span once rather
//     than once per replica (block building is most of an ingester's CPU).
//     Every replica of one push gets the same random nonzero pushID; with the
//     trace ID it names the fragment in ReleaseHeld and PromoteHeld. Off, or
//     at replication factor 1, no pushID and no hold: every replica builds.
//   - With one builder, success also requires every accepted fragment to be
//     in the WAL of a replica that builds it: after the quorum, push waits
//     for each builder's push, at most max(2 × the quorum's time,
//     minBuilderWait) and never past the push timeout; for each fragment
//     whose builder failed or has not answered it asks a replica that
//     succeeded the push, in replication-set order, to build it
//     (PromoteHeld, one call per replica, then the next replica if that
//     fails), before answering. If none can, the request fails with
//     Unavailable, as without a quorum. Otherwise an acknowledged trace
//     could exist only as held copies that nobody builds. A builder that
//     answers after its fragments were promoted builds them too: a
//     duplicate, which queries and compaction remove, never a loss.
//   - Fragments the builder refused (a limit) are reported refused, never
//     promoted, and released on the replicas holding them (best effort;
//     one not told builds them after its hold_timeout).
//   - Pushes to ingesters run on a context detached from the client's and
//     bounded by the push timeout (ingester_client.remote_timeout), so a
//     replica slower than the quorum still receives the write.
//   - Every push to an ingester is counted, by its ring address, in
//     rubato_distributor_ingester_appends_total and, when it fails (error
//     or push timeout), in rubato_distributor_ingester_append_failures_total,
//     also when the other replicas made the quorum.
//   - No span is dropped silently: every refused span is reported to the
//     client (an error, or an OTLP partial success with the count and the
//     reason) and counted exactly once in rubato_discarded_spans_total.
//   - All spans of one trace in one request reach the same ingesters, in one
//     fragment, encoded once.
//   - A rate-limited request is refused whole with ResourceExhausted
//     carrying google.rpc.RetryInfo (a delay from the tenant's limiter, or
//     the configured one), and takes no tokens. A request larger than the
//     tenant's burst can never pass and is refused permanently
//     (FailedPrecondition, HTTP 413, no RetryInfo), counted under its own
//     reason, request_too_large.
//   - The distributor talks to ingesters only through ingester/client (gRPC),
//     also in the single binary.
package distributor
