package jaeger

import (
	"context"
	"net/http"
	"testing"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	jmodel "github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/uber/jaeger-client-go/transport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/distributor/receiver/internal/receivertest"
	"github.com/rubatodb/rubato/distributor/receiver/tlstest"
	"github.com/rubatodb/rubato/pkg/tenant"
)

// TestTLS serves Jaeger gRPC and Thrift HTTP with mutual TLS: the Jaeger
// clients get in with the CA-signed certificate, and nothing gets in
// without one or in plaintext.
func TestTLS(t *testing.T) {
	certs := tlstest.New(t, t.TempDir())
	tc := &receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile, ClientCAFile: certs.CAFile}
	startTLS := func() *env {
		rec := &receivertest.Recorder{}
		r, err := New(Config{
			GRPC:       &GRPCConfig{Endpoint: "127.0.0.1:0", MaxRecvMsgSizeMiB: 4, TLS: tc},
			ThriftHTTP: &ThriftHTTPConfig{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1 << 20, TLS: tc},
		}, rec, tenant.Resolver{}, log.NewNopLogger(), prometheus.NewRegistry())
		require.NoError(t, err)
		require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
		t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) })
		return &env{r: r, rec: rec}
	}
	e := startTLS()
	dialTLS := func(creds credentials.TransportCredentials) api_v2.CollectorServiceClient {
		conn, err := grpc.NewClient(e.r.GRPCAddr().String(), grpc.WithTransportCredentials(creds),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(gogoCodec{})))
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		return api_v2.NewCollectorServiceClient(conn)
	}
	check(t, e, emit(t, &grpcSender{client: dialTLS(credentials.NewTLS(certs.ClientTLS(&certs.Client))), ctx: context.Background()}), tenant.SingleTenant)

	eh := startTLS()
	rt := &http.Transport{TLSClientConfig: certs.ClientTLS(&certs.Client)}
	defer rt.CloseIdleConnections()
	check(t, eh, emit(t, transport.NewHTTPTransport("https://"+eh.r.ThriftHTTPAddr().String()+"/api/traces", transport.HTTPRoundTripper(rt))), tenant.SingleTenant)
	r, rec := e.r, e.rec

	req := &api_v2.PostSpansRequest{Batch: jmodel.Batch{Spans: []*jmodel.Span{{TraceID: jmodel.NewTraceID(0, 1), SpanID: 1}}}}
	calls := len(rec.Calls())
	for name, creds := range map[string]credentials.TransportCredentials{
		"plaintext":      insecure.NewCredentials(),
		"no client cert": credentials.NewTLS(certs.ClientTLS(nil)),
		"stranger cert":  credentials.NewTLS(certs.ClientTLS(&certs.Stranger)),
	} {
		_, err := dialTLS(creds).PostSpans(context.Background(), req)
		require.Error(t, err, "grpc %s accepted", name)
	}
	for name, rt := range map[string]*http.Transport{
		"no client cert": {TLSClientConfig: certs.ClientTLS(nil)},
		"stranger cert":  {TLSClientConfig: certs.ClientTLS(&certs.Stranger)},
	} {
		resp, err := (&http.Client{Transport: rt}).Post("https://"+r.ThriftHTTPAddr().String()+"/api/traces", "application/x-thrift", nil)
		if err == nil {
			resp.Body.Close()
		}
		require.Error(t, err, "thrift_http %s accepted", name)
		rt.CloseIdleConnections()
	}
	resp, err := http.Post("http://"+r.ThriftHTTPAddr().String()+"/api/traces", "application/x-thrift", nil)
	require.NoError(t, err, "a plaintext request gets the TLS server's 400")
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Len(t, rec.Calls(), calls, "a refused client reached the consumer")
}

func TestTLSUnloadableRefusesToStart(t *testing.T) {
	bad := &receiver.TLSConfig{CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}
	for name, cfg := range map[string]Config{
		"jaeger grpc":        {GRPC: &GRPCConfig{Endpoint: "127.0.0.1:0", MaxRecvMsgSizeMiB: 4, TLS: bad}},
		"jaeger thrift_http": {ThriftHTTP: &ThriftHTTPConfig{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1, TLS: bad}},
	} {
		_, err := New(cfg, &receivertest.Recorder{}, tenant.Resolver{}, log.NewNopLogger(), prometheus.NewRegistry())
		require.ErrorContains(t, err, name)
		require.ErrorContains(t, err, "/nonexistent/cert.pem")
	}
}
