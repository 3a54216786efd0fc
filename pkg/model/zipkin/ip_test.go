package zipkin

import (
	"encoding/json"
	"net"
	"testing"
	"time"

	zkmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"github.com/stretchr/testify/require"
)

// TestIPv4MappedAddresses: zipkin-go's proto encoder sends an endpoint's
// net.IP as it is, so an address from net.ParseIP or net.IPv4 arrives as 16
// bytes in the ipv4 field. It must read as the IPv4 address, as the JSON
// encoding of the same span does (it was "::ffff:10.0.0.1").
func TestIPv4MappedAddresses(t *testing.T) {
	ms := []*zkmodel.SpanModel{{
		SpanContext:    zkmodel.SpanContext{TraceID: zkmodel.TraceID{Low: 1}, ID: 2},
		Timestamp:      time.UnixMicro(1_700_000_000_000_000),
		LocalEndpoint:  &zkmodel.Endpoint{ServiceName: "a", IPv4: net.ParseIP("10.0.0.1")},
		RemoteEndpoint: &zkmodel.Endpoint{ServiceName: "b", IPv4: net.IPv4(10, 0, 0, 2), IPv6: net.ParseIP("::ffff:10.0.0.3")},
	}}
	require.Len(t, ms[0].LocalEndpoint.IPv4, net.IPv6len)
	pb, err := zipkin_proto3.SpanSerializer{}.Serialize(ms)
	require.NoError(t, err)
	js, err := json.Marshal(ms)
	require.NoError(t, err)
	fromProto, err := DecodeProtoV2(pb, nil)
	require.NoError(t, err)
	fromJSON, err := DecodeJSONV2(js, nil)
	require.NoError(t, err)
	for _, s := range []Span{fromProto[0], fromJSON[0]} {
		require.Equal(t, "10.0.0.1", s.Local.IPv4)
		require.Equal(t, "10.0.0.2", s.Remote.IPv4)
		require.Equal(t, "10.0.0.3", s.Remote.IPv6)
	}
}
