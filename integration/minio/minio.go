package minio

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	miniogo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	tcminio "github.com/testcontainers/testcontainers-go/modules/minio"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/rubatodb/rubato/integration/internal/freeport"
)

// DefaultImage is the image scripts/minio-image.sh builds. Keep in sync.
const DefaultImage = "rubato-test/minio:20260212201848-7aac2a2c5b7c"

// ImageEnv names an environment variable that overrides DefaultImage.
const ImageEnv = "RUBATO_MINIO_IMAGE"

const (
	startAttempts = 3
	readyTimeout  = 90 * time.Second
)

// Server is a running MinIO. Endpoint is "127.0.0.1:<port>", plain HTTP.
type Server struct {
	Endpoint  string
	AccessKey string
	SecretKey string

	ctr testcontainers.Container
}

// URL returns the server's base URL.
func (s *Server) URL() string { return "http://" + s.Endpoint }

// unavailable skips the test, or fails it under CI=true.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("minio: %s (CI=true: failing instead of skipping)", msg)
	}
	t.Skipf("minio: %s; skipping", msg)
}

func setEnvDefault(key, value string) {
	if _, ok := os.LookupEnv(key); !ok {
		_ = os.Setenv(key, value)
	}
}

// Image returns the image Start runs.
func Image() string {
	if img := os.Getenv(ImageEnv); img != "" {
		return img
	}
	return DefaultImage
}

// Start runs a fresh MinIO container for t and removes it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	setEnvDefault("TESTCONTAINERS_RYUK_DISABLED", "true")
	setEnvDefault("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	ctx := context.Background()
	image := Image()
	checkDocker(t, ctx, image)

	s := &Server{AccessKey: "rubato-" + randomHex(4), SecretKey: randomHex(16)}
	var lastErr error
	for range startAttempts {
		// A free port can be taken between probing and MinIO binding it;
		// a failed start is retried on new ports.
		apiPort, consolePort := freePort(t), freePort(t)
		s.Endpoint = net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
		ctr, err := tcminio.Run(ctx, image,
			tcminio.WithUsername(s.AccessKey),
			tcminio.WithPassword(s.SecretKey),
			testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
				hc.NetworkMode = "host"
				hc.PortBindings = nil
				hc.PublishAllPorts = false
			}),
			testcontainers.CustomizeRequestOption(func(req *testcontainers.GenericContainerRequest) error {
				req.ExposedPorts = nil
				req.Cmd = []string{
					"server", "/data",
					"--address", s.Endpoint,
					"--console-address", net.JoinHostPort("127.0.0.1", strconv.Itoa(consolePort)),
				}
				req.WaitingFor = &readyStrategy{url: s.URL() + "/minio/health/ready", timeout: readyTimeout}
				return nil
			}),
		)
		if ctr != nil {
			t.Cleanup(func() {
				if err := testcontainers.TerminateContainer(ctr); err != nil {
					t.Errorf("minio: terminate container: %v", err)
				}
			})
		}
		if err == nil {
			s.ctr = ctr
			return s
		}
		lastErr = err
		t.Logf("minio: start on %s failed, retrying: %v", s.Endpoint, err)
	}
	t.Fatalf("minio: start %s: %v", image, lastErr)
	return nil
}

// Stop stops the MinIO process, keeping its container, data and port, so a
// test can see what happens while the object store is down.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	timeout := 10 * time.Second
	if err := s.ctr.Stop(context.Background(), &timeout); err != nil {
		t.Fatalf("minio: stop: %v", err)
	}
}

// Start starts a stopped server again and waits until it is ready.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if err := s.ctr.Start(ctx); err != nil {
		t.Fatalf("minio: start again: %v", err)
	}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL() + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("minio: not ready %s after restart", readyTimeout)
}

// checkDocker makes sure a Docker engine answers and holds image.
func checkDocker(t testing.TB, ctx context.Context, image string) {
	t.Helper()
	var (
		provider testcontainers.GenericProvider
		err      error
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("testcontainers panicked: %v", r)
			}
		}()
		provider, err = testcontainers.ProviderDocker.GetProvider()
		if err == nil {
			err = provider.Health(ctx)
		}
	}()
	if err != nil {
		unavailable(t, "no Docker engine reachable (start one with scripts/docker-up.sh): %v", err)
		return
	}
	defer provider.Close()
	dp, ok := provider.(*testcontainers.DockerProvider)
	if !ok {
		t.Fatalf("minio: unexpected testcontainers provider %T", provider)
	}
	if _, err := dp.Client().ImageInspect(ctx, image); err != nil {
		unavailable(t, "image %s not found (build it with scripts/minio-image.sh): %v", image, err)
	}
}

// freePort returns a TCP port free on 127.0.0.1, below the ephemeral range.
func freePort(t testing.TB) int {
	t.Helper()
	return freeport.TCP(t)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// readyStrategy polls MinIO's readiness endpoint on loopback. testcontainers'
// own HTTP strategy needs a published port, which host networking has not.
type readyStrategy struct {
	url     string
	timeout time.Duration
}

var _ wait.Strategy = (*readyStrategy)(nil)

func (r *readyStrategy) WaitUntilReady(ctx context.Context, target wait.StrategyTarget) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		lastErr = err
		if state, serr := target.State(ctx); serr == nil && !state.Running {
			return fmt.Errorf("container exited (code %d) before %s was ready: %s", state.ExitCode, r.url, logTail(ctx, target))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last: %v): %s", r.url, ctx.Err(), lastErr, logTail(context.Background(), target))
		case <-tick.C:
		}
	}
}

func logTail(ctx context.Context, target wait.StrategyTarget) string {
	rc, err := target.Logs(ctx)
	if err != nil {
		return "no logs: " + err.Error()
	}
	defer rc.Close()
	data, _ := io.ReadAll(io.LimitReader(rc, 64<<10))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// Client returns a minio-go client for the server with its root credentials.
func (s *Server) Client(t testing.TB) *miniogo.Client {
	t.Helper()
	c, err := miniogo.New(s.Endpoint, &miniogo.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure: false,
		Region: "us-east-1",
	})
	if err != nil {
		t.Fatalf("minio: client: %v", err)
	}
	return c
}

// NewBucket creates a bucket and returns its name. An empty name picks a
// random one; a given name gets a random suffix, so tests never collide.
func (s *Server) NewBucket(t testing.TB, name string) string {
	t.Helper()
	if name == "" {
		name = "rubato"
	}
	name = strings.ToLower(name) + "-" + randomHex(4)
	ctx := context.Background()
	if err := s.Client(t).MakeBucket(ctx, name, miniogo.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("minio: make bucket %q: %v", name, err)
	}
	return name
}
