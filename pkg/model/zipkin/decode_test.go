package zipkin

import (
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	zkmodel "github.com/openzipkin/zipkin-go/model"
	"github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"github.com/stretchr/testify/require"
)

// models returns realistic spans as zipkin-go builds them.
func models(n int) []*zkmodel.SpanModel {
	out := make([]*zkmodel.SpanModel, 0, n)
	for i := 0; i < n; i++ {
		parent := zkmodel.ID(1000 + i)
		m := &zkmodel.SpanModel{
			SpanContext: zkmodel.SpanContext{
				TraceID:  zkmodel.TraceID{High: uint64(i % 2), Low: 0xdeadbeef + uint64(i/10)},
				ID:       zkmodel.ID(2000 + i),
				ParentID: &parent,
			},
			Name:      fmt.Sprintf("get /api/items/%d", i%7),
			Kind:      []zkmodel.Kind{zkmodel.Client, zkmodel.Server, zkmodel.Producer, zkmodel.Consumer, zkmodel.Undetermined}[i%5],
			Timestamp: time.UnixMicro(1_700_000_000_000_000 + int64(i)*1000),
			Duration:  time.Duration(i+1) * 1234 * time.Microsecond,
			LocalEndpoint: &zkmodel.Endpoint{
				ServiceName: fmt.Sprintf("svc-%d", i%2), IPv4: net.ParseIP("10.1.2.3").To4(), Port: 8080,
			},
			RemoteEndpoint: &zkmodel.Endpoint{ServiceName: "postgres", IPv6: net.ParseIP("2001:db8::1"), Port: 5432},
			Annotations: []zkmodel.Annotation{
				{Timestamp: time.UnixMicro(1_700_000_000_000_100 + int64(i)*1000), Value: "cache.miss"},
			},
			Tags: map[string]string{
				"http.method": "GET", "http.path": fmt.Sprintf("/api/items/%d", i), "http.status_code": "200",
				"component": "net/http", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "db.statement": "SELECT * FROM items WHERE id = $1",
			},
		}
		if i%3 == 0 {
			m.Tags["error"] = "true"
		}
		out = append(out, m)
	}
	return out
}

func TestDecodeJSONV2MatchesProto(t *testing.T) {
	ms := models(20)
	js, err := json.Marshal(ms)
	require.NoError(t, err)
	pb, err := zipkin_proto3.SpanSerializer{}.Serialize(ms)
	require.NoError(t, err)

	fromJSON, err := DecodeJSONV2(js, nil)
	require.NoError(t, err)
	fromProto, err := DecodeProtoV2(pb, nil)
	require.NoError(t, err)
	require.Len(t, fromJSON, len(ms))
	for i, m := range ms {
		for _, s := range []Span{fromJSON[i], fromProto[i]} {
			require.Equal(t, m.TraceID.High, s.TraceIDHigh)
			require.Equal(t, m.TraceID.Low, s.TraceIDLow)
			require.Equal(t, uint64(m.ID), s.ID)
			require.Equal(t, uint64(*m.ParentID), s.ParentID)
			require.Equal(t, m.Name, s.Name)
			require.Equal(t, uint64(m.Timestamp.UnixMicro()), s.Timestamp)
			require.Equal(t, uint64(m.Duration/time.Microsecond), s.Duration)
			require.Equal(t, m.LocalEndpoint.ServiceName, s.Local.ServiceName)
			require.Equal(t, "10.1.2.3", s.Local.IPv4)
			require.Equal(t, int32(8080), s.Local.Port)
			require.Equal(t, "2001:db8::1", s.Remote.IPv6)
			require.Equal(t, "cache.miss", s.Annotations[0].Value)
			tags := map[string]string{}
			for _, tg := range s.Tags {
				tags[tg.Key] = tg.Value
			}
			require.Equal(t, m.Tags, tags)
			wantKind := map[zkmodel.Kind]Kind{zkmodel.Client: KindClient, zkmodel.Server: KindServer, zkmodel.Producer: KindProducer, zkmodel.Consumer: KindConsumer, zkmodel.Undetermined: KindUnspecified}[m.Kind]
			require.Equal(t, wantKind, s.Kind)
		}
	}
}

func TestDecodeJSONV2Lenient(t *testing.T) {
	spans, err := DecodeJSONV2([]byte(`[{"traceId":"abc","id":"1","parentId":"","tags":{"n":200,"b":false,"x":null},"localEndpoint":null,"unknown":[1]}]`), nil)
	require.NoError(t, err)
	require.Equal(t, uint64(0xabc), spans[0].TraceIDLow)
	require.Equal(t, []Tag{{"n", "200"}, {"b", "false"}}, spans[0].Tags)
}

func TestDecodeErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"empty":          ``,
		"object":         `{}`,
		"null":           `null`,
		"no trace id":    `[{"id":"1"}]`,
		"no id":          `[{"traceId":"1"}]`,
		"long trace id":  `[{"traceId":"123456789012345678901234567890123","id":"1"}]`,
		"long span id":   `[{"traceId":"1","id":"12345678901234567"}]`,
		"non hex":        `[{"traceId":"xyz","id":"1"}]`,
		"bad kind":       `[{"traceId":"1","id":"1","kind":"SIDEWAYS"}]`,
		"object tag":     `[{"traceId":"1","id":"1","tags":{"a":{}}}]`,
		"bad port":       `[{"traceId":"1","id":"1","localEndpoint":{"port":70000}}]`,
		"null span":      `[null]`,
		"trailing":       `[] x`,
		"negative stamp": `[{"traceId":"1","id":"1","timestamp":-5}]`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseJSONV2([]byte(doc))
			require.ErrorIs(t, err, ErrInvalid)
			switch name {
			case "bad kind", "object tag", "bad port": // v2-only fields, skipped by v1
			default:
				_, err = ParseJSONV1([]byte(doc))
				require.ErrorIs(t, err, ErrInvalid)
			}
		})
	}
	for name, p := range map[string][]byte{
		"truncated tag":   {0x0a},
		"bad trace id":    {0x0a, 0x04, 0x0a, 0x02, 0x01, 0x02},
		"missing ids":     {0x0a, 0x02, 0x2a, 0x00},
		"bad wire type":   {0x0f},
		"truncated bytes": {0x0a, 0x05, 0x01},
	} {
		t.Run("proto "+name, func(t *testing.T) {
			_, err := ParseProtoV2(p)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}
}

const v1Doc = `[{
  "traceId":"5af7183fb1d4cf5f","name":"get /","id":"6b221d5bc9e6496c","parentId":"5af7183fb1d4cf5f",
  "annotations":[
    {"timestamp":1000,"value":"cs","endpoint":{"serviceName":"frontend","ipv4":"192.168.99.1","port":3306}},
    {"timestamp":1500,"value":"sr","endpoint":{"serviceName":"backend","ipv4":"192.168.99.2"}},
    {"timestamp":1700,"value":"cache.hit","endpoint":{"serviceName":"frontend"}},
    {"timestamp":2500,"value":"ss","endpoint":{"serviceName":"backend"}},
    {"timestamp":3000,"value":"cr","endpoint":{"serviceName":"frontend"}}
  ],
  "binaryAnnotations":[
    {"key":"http.path","value":"/api","endpoint":{"serviceName":"frontend"}},
    {"key":"retries","value":3},
    {"key":"sa","value":true,"endpoint":{"serviceName":"backend","ipv4":"192.168.99.2","port":9000}},
    {"key":"ca","value":true,"endpoint":{"serviceName":"frontend","ipv4":"192.168.99.1"}}
  ]
},{
  "traceId":"5af7183fb1d4cf5f","name":"local","id":"0000000000000001","timestamp":10,"duration":5,
  "binaryAnnotations":[{"key":"lc","value":"worker","endpoint":{"serviceName":"batch"}}]
}]`

func TestDecodeJSONV1(t *testing.T) {
	spans, err := DecodeJSONV1([]byte(v1Doc), nil)
	require.NoError(t, err)
	require.Len(t, spans, 3)
	c, s, l := spans[0], spans[1], spans[2]

	require.Equal(t, KindClient, c.Kind)
	require.Equal(t, "frontend", c.Local.ServiceName)
	require.Equal(t, uint64(1000), c.Timestamp)
	require.Equal(t, uint64(2000), c.Duration)
	require.Equal(t, Endpoint{ServiceName: "backend", IPv4: "192.168.99.2", Port: 9000}, c.Remote)
	require.Equal(t, []Annotation{{1700, "cache.hit"}}, c.Annotations)
	require.Equal(t, []Tag{{"http.path", "/api"}, {"retries", "3"}}, c.Tags)

	require.Equal(t, KindServer, s.Kind)
	require.True(t, s.Shared)
	require.Equal(t, "backend", s.Local.ServiceName)
	require.Equal(t, uint64(1500), s.Timestamp)
	require.Equal(t, uint64(1000), s.Duration)
	require.Equal(t, "frontend", s.Remote.ServiceName)
	require.Equal(t, c.ID, s.ID)

	require.Equal(t, KindUnspecified, l.Kind)
	require.Equal(t, "batch", l.Local.ServiceName)
	require.Equal(t, uint64(10), l.Timestamp)
	require.Equal(t, []Tag{{"lc", "worker"}}, l.Tags)

	req, err := ParseJSONV1([]byte(v1Doc))
	require.NoError(t, err)
	require.Len(t, req.ResourceSpans, 3) // frontend, backend, batch
}
