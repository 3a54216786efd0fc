package jaeger

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// gogoCodec marshals gogo-generated messages with their own methods and
// anything else with google.golang.org/protobuf.
type gogoCodec struct{}

var _ encoding.Codec = gogoCodec{}

type gogoMessage interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

func (gogoCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case gogoMessage:
		return m.Marshal()
	case proto.Message:
		return proto.Marshal(m)
	case protoadapt.MessageV1:
		return proto.Marshal(protoadapt.MessageV2Of(m))
	}
	return nil, fmt.Errorf("jaeger codec: cannot marshal %T", v)
}

func (gogoCodec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case gogoMessage:
		return m.Unmarshal(data)
	case proto.Message:
		return proto.Unmarshal(data, m)
	case protoadapt.MessageV1:
		return proto.Unmarshal(data, protoadapt.MessageV2Of(m))
	}
	return fmt.Errorf("jaeger codec: cannot unmarshal into %T", v)
}

// Name is "proto": clients send application/grpc+proto (or no subtype).
func (gogoCodec) Name() string { return "proto" }
