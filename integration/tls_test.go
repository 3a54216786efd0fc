package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/rubatodb/rubato/distributor/receiver/tlstest"
)

// tlsReceivers is distributor.receivers with mutual TLS on OTLP gRPC and
// HTTP and plain TLS on Zipkin; %[1]s is the certificate directory.
const tlsReceivers = `    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:{{.OTLPGRPC}}
          tls:
            cert_file: %[1]s/server.pem
            key_file: %[1]s/server-key.pem
            client_ca_file: %[1]s/ca.pem
        http:
          endpoint: 127.0.0.1:{{.OTLPHTTP}}
          tls:
            cert_file: %[1]s/server.pem
            key_file: %[1]s/server-key.pem
            client_ca_file: %[1]s/ca.pem
            min_version: "1.3"
    zipkin:
      endpoint: 127.0.0.1:{{.Zipkin}}
      tls:
        cert_file: %[1]s/server.pem
        key_file: %[1]s/server-key.pem`

// sdkExporter is the OpenTelemetry SDK's OTLP exporter over transport
// ("grpc" or "http"), with TLS from clientTLS or in plaintext when nil,
// without retries so a refusal shows at once.
func sdkExporter(t *testing.T, s *server, transport string, clientTLS *tls.Config) sdktrace.SpanExporter {
	t.Helper()
	ctx := context.Background()
	var (
		exp sdktrace.SpanExporter
		err error
	)
	if transport == "grpc" {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(s.otlpGRPC()), otlptracegrpc.WithTimeout(5 * time.Second),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false})}
		if clientTLS != nil {
			opts = append(opts, otlptracegrpc.WithTLSCredentials(credentials.NewTLS(clientTLS)))
		} else {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	} else {
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(s.otlpHTTP()), otlptracehttp.WithTimeout(5 * time.Second),
			otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false})}
		if clientTLS != nil {
			opts = append(opts, otlptracehttp.WithTLSClientConfig(clientTLS))
		} else {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	require.NoError(t, err)
	return exp
}

// TestReceiversTLS runs the binary with TLS receivers: the SDK's exporters
// with the CA-signed client certificate get their traces stored and read
// back; plaintext, certificate-less and untrusted clients store nothing.
func TestReceiversTLS(t *testing.T) {
	certDir := t.TempDir()
	certs := tlstest.New(t, certDir)
	s := startServer(t, options{Receivers: fmt.Sprintf(tlsReceivers, certDir)})
	require.Contains(t, s.logs.String(), "security=mtls", "the receivers say they serve mutual TLS")

	for _, transport := range []string{"grpc", "http"} {
		t.Run(transport, func(t *testing.T) {
			want := emitTraces(t, sdkExporter(t, s, transport, certs.ClientTLS(&certs.Client)), "tls-"+transport, 5).byTrace()
			require.Len(t, want, 5)
			for id, spans := range want {
				requireSameTrace(t, spans, s.traceByID(t, id[:], ""))
			}

			for name, cfg := range map[string]*tls.Config{
				"plaintext":             nil,
				"no client certificate": certs.ClientTLS(nil),
				"untrusted certificate": certs.ClientTLS(&certs.Stranger),
			} {
				id := trace.TraceID{0xee, byte(len(name)), 1, 2, 3}
				copy(id[8:], transport)
				stub := tracetest.SpanStubs{{Name: name, StartTime: time.Now(), EndTime: time.Now(),
					SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: id, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})}}
				exp := sdkExporter(t, s, transport, cfg)
				require.Error(t, exp.ExportSpans(context.Background(), stub.Snapshots()), "%s export over %s accepted", name, transport)
				_ = exp.Shutdown(context.Background())
				require.Nil(t, s.traceByID(t, id[:], ""), "%s over %s stored a trace", name, transport)
			}
		})
	}

	// Zipkin over TLS (no client certificate required there).
	body := `[{"traceId":"0af7651916cd43dd8448eb211c80319c","id":"b7ad6b7169203331","name":"get","timestamp":1700000000000000,"duration":10,"localEndpoint":{"serviceName":"api"}}]`
	rt := &http.Transport{TLSClientConfig: certs.ClientTLS(nil)}
	defer rt.CloseIdleConnections()
	resp, err := (&http.Client{Transport: rt}).Post(fmt.Sprintf("https://127.0.0.1:%d/api/v2/spans", s.ports.Zipkin), "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	resp, err = http.Post(fmt.Sprintf("http://127.0.0.1:%d/api/v2/spans", s.ports.Zipkin), "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "plaintext HTTP to the TLS port")
}

// TestReceiversTLSUnloadableRefusesToStart pins the case: a tls
// block whose files cannot be read stops the start with an error naming
// the file; no receiver ever listens in plaintext instead.
func TestReceiversTLSUnloadableRefusesToStart(t *testing.T) {
	certDir := t.TempDir()
	tlstest.New(t, certDir)
	for name, mutate := range map[string]func(){
		"missing cert": func() { require.NoError(t, os.Remove(filepath.Join(certDir, "server.pem"))) },
		"missing CA":   func() { require.NoError(t, os.Remove(filepath.Join(certDir, "ca.pem"))) },
	} {
		t.Run(name, func(t *testing.T) {
			tlstest.New(t, certDir) // fresh files, then break one
			mutate()
			dir := t.TempDir()
			grpcPort, httpPort := freePort(t), freePort(t)
			cfg := fmt.Sprintf(`server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %d
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:%d
          tls:
            cert_file: %[4]s/server.pem
            key_file: %[4]s/server-key.pem
            client_ca_file: %[4]s/ca.pem
storage:
  trace:
    local:
      path: %[5]s/blocks
    wal:
      path: %[5]s/wal
`, httpPort, freePort(t), grpcPort, certDir, dir)
			path := filepath.Join(dir, "rubato.yaml")
			require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
			done := make(chan struct{})
			var out string
			var runErr error
			go func() { out, runErr = runBinary(t, dir, "-config.file="+path); close(done) }()
			// While it runs (it must not, for long), nothing may accept a
			// plaintext connection on the receiver's port.
			deadline := time.After(30 * time.Second)
			for {
				select {
				case <-done:
					require.Error(t, runErr, "rubato started with an unloadable tls block:\n%s", out)
					require.Contains(t, out, certDir, "the error names the file")
					require.Contains(t, out, "tls")
					return
				case <-deadline:
					t.Fatal("rubato still running 30s after an unloadable tls block")
				default:
				}
				if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", grpcPort), 100*time.Millisecond); err == nil {
					c.Close()
					t.Fatalf("something listens on the TLS receiver's port although its certificates cannot load")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
