// Package zipkin decodes Zipkin spans (v2 JSON, v2 protobuf "proto3", v1
// JSON) and converts them to OTLP, following the OpenTelemetry Collector's
// zipkinv2 translator as Tempo vendors it. The rules are listed one by one in
// pkg/model/RECEIVERS.md.
//
// Decoding first fills Span (a flat, Zipkin-v2-shaped struct; v1 spans are
// turned into it by the v1 rules), then ToOTLP converts a batch. The parsers
// never panic on any input and report malformed input with an error wrapping
// ErrInvalid; semantic oddities that Zipkin itself tolerates (no timestamp,
// parentId equal to id, unknown kind) are converted, not refused.
//
// Zipkin "shared" spans (a server span reusing its client's span ID) are not
// rewritten at ingest, exactly as Tempo: shared is dropped and the two spans
// keep one ID; the query path dedupes them.
package zipkin
