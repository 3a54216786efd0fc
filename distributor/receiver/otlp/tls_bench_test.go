package otlp

import (
	"context"
	"testing"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/distributor/receiver/tlstest"
	"github.com/rubatodb/rubato/pkg/model/modeltest"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// BenchmarkExportGRPC measures one OTLP gRPC Export of 100 spans over a
// kept-alive connection, in plaintext, TLS and mutual TLS (the handshake is
// paid once; this is the per-request cost of the record layer).
func BenchmarkExportGRPC(b *testing.B) {
	certs := tlstest.New(b, b.TempDir())
	req := modeltest.Request(1, 100)
	for _, bc := range []struct {
		name   string
		server *receiver.TLSConfig
		client credentials.TransportCredentials
	}{
		{"plaintext", nil, insecure.NewCredentials()},
		{"tls", &receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile}, credentials.NewTLS(certs.ClientTLS(nil))},
		{"mtls", &receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile, ClientCAFile: certs.CAFile}, credentials.NewTLS(certs.ClientTLS(&certs.Client))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			nop := receiver.ConsumerFunc(func(context.Context, *coltracepb.ExportTraceServiceRequest) (int64, string, error) { return 0, "", nil })
			r, err := New(Config{GRPC: &GRPCConfig{Endpoint: "127.0.0.1:0", MaxRecvMsgSizeMiB: 4, TLS: bc.server}},
				nop, tenant.Resolver{}, log.NewNopLogger(), prometheus.NewRegistry())
			require.NoError(b, err)
			require.NoError(b, services.StartAndAwaitRunning(context.Background(), r))
			defer func() { require.NoError(b, services.StopAndAwaitTerminated(context.Background(), r)) }()
			conn, err := grpc.NewClient(r.GRPCAddr().String(), grpc.WithTransportCredentials(bc.client))
			require.NoError(b, err)
			defer conn.Close()
			client := coltracepb.NewTraceServiceClient(conn)
			_, err = client.Export(context.Background(), req)
			require.NoError(b, err)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := client.Export(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
