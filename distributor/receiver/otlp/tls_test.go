package otlp

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/rubatodb/rubato/distributor/receiver"
	"github.com/rubatodb/rubato/distributor/receiver/internal/receivertest"
	"github.com/rubatodb/rubato/distributor/receiver/tlstest"
	"github.com/rubatodb/rubato/pkg/tenant"
)

func startTLS(t *testing.T, tc *receiver.TLSConfig) (*Receiver, *receivertest.Recorder) {
	t.Helper()
	rec := &receivertest.Recorder{}
	cfg := Config{
		GRPC: &GRPCConfig{Endpoint: "127.0.0.1:0", MaxRecvMsgSizeMiB: 4, TLS: tc},
		HTTP: &HTTPConfig{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1 << 20, TLS: tc},
	}
	r, err := New(cfg, rec, tenant.Resolver{}, log.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r)) })
	return r, rec
}

// exporters builds the SDK's gRPC and HTTP exporters for r, over TLS with
// clientTLS, or in plaintext when clientTLS is nil. Retries are off, so a
// refused export fails at once.
func exporters(t *testing.T, r *Receiver, clientTLS *tls.Config) map[string]sdktrace.SpanExporter {
	t.Helper()
	ctx := context.Background()
	gopts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(r.GRPCAddr().String()),
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}), otlptracegrpc.WithTimeout(5 * time.Second)}
	hopts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(r.HTTPAddr().String()),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}), otlptracehttp.WithTimeout(5 * time.Second)}
	if clientTLS != nil {
		gopts = append(gopts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(clientTLS)))
		hopts = append(hopts, otlptracehttp.WithTLSClientConfig(clientTLS))
	} else {
		gopts = append(gopts, otlptracegrpc.WithInsecure())
		hopts = append(hopts, otlptracehttp.WithInsecure())
	}
	g, err := otlptracegrpc.New(ctx, gopts...)
	require.NoError(t, err)
	h, err := otlptracehttp.New(ctx, hopts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = g.Shutdown(ctx); _ = h.Shutdown(ctx) })
	return map[string]sdktrace.SpanExporter{"grpc": g, "http": h}
}

func oneSpan() []sdktrace.ReadOnlySpan {
	return tracetest.SpanStubs{{
		Name: "refused",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled}),
		StartTime: time.Now(), EndTime: time.Now(),
	}}.Snapshots()
}

func TestTLSWithSDKExporters(t *testing.T) {
	certs := tlstest.New(t, t.TempDir())
	r, rec := startTLS(t, &receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile})
	for name, exp := range exporters(t, r, certs.ClientTLS(nil)) {
		t.Run(name, func(t *testing.T) {
			before := len(rec.Spans())
			sent := receivertest.EmitSDKSpans(t, exp, receivertest.SDKOptions{})
			got := rec.WaitSpans(t, before+len(sent))
			for _, s := range sent {
				_, ok := got[s.SpanContext().SpanID().String()]
				require.True(t, ok, "span %s not received over TLS", s.SpanContext().SpanID())
			}
		})
	}
	// A plaintext client gets nothing in.
	for name, exp := range exporters(t, r, nil) {
		before := len(rec.Calls())
		require.Error(t, exp.ExportSpans(context.Background(), oneSpan()), "plaintext %s export must fail against a TLS receiver", name)
		require.Len(t, rec.Calls(), before, "plaintext %s reached the consumer", name)
	}
	// A client that does not trust the server's CA refuses the handshake.
	untrusting := &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	for name, exp := range exporters(t, r, untrusting) {
		require.Error(t, exp.ExportSpans(context.Background(), oneSpan()), "%s: unknown CA accepted", name)
	}
}

