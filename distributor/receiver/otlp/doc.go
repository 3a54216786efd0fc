// Package otlp receives OTLP traces over gRPC
// (opentelemetry.proto.collector.trace.v1.TraceService/Export, gzip
// compression accepted) and over HTTP (POST /v1/traces, protobuf or JSON,
// gzip/deflate/zstd bodies), and hands them unchanged to a receiver.Consumer.
//
// Config has one field per transport; nil means the transport is off, so a
// Tempo config listing only `grpc:` starts only the gRPC server.
//
// HTTP answers follow the OTLP specification: 200 with an
// ExportTraceServiceResponse in the request's content type (partial_success
// set when the Consumer rejected some spans); 400 malformed body; 405 method
// not POST; 413 body over max_request_body_size, compressed or once
// decompressed; 415 content type or encoding not supported; 401/400 missing or
// invalid tenant; 429 (with Retry-After)/413/503/500 from the Consumer's
// gRPC code (receiver.HTTPStatus). Error bodies are google.rpc.Status in
// the request's content type (protobuf unless it was JSON), details
// included. Over gRPC the Consumer's status is returned as it is,
// google.rpc.RetryInfo included.
//
// Invariant: success is answered only after Consumer.Consume returned nil.
package otlp
