// Package querier answers trace-by-ID lookups from ingesters (recent data)
// and backend blocks, and serves Tempo's HTTP query API.
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
//     failed source is a 503, never a 404.
//   - Wire formats follow CONTRACT.md: the v2 trace endpoint always carries
//     field 1 (trace), and answers not-found with 200 and an empty trace; the
//     v1 endpoint answers 404.
package querier