func TestMutualTLS(t *testing.T) {
	certs := tlstest.New(t, t.TempDir())
	r, rec := startTLS(t, &receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile, ClientCAFile: certs.CAFile, MinVersion: "1.3"})
	for name, exp := range exporters(t, r, certs.ClientTLS(&certs.Client)) {
		before := len(rec.Calls())
		require.NoError(t, exp.ExportSpans(context.Background(), oneSpan()), name)
		require.Len(t, rec.Calls(), before+1, name)
	}
	for _, client := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", certs.ClientTLS(nil)},
		{"certificate from an untrusted CA", certs.ClientTLS(&certs.Stranger)},
		{"plaintext", nil},
	} {
		for name, exp := range exporters(t, r, client.cfg) {
			before := len(rec.Calls())
			require.Error(t, exp.ExportSpans(context.Background(), oneSpan()), "%s over %s accepted", client.name, name)
			require.Len(t, rec.Calls(), before, "%s over %s reached the consumer", client.name, name)
		}
	}
	// TLS 1.2 is below min_version 1.3.
	old := certs.ClientTLS(&certs.Client)
	old.MaxVersion = tls.VersionTLS12
	for name, exp := range exporters(t, r, old) {
		require.Error(t, exp.ExportSpans(context.Background(), oneSpan()), "TLS 1.2 over %s accepted with min_version 1.3", name)
	}
}

// TestTLSUnloadableRefusesToStart pins that a tls block that cannot be
// honoured never degrades to a plaintext listener: New fails, and so does
// starting a receiver whose files vanished after New.
func TestTLSUnloadableRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	certs := tlstest.New(t, dir)
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate"), 0o600))
	for _, tc := range []struct {
		name string
		tls  receiver.TLSConfig
		want string
	}{
		{"missing cert file", receiver.TLSConfig{CertFile: filepath.Join(dir, "nope.pem"), KeyFile: certs.KeyFile}, "nope.pem"},
		{"missing key file", receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: filepath.Join(dir, "nokey.pem")}, "nokey.pem"},
		{"empty block", receiver.TLSConfig{}, "cert_file and key_file are required"},
		{"key without cert", receiver.TLSConfig{KeyFile: certs.KeyFile}, "cert_file and key_file are required"},
		{"garbage cert", receiver.TLSConfig{CertFile: garbage, KeyFile: certs.KeyFile}, "garbage.pem"},
		{"missing client CA", receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile, ClientCAFile: filepath.Join(dir, "noca.pem")}, "client_ca_file"},
		{"client CA without certificates", receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile, ClientCAFile: garbage}, "no PEM certificate"},
		{"bad min_version", receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile, MinVersion: "TLS13"}, "min_version"},
		{"max below min", receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile, MinVersion: "1.3", MaxVersion: "1.2"}, "max_version"},
		{"unknown cipher", receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile, CipherSuites: []string{"TLS_RSA_WITH_RC4_128_SHA"}}, "cipher_suites"},
	} {
		for _, transport := range []string{"grpc", "http"} {
			t.Run(tc.name+"/"+transport, func(t *testing.T) {
				tlsCfg := tc.tls
				cfg := Config{}
				if transport == "grpc" {
					cfg.GRPC = &GRPCConfig{Endpoint: "127.0.0.1:0", MaxRecvMsgSizeMiB: 4, TLS: &tlsCfg}
				} else {
					cfg.HTTP = &HTTPConfig{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1 << 20, TLS: &tlsCfg}
				}
				_, err := New(cfg, &receivertest.Recorder{}, tenant.Resolver{}, log.NewNopLogger(), prometheus.NewRegistry())
				require.ErrorContains(t, err, tc.want)
				require.ErrorContains(t, err, "otlp "+transport)
			})
		}
	}
	// Files that vanish between validation and start: the start fails and
	// nothing listens.
	moved := t.TempDir()
	certs = tlstest.New(t, moved)
	cfg := &receiver.TLSConfig{CertFile: certs.CertFile, KeyFile: certs.KeyFile}
	r, err := New(Config{GRPC: &GRPCConfig{Endpoint: "127.0.0.1:0", MaxRecvMsgSizeMiB: 4, TLS: cfg},
		HTTP: &HTTPConfig{Endpoint: "127.0.0.1:0", MaxRequestBodySize: 1 << 20, TLS: cfg}},
		&receivertest.Recorder{}, tenant.Resolver{}, log.NewNopLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, os.Remove(certs.CertFile))
	err = services.StartAndAwaitRunning(context.Background(), r)
	require.ErrorContains(t, err, "server.pem")
	require.Nil(t, r.GRPCAddr(), "no gRPC listener may be left behind")
	require.Nil(t, r.HTTPAddr(), "no HTTP listener may be left behind")
}
