package otlp

import (
	"context"
	"fmt"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// gRPC-go answers a request its codec cannot decode with codes.Internal,
// but the OTLP spec wants InvalidArgument for malformed data (it tells the
// client not to retry). So Export is registered with a hand-written service
// descriptor whose handler receives the raw bytes (rawCodec passes them
// through) and decodes them itself.

// rawRequest carries an undecoded request body.
type rawRequest struct{ b []byte }

// rawCodec is the server codec of the OTLP gRPC server: it hands bodies of
// *rawRequest through untouched and encodes responses as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("otlp codec: cannot encode %T", v)
	}
	return proto.Marshal(m)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case *rawRequest:
		// grpc reuses data after Unmarshal returns: keep a copy.
		m.b = append(m.b[:0], data...)
		return nil
	case proto.Message:
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("otlp codec: cannot decode into %T", v)
}

func (rawCodec) Name() string { return "proto" }

type exporter interface {
	Export(context.Context, *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error)
}

var traceServiceDesc = grpc.ServiceDesc{
	ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
	HandlerType: (*exporter)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var raw rawRequest
			if err := dec(&raw); err != nil {
				return nil, err
			}
			s := srv.(*traceService)
			if rc, ok := s.sink.Raw(); ok {
				return s.exportRaw(ctx, rc, raw.b)
			}
			req := &coltracepb.ExportTraceServiceRequest{}
			if err := proto.Unmarshal(raw.b, req); err != nil {
				s.sink.Malformed()
				return nil, status.Errorf(codes.InvalidArgument, "malformed OTLP protobuf: %v", err)
			}
			return s.Export(ctx, req)
		},
	}},
	Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}
