package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"
)

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestStopWithSlowRequests runs a whole single binary in process, stops it
// while one request never ends by itself and another takes a while: the
// slow one is answered, the endless one is cancelled at the end of
// server.graceful_shutdown_timeout, and Run returns no error (it used to
// give the whole grace to the HTTP server inside the manager's own
// deadline of the same length, and exit 1 with "context deadline
// exceeded").
func TestStopWithSlowRequests(t *testing.T) {
	const grace = 2 * time.Second
	dir := t.TempDir()
	httpPort := freeTCPPort(t)
	doc := fmt.Sprintf(`
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %d
  graceful_shutdown_timeout: %s
distributor:
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:%d
storage:
  trace:
    backend: local
    local:
      path: %s/blocks
    wal:
      path: %s/wal
`, httpPort, freeTCPPort(t), grace, freeTCPPort(t), dir, dir)
	cfg, _, err := loadArgs(t, doc)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	a, err := New(cfg, log.NewNopLogger())
	require.NoError(t, err)

	hangEntered, hangCancelled := make(chan struct{}), make(chan struct{})
	a.mux.HandleFunc("GET /test/hang", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		close(hangEntered)
		<-r.Context().Done()
		close(hangCancelled)
	})
	slowEntered := make(chan struct{})
	a.mux.HandleFunc("GET /test/slow", func(w http.ResponseWriter, r *http.Request) {
		close(slowEntered)
		time.Sleep(grace / 2)
		_, _ = w.Write([]byte("late"))
	})

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "the single binary gets ready")

	hangBody := make(chan error, 1)
	go func() {
		resp, err := http.Get(base + "/test/hang")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		hangBody <- err
	}()
	<-hangEntered
	type answer struct {
		body string
		err  error
	}
	slow := make(chan answer, 1)
	go func() {
		resp, err := http.Get(base + "/test/slow")
		if err != nil {
			slow <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- answer{string(b), err}
	}()
	<-slowEntered

	start := time.Now()
	stop()
	select {
	case err := <-runErr:
		require.NoError(t, err, "a stop with requests in flight is clean")
	case <-time.After(grace + stopMargin + 10*time.Second):
		t.Fatal("Run did not return")
	}
	elapsed := time.Since(start)
	require.GreaterOrEqual(t, elapsed, grace, "requests in flight got the grace")

	got := <-slow
	require.NoError(t, got.err, "the slow request finished within the grace and was answered")
	require.Equal(t, "late", got.body)
	select {
	case <-hangCancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the endless request's context was not cancelled")
	}
	require.Error(t, <-hangBody, "the endless answer was cut")
	_, err = http.Get(base + "/ready")
	require.Error(t, err, "nothing listens after Run returned")
}

// TestStopDoesNotCutComponents: a component that takes longer to stop
// than graceful_shutdown_timeout plus stopMargin (an ingester flushing on
// shutdown) is waited for; the deadline counts only from the moment the
// servers, which stop after every component, begin to stop.
func TestStopDoesNotCutComponents(t *testing.T) {
	const grace = 500 * time.Millisecond
	slowStop := grace + stopMargin + time.Second
	component := services.NewIdleService(nil, func(error) error { time.Sleep(slowStop); return nil })
	a := &App{cfg: &Config{}, logger: log.NewNopLogger(), serverStopping: make(chan struct{})}
	a.cfg.Server.GracefulShutdownTimeout = grace
	// The servers stop last, as the module manager orders them.
	srv := services.NewIdleService(nil, func(error) error {
		_ = component.AwaitTerminated(context.Background())
		close(a.serverStopping)
		return nil
	})
	var err error
	a.manager, err = services.NewManager(component, srv)
	require.NoError(t, err)
	require.NoError(t, a.manager.StartAsync(context.Background()))
	require.NoError(t, a.manager.AwaitHealthy(context.Background()))
	start := time.Now()
	a.manager.StopAsync()
	require.NoError(t, a.awaitStopped(), "a slow component's stop is not cut")
	require.GreaterOrEqual(t, time.Since(start), slowStop)
	require.Equal(t, services.Terminated, component.State())
}
