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
// Unknown fields are skipped (forward compatibility, as the Collector does).
// Invariants: Decode never panics; on any syntax or value error it returns an
// error wrapping ErrInvalid and no request.
package otlpjson
