// Package rubatopb holds generated protobuf and gRPC code only: Tempo's query
// API messages (tempo.proto, proto package tempopb, wire-compatible with
// Grafana's Tempo datasource), Rubato's internal ingester API
// (rubato.proto) and the query-frontend's worker API (frontend.proto).
// Never edit the .pb.go files by hand; change the .proto files and run
// `go generate ./pkg/rubatopb` (needs protoc 3.21+, protoc-gen-go and
// protoc-gen-go-grpc).
//
// Invariant: field numbers are the wire contract and are never reused.
package rubatopb

//go:generate protoc -I . -I proto --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative tempo.proto rubato.proto frontend.proto
