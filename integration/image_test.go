package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"

	"github.com/rubatodb/rubato/integration/minio"
)

// imageTag is the tag TestImageWithMinIO builds with scripts/rubato-image.sh.
const imageTag = "rubato-test/rubato:it"

// buildImage builds the working tree's image through scripts/rubato-image.sh
// (no registry needed), skipping the test where Docker is unavailable
// (failing under CI=true, as integration/minio does).
func buildImage(t *testing.T) string {
	t.Helper()
	if err := exec.Command("docker", "info").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker unavailable (CI=true: failing instead of skipping): %v", err)
		}
		t.Skipf("docker unavailable: %v", err)
	}
	cmd := exec.Command("bash", "../scripts/rubato-image.sh")
	cmd.Env = append(os.Environ(), "RUBATO_IMAGE="+imageTag)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("rubato-image.sh: %v\n%s", err, ee.Stderr)
	}
	require.NoError(t, err)
	require.Equal(t, imageTag, strings.TrimSpace(string(out)))
	return imageTag
}

// TestImageWithMinIO runs the container image (FROM scratch, non-root)
// next to a MinIO container, both on the host network as the other
// integration tests: a trace pushed over OTLP HTTP is read back by ID on
// the query port, live and again after a flush to MinIO and a restart of
// the container with an empty WAL (so from the bucket only); then the
// image's own `rubato selftest` (the chart's helm test) passes against it.
func TestImageWithMinIO(t *testing.T) {
	image := buildImage(t)
	srv := minio.Start(t) // sets the TESTCONTAINERS_* defaults
	bucket := srv.NewBucket(t, "rubato")

	httpPort, grpcPort, otlpPort := freePort(t), freePort(t), freePort(t)
	cfg := fmt.Sprintf(`server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %d
distributor:
  receivers:
    otlp:
      protocols:
        http:
          endpoint: 127.0.0.1:%d
ingester:
  trace_idle_period: 1h
  flush_check_period: 100ms
storage:
  trace:
%s
    blocklist_poll: 500ms
`, httpPort, grpcPort, otlpPort, s3Storage(srv, bucket))
	cfgPath := filepath.Join(t.TempDir(), "rubato.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))

	// The image's own checker accepts the config it is about to run.
	out, err := exec.Command("docker", "run", "--rm", "--network=host", "-v", cfgPath+":/etc/rubato/rubato.yaml:ro",
		image, "-config.file=/etc/rubato/rubato.yaml", "-config.verify").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "config OK\n", string(out))

	run := func() testcontainers.Container {
		ctx := context.Background()
		ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
			ContainerRequest: testcontainers.ContainerRequest{
				Image: image,
				Cmd:   []string{"-config.file=/etc/rubato/rubato.yaml"},
				HostConfigModifier: func(hc *container.HostConfig) {
					hc.NetworkMode = "host"
					hc.Binds = []string{cfgPath + ":/etc/rubato/rubato.yaml:ro"}
					hc.ReadonlyRootfs = true // the WAL lives in a volume, as in the chart
					hc.Tmpfs = map[string]string{"/var/rubato": "uid=10001,gid=10001"}
				},
			},
			Started: true,
		})
		if ctr != nil {
			t.Cleanup(func() { _ = testcontainers.TerminateContainer(ctr) })
		}
		require.NoError(t, err)
		waitReadyURL(t, ctr, fmt.Sprintf("http://127.0.0.1:%d/ready", httpPort))
		return ctr
	}
	ctr := run()

	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(fmt.Sprintf("127.0.0.1:%d", otlpPort)), otlptracehttp.WithInsecure())
	require.NoError(t, err)
	want := emitTraces(t, exp, "image", 3).byTrace()
	require.Len(t, want, 3)
	s := &server{ports: ports{HTTP: httpPort}}
	for id, spans := range want {
		got := s.traceByID(t, id[:], "")
		require.NotNil(t, got, "trace %s not found (live)", id)
		requireSameTrace(t, spans, got)
	}

	s.flush(t)
	require.Eventually(t, func() bool {
		return s.metric(t, "rubato_backend_requests_total", `backend="s3"`, `op="put"`, `status="ok"`) > 0
	}, 30*time.Second, 200*time.Millisecond, "no upload to MinIO")
	// A new container: fresh tmpfs, so no WAL; the traces come from MinIO.
	require.NoError(t, testcontainers.TerminateContainer(ctr))
	run()
	for id, spans := range want {
		got := s.traceByID(t, id[:], "")
		require.NotNil(t, got, "trace %s not found after restart (from MinIO)", id)
		requireSameTrace(t, spans, got)
	}

	// The Helm chart's test pod: `rubato selftest` from the image itself.
	out, err = exec.Command("docker", "run", "--rm", "--network=host", image, "selftest",
		fmt.Sprintf("-otlp-http=http://127.0.0.1:%d", otlpPort), fmt.Sprintf("-query=http://127.0.0.1:%d", httpPort), "-timeout=30s").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "selftest OK: trace ")
}

// waitReadyURL polls /ready until 200, failing with the container's logs.
func waitReadyURL(t *testing.T, ctr testcontainers.Container, url string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	logs, _ := ctr.Logs(context.Background())
	var b strings.Builder
	if logs != nil {
		buf := make([]byte, 64<<10)
		n, _ := logs.Read(buf)
		b.Write(buf[:n])
	}
	t.Fatalf("%s not ready in time; logs:\n%s", url, b.String())
}
