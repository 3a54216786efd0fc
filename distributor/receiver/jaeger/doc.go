// Package jaeger receives Jaeger spans on the collector's and the agent's
// transports and hands them, converted by pkg/model/jaeger, to a
// receiver.Consumer:
//
//   - gRPC jaeger.api_v2.CollectorService/PostSpans (14250), protobuf;
//   - Thrift over HTTP, POST /api/traces (14268), a Thrift-binary Batch with
//     Content-Type application/x-thrift or application/vnd.apache.thrift.binary,
//     answered 202 Accepted (as the Jaeger collector does), 400 for a bad body
//     or content type, 413 when too large;
//   - agent UDP: Agent.emitBatch in Thrift compact (6831) or binary (6832).
//
// Config has one field per transport; nil means off.
//
// UDP packets carry no tenant: they belong to tenant.SingleTenant when
// multitenancy is off, and are refused (counted, reason "tenant") when it is
// on. A malformed packet, one longer than max_packet_size, or one arriving
// while the queue is full is counted and dropped; the reader never stops on
// bad input. Packets are decoded and consumed by a fixed pool of workers.
//
// The api_v2 messages are gogo-protobuf generated (custom ID types), which
// grpc's default codec cannot marshal; the gRPC server uses a codec that calls
// the messages' own Marshal/Unmarshal (see codec.go).
package jaeger
