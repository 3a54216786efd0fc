package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/rubatodb/rubato/integration/minio"
)

func s3Storage(srv *minio.Server, bucket string) string {
	return fmt.Sprintf(`    backend: s3
    s3:
      bucket: %s
      endpoint: %s
      access_key: %s
      secret_key: %s
      insecure: true
      forcepathstyle: true
      region: us-east-1
      retry_max_attempts: 2`, bucket, srv.Endpoint, srv.AccessKey, srv.SecretKey)
}

func checkAll(t *testing.T, s *server, want map[trace.TraceID][]sdktrace.ReadOnlySpan, stage string) {
	t.Helper()
	for id, spans := range want {
		got := s.traceByID(t, id[:], "")
		if got == nil {
			t.Logf("server logs:\n%s", s.logs.String())
		}
		require.NotNil(t, got, "%s: trace %s not found", stage, id)
		requireSameTrace(t, spans, got)
	}
}

func body(t *testing.T, s *server, path string) string {
	t.Helper()
	_, b := get(t, s.url(path), "")
	return string(b)
}

// TestMinIOEndToEnd runs the real binary on a real MinIO: push, flush,
// restart with the WAL deleted and read every trace from the bucket; then
// stop MinIO during a flush: the ingester keeps the block and the WAL,
// /ready and the metrics say so, traces stay readable, a crash while MinIO
// is down loses nothing, and once MinIO is back every trace reaches it.
func TestMinIOEndToEnd(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t, "rubato")
	s := startServer(t, options{IdlePeriod: "1h", Storage: s3Storage(srv, bucket), Ingester: "  flush_retry_max_backoff: 500ms"})
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(s.otlpGRPC()), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	want := emitTraces(t, exp, "minio-a", 30).byTrace()
	s.flush(t)
	require.Positive(t, s.metric(t, "rubato_backend_requests_total", `backend="s3"`, `op="put"`, `status="ok"`))

	s.stop()
	require.NoError(t, os.RemoveAll(filepath.Join(s.dir, "wal")))
	s.start()
	checkAll(t, s, want, "from MinIO only")

	// MinIO goes away; traces keep arriving and a flush is attempted.
	exp, err = otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(s.otlpGRPC()), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	srv.Stop(t)
	more := emitTraces(t, exp, "minio-b", 20).byTrace()
	s.flush(t)
	require.Positive(t, s.metric(t, "rubato_ingester_failed_flushes_total"))
	require.Positive(t, s.metric(t, "rubato_ingester_blocks_pending_flush"))
	ready := body(t, s, "/ready")
	require.True(t, strings.HasPrefix(ready, "ready"), ready)
	require.Contains(t, ready, "waiting for the backend")
	checkAll(t, s, more, "while MinIO is down (local block)")
	segs, err := os.ReadDir(filepath.Join(s.dir, "wal", "segments"))
	require.NoError(t, err)
	require.Greater(t, len(segs), 1, "WAL segments kept while the block is not in the backend")

	// A crash while MinIO is down: the WAL has everything.
	s.kill()
	srv.Start(t)
	s.start()
	checkAll(t, s, more, "after a crash during the outage")
	s.flush(t)
	require.Eventually(t, func() bool { return s.metric(t, "rubato_ingester_blocks_pending_flush") == 0 }, time.Minute, 100*time.Millisecond)
	require.NotContains(t, body(t, s, "/ready"), "warning")

	s.stop()
	require.NoError(t, os.RemoveAll(filepath.Join(s.dir, "wal")))
	s.start()
	checkAll(t, s, want, "first batch, from MinIO")
	checkAll(t, s, more, "second batch, from MinIO")
}

// TestMinIORetryWithoutRestart: MinIO comes back while the ingester keeps
// running; the failed upload is retried on its own.
func TestMinIORetryWithoutRestart(t *testing.T) {
	srv := minio.Start(t)
	bucket := srv.NewBucket(t, "rubato")
	s := startServer(t, options{IdlePeriod: "1h", Storage: s3Storage(srv, bucket), Ingester: "  flush_retry_max_backoff: 500ms"})
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(s.otlpGRPC()), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	srv.Stop(t)
	want := emitTraces(t, exp, "retry", 10).byTrace()
	s.flush(t)
	require.Positive(t, s.metric(t, "rubato_ingester_failed_flushes_total"))
	srv.Start(t)
	require.Eventually(t, func() bool { return s.metric(t, "rubato_ingester_blocks_flushed_total") > 0 }, time.Minute, 100*time.Millisecond)
	s.stop()
	require.NoError(t, os.RemoveAll(filepath.Join(s.dir, "wal")))
	s.start()
	checkAll(t, s, want, "after automatic retry")
}

// TestS3StartupErrors: a missing bucket or wrong credentials stop start-up
// with one clear error.
func TestS3StartupErrors(t *testing.T) {
	srv := minio.Start(t)
	for name, tc := range map[string]struct{ bucket, secret, want string }{
		"missing bucket":    {"no-such-bucket", srv.SecretKey, "does not exist"},
		"wrong credentials": {srv.NewBucket(t, "x"), "wrong-secret-key", "access denied"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := *srv
			cfg.SecretKey = tc.secret
			dir := t.TempDir()
			path := filepath.Join(dir, "c.yaml")
			require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf("server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: %d\n  grpc_listen_address: 127.0.0.1\n  grpc_listen_port: %d\ndistributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc:\n          endpoint: 127.0.0.1:%d\nstorage:\n  trace:\n%s\n",
				freePort(t), freePort(t), freePort(t), s3Storage(&cfg, tc.bucket))), 0o644))
			out, err := runBinary(t, dir, "-config.file="+path)
			require.Error(t, err, "must not start")
			require.Contains(t, out, tc.want)
			require.NotContains(t, out, tc.secret, "never log the secret")
		})
	}
}
