// Package zipkin receives Zipkin spans over HTTP, mounted at the root as the
// Collector's receiver is: POST /api/v1/spans reads v1 JSON; any other path
// (normally /api/v2/spans) reads v2 JSON, or v2 protobuf when Content-Type
// is application/x-protobuf. Bodies may be gzip, deflate/zlib or zstd
// encoded. Spans are converted by pkg/model/zipkin and handed to a
// receiver.Consumer.
//
// Answers: 202 Accepted once the Consumer accepted the batch (Zipkin has no
// partial success: spans the Consumer rejected are counted in
// rubato_receiver_refused_spans_total and the client still sees 202); 400
// malformed; 405 not POST; 413 body too large (compressed or decompressed);
// 415 v1 Thrift or an unknown encoding; 401/400 tenant; 429/503/500 from the
// Consumer. Error bodies are plain text.
package zipkin
