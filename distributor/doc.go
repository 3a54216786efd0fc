// Package distributor receives spans from every protocol's receiver, applies
// per-tenant limits, splits each request by trace ID and pushes each trace
// to its ingesters, found on the dskit ring by hashing tenant and trace ID.
//
// Invariants:
//   - A request is answered with success only after every accepted span is
//     in the WAL of a quorum of its replicas (ring.DoBatch with
//     ring.WriteNoExtend: 2 of 3 with replication factor 3). Without a
//     quorum it fails with Unavailable (HTTP 503), which clients retry.
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
