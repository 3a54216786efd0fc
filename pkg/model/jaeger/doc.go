// Package jaeger converts Jaeger spans to OTLP: Thrift batches (HTTP
// collector body, agent UDP emitBatch in compact or binary protocol) and
// protobuf batches (api_v2 gRPC collector). It follows the OpenTelemetry
// Collector's jaeger translator as Tempo vendors it; the rules are listed one
// by one in pkg/model/RECEIVERS.md.
//
// Invariants: decoders never panic on any input and bound every allocation
// by the input's size (Thrift containers cannot announce more elements than
// the message has bytes); errors wrap ErrInvalid. Converters accept any
// decoded batch, including nil processes, spans and tags. Tag types survive:
// bool, int64, float64 and binary tags become OTLP values of the same type.
package jaeger
