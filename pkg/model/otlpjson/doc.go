// Package otlpjson decodes OTLP/JSON trace export requests
// (ExportTraceServiceRequest) as the OTLP specification writes them, which
// protojson cannot read: trace and span IDs are hex strings.
//
// Accepted spellings, all mixed freely within one document:
//   - field names in lowerCamelCase (the spec's spelling) and in the proto's
//     snake_case (trace_id, start_time_unix_nano, resource_spans, ...);
//   - traceId/spanId/parentSpanId as case-insensitive hex (32 and 16 digits),
//     or "" for absent. Base64 IDs (protojson's spelling of bytes fields) are
//     refused with an error, as the OTLP spec and the OpenTelemetry Collector
//     do: a 24-character base64 trace ID could be silently misread otherwise;
//   - enums (kind, status.code) as integers or as their proto names
//     ("SPAN_KIND_SERVER", "STATUS_CODE_ERROR");
//   - 64-bit integers (timestamps, intValue) as JSON numbers or strings;
//     doubles as numbers or the strings "NaN", "Infinity", "-Infinity";
//   - bytesValue as standard or URL-safe base64, padded or not;
//   - null wherever a value may appear, read as absent.
//
// Unknown fields are skipped (forward compatibility, as the Collector does),
// and so is an enum name this OTLP version does not know.
//
// Strictness: Decode accepts exactly what encoding/json's grammar and
// protojson accept once the hex IDs are mapped to base64 (IDs of the wrong
// length aside), and reads it into the same message. So it refuses what
// JSON refuses (leading zeros, invalid UTF-8, control characters) and what
// protojson refuses: a field given twice in any spelling, two members of
// the AnyValue oneof, null among the elements of an array, a string where a
// bool goes, and a quoted number that a bare one could not spell. The
// differential fuzz target FuzzDecodeMatchesProtojson (reference in
// reference_test.go) checks this on every input.
//
// Invariants: Decode never panics; on any syntax or value error it returns an
// error wrapping ErrInvalid and no request.
package otlpjson
