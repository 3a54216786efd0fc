package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// testServers is initServer's servers, started on 127.0.0.1 with test
// handlers: a real process's servers, without its components.
type testServers struct {
	a       *App
	logs    *lockedBuffer
	health  *testHealth
	http    string // base URL of the HTTP port
	admin   string // base URL of server.admin_listen_address
	grpc    *grpc.ClientConn
	h2c     *grpc.ClientConn // gRPC dialled at the HTTP port, as Grafana does
	release chan struct{}    // unblocks /test/block
	entered chan struct{}    // /test/block has been entered
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startTestServers loads yamlText and args as the binary would, with the
// listeners on 127.0.0.1 (any port), runs initServer, registers the test
// handlers and starts the servers.
func startTestServers(t *testing.T, yamlText string, args ...string) *testServers {
	t.Helper()
	args = append([]string{
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port=0",
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port=0",
		"-server.admin-listen-address=127.0.0.1:0",
	}, args...)
	cfg, logs, err := loadArgs(t, yamlText, args...)
	require.NoError(t, err)
	require.NotContains(t, logs, "level=warn", "every key of the test's server block is known")
	require.NoError(t, cfg.Server.Validate())

	s := &testServers{logs: &lockedBuffer{}, release: make(chan struct{}), entered: make(chan struct{}, 1)}
	s.a = &App{cfg: cfg, logger: log.NewLogfmtLogger(s.logs), reg: prometheus.NewRegistry(), mux: http.NewServeMux()}
	svc, err := s.a.initServer()
	require.NoError(t, err)
	s.registerHandlers(s.a.mux)
	s.registerHandlers(s.a.admin)
	s.a.registerInstrumentation(s.a.adminMux())
	s.health = &testHealth{entered: s.entered, release: s.release}
	healthpb.RegisterHealthServer(s.a.grpcServer, s.health)
	healthpb.RegisterHealthServer(s.a.httpGRPC, s.health)

	all := append([]services.Service{svc}, s.a.receivers...) // receivers: the admin server
	for _, sv := range all {
		require.NoError(t, services.StartAndAwaitRunning(context.Background(), sv))
	}
	t.Cleanup(func() {
		for _, sv := range all {
			require.NoError(t, services.StopAndAwaitTerminated(context.Background(), sv))
		}
	})
	s.http = "http://" + s.a.httpLis.Addr().String()
	s.admin = "http://" + adminAddr(t, s.logs)
	s.grpc = dial(t, s.a.grpcLis.Addr().String())
	s.h2c = dial(t, s.a.httpLis.Addr().String())
	return s
}

// adminAddr is the admin listener's address, as its service logs it.
func adminAddr(t *testing.T, logs *lockedBuffer) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		_, rest, ok := strings.Cut(logs.String(), "msg=\"admin endpoints listening\" addr=")
		if ok {
			addr, _, _ = strings.Cut(rest, "\n")
		}
		return ok
	}, 5*time.Second, 5*time.Millisecond)
	return addr
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func (s *testServers) registerHandlers(m *http.ServeMux) {
	m.HandleFunc("GET /test/panic", func(http.ResponseWriter, *http.Request) { panic("test: HTTP handler panics") })
	m.HandleFunc("GET /test/panic-after-write", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("half an answer"))
		w.(http.Flusher).Flush()
		panic("test: HTTP handler panics mid-answer")
	})
	m.HandleFunc("GET /test/items/{id}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.PathValue("id"))) })
	m.HandleFunc("GET /test/block", func(w http.ResponseWriter, _ *http.Request) {
		s.entered <- struct{}{}
		<-s.release
	})
	m.HandleFunc("GET /test/sleep", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(500 * time.Millisecond)
		_, _ = w.Write([]byte("late"))
	})
}

// testHealth is a gRPC service whose request names what the handler does.
type testHealth struct {
	healthpb.UnimplementedHealthServer
	entered chan struct{}
	release chan struct{}
}

func (h *testHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	switch req.Service {
	case "panic":
		panic("test: unary gRPC handler panics")
	case "notfound":
		return nil, status.Error(codes.NotFound, "test: not found")
	case "block":
		h.entered <- struct{}{}
		<-h.release
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (h *testHealth) Watch(req *healthpb.HealthCheckRequest, ss grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	if err := ss.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
		return err
	}
	if req.Service == "panic" {
		panic("test: streaming gRPC handler panics")
	}
	<-ss.Context().Done()
	return nil
}

func get(t *testing.T, url string) (int, string, error) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metric is the value of the series name{labels} (a histogram's count),
// or -1 when there is no such series.
func metric(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// routeLabels lists the route label of every series of name.
func routeLabels(t *testing.T, reg prometheus.Gatherer, name string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "route" {
					out = append(out, lp.GetValue())
				}
			}
		}
	}
	return out
}

// TestHandlerPanicsAreRecovered registers handlers that panic on every
// server (the HTTP port, the admin port, the gRPC port, gRPC on the HTTP
// port): each panic is answered 500 / Internal, logged with its stack and
// counted, and every server keeps serving.
func TestHandlerPanicsAreRecovered(t *testing.T) {
	s := startTestServers(t, "")
	ctx := context.Background()
	panics := func() float64 { return metric(t, s.a.reg, "rubato_panics_total", nil) }
	require.Equal(t, 0.0, panics())

	for _, tc := range []struct {
		name string
		call func(t *testing.T)
	}{
		{"HTTP port", func(t *testing.T) {
			code, body, err := get(t, s.http+"/test/panic")
			require.NoError(t, err)
			require.Equal(t, http.StatusInternalServerError, code)
			require.Contains(t, body, "panicked")
		}},
		{"HTTP port, answer started", func(t *testing.T) {
			// The status is out: the connection is cut so the client
			// cannot take half an answer for a whole one.
			_, _, err := get(t, s.http+"/test/panic-after-write")
			require.Error(t, err)
		}},
		{"admin port", func(t *testing.T) {
			code, _, err := get(t, s.admin+"/test/panic")
			require.NoError(t, err)
			require.Equal(t, http.StatusInternalServerError, code)
		}},
		{"gRPC port, unary", func(t *testing.T) {
			_, err := healthpb.NewHealthClient(s.grpc).Check(ctx, &healthpb.HealthCheckRequest{Service: "panic"})
			require.Equal(t, codes.Internal, status.Code(err), err)
		}},
		{"gRPC port, stream", func(t *testing.T) {
			requireStreamPanic(t, s.grpc)
		}},
		{"gRPC on the HTTP port, unary", func(t *testing.T) {
			_, err := healthpb.NewHealthClient(s.h2c).Check(ctx, &healthpb.HealthCheckRequest{Service: "panic"})
			require.Equal(t, codes.Internal, status.Code(err), err)
		}},
		{"gRPC on the HTTP port, stream", func(t *testing.T) {
			requireStreamPanic(t, s.h2c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := panics()
			tc.call(t)
			require.Equal(t, before+1, panics(), "the panic is counted")
		})
	}

	// Every server still serves.
	for _, base := range []string{s.http, s.admin} {
		code, body, err := get(t, base+"/test/items/7")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "7", body)
	}
	for _, cc := range []*grpc.ClientConn{s.grpc, s.h2c} {
		resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
	}

	logs := s.logs.String()
	require.Equal(t, 7, strings.Count(logs, "panic while serving a request"), logs)
	for _, want := range []string{"test: HTTP handler panics", "test: unary gRPC handler panics", "test: streaming gRPC handler panics",
		"grpc_method=/grpc.health.v1.Health/Check", "route=test_panic", "server_test.go"} {
		require.Contains(t, logs, want, "logged with the panic and its stack")
	}
	// A recovered panic is measured as the answer it got.
	require.Equal(t, 2.0, metric(t, s.a.reg, "rubato_request_duration_seconds", map[string]string{"method": "GET", "route": "test_panic", "status_code": "500"}))
	require.Equal(t, 2.0, metric(t, s.a.reg, "rubato_request_duration_seconds", map[string]string{"method": "gRPC", "route": "/grpc.health.v1.Health/Check", "status_code": "error"}))
}

func requireStreamPanic(t *testing.T, cc *grpc.ClientConn) {
	t.Helper()
	st, err := healthpb.NewHealthClient(cc).Watch(context.Background(), &healthpb.HealthCheckRequest{Service: "panic"})
	require.NoError(t, err)
	first, err := st.Recv()
	require.NoError(t, err, "what was sent before the panic arrives")
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, first.Status)
	_, err = st.Recv()
	require.Equal(t, codes.Internal, status.Code(err), err)
}

// TestRequestMetricsPerRoute: rubato_request_duration_seconds and
// rubato_inflight_requests carry the ServeMux pattern (never the raw path)
// for HTTP and the full method for gRPC.
func TestRequestMetricsPerRoute(t *testing.T) {
	s := startTestServers(t, "")
	reg := s.a.reg
	for _, id := range []string{"1", "2", "3"} {
		code, _, err := get(t, s.http+"/test/items/"+id)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
	}
	code, _, err := get(t, s.http+"/no/such/route")
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, code)
	req, err := http.NewRequest("BREW", s.http+"/test/items/1", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	dur := "rubato_request_duration_seconds"
	require.Equal(t, 3.0, metric(t, reg, dur, map[string]string{"method": "GET", "route": "test_items_id", "status_code": "200", "ws": "false"}))
	require.Equal(t, 1.0, metric(t, reg, dur, map[string]string{"method": "GET", "route": "other", "status_code": "404"}))
	require.Equal(t, 1.0, metric(t, reg, dur, map[string]string{"method": "other", "route": "other", "status_code": "405"}))
	for _, r := range routeLabels(t, reg, dur) {
		require.NotContains(t, []string{"test_items_1", "test_items_2", "no_such_route"}, r, "a raw path became a label")
	}

	// In flight: counted while the handler runs, per route.
	inflight := map[string]string{"method": "GET", "route": "test_block"}
	done := make(chan error, 1)
	go func() { _, _, err := get(t, s.http+"/test/block"); done <- err }()
	<-s.entered
	require.Equal(t, 1.0, metric(t, reg, "rubato_inflight_requests", inflight))
	s.release <- struct{}{}
	require.NoError(t, <-done)
	require.Equal(t, 0.0, metric(t, reg, "rubato_inflight_requests", inflight))

	// gRPC, on both gRPC servers.
	ctx := context.Background()
	check := "/grpc.health.v1.Health/Check"
	for _, cc := range []*grpc.ClientConn{s.grpc, s.h2c} {
		c := healthpb.NewHealthClient(cc)
		_, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		_, err = c.Check(ctx, &healthpb.HealthCheckRequest{Service: "notfound"})
		require.Equal(t, codes.NotFound, status.Code(err))
		cctx, cancel := context.WithCancel(ctx)
		go func() { _, err := c.Check(cctx, &healthpb.HealthCheckRequest{Service: "block"}); done <- err }()
		<-s.entered
		require.Equal(t, 1.0, metric(t, reg, "rubato_inflight_requests", map[string]string{"method": "gRPC", "route": check}))
		s.release <- struct{}{}
		require.NoError(t, <-done)
		cancel()
		require.Equal(t, 0.0, metric(t, reg, "rubato_inflight_requests", map[string]string{"method": "gRPC", "route": check}))
	}
	require.Equal(t, 4.0, metric(t, reg, dur, map[string]string{"method": "gRPC", "route": check, "status_code": "success", "ws": "false"}))
	require.Equal(t, 2.0, metric(t, reg, dur, map[string]string{"method": "gRPC", "route": check, "status_code": "error"}))

	// With report_grpc_codes_in_instrumentation_label_enabled the code
	// is named.
	s = startTestServers(t, "server:\n  report_grpc_codes_in_instrumentation_label_enabled: true\n")
	_, err = healthpb.NewHealthClient(s.grpc).Check(ctx, &healthpb.HealthCheckRequest{Service: "notfound"})
	require.Equal(t, codes.NotFound, status.Code(err))
	require.Equal(t, 1.0, metric(t, s.a.reg, dur, map[string]string{"method": "gRPC", "route": check, "status_code": "NotFound"}))
}

func TestRouteLabel(t *testing.T) {
	k := &serverKit{}
	for pattern, want := range map[string]string{
		"GET /api/traces/{traceID}":           "api_traces_traceid", // Tempo's label of the same route
		"GET /api/v2/search/tag/{tag}/values": "api_v2_search_tag_tag_values",
		"/flush":                              "flush",
		"POST example.com/shutdown":           "shutdown",
		"/":                                   "root",
		"GET /debug/pprof/":                   "debug_pprof",
		"":                                    "other",
	} {
		require.Equal(t, want, k.routeLabel(pattern), pattern)
		require.Equal(t, want, k.routeLabel(pattern), "cached: %s", pattern)
	}
}

// TestTempoServerKeysAreHonoured: Tempo's server block (dskit's keys)
// loads without a warning, also under -config.strict, and each setting
// changes what the servers do.
func TestTempoServerKeysAreHonoured(t *testing.T) {
	doc := `server:
  http_listen_network: tcp
  http_listen_address: 0.0.0.0
  http_listen_port: 3210
  http_listen_conn_limit: 50
  grpc_listen_network: tcp4
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: 9195
  grpc_listen_conn_limit: 60
  register_instrumentation: false
  report_grpc_codes_in_instrumentation_label_enabled: true
  graceful_shutdown_timeout: 45s
  http_server_read_timeout: 31s
  http_server_read_header_timeout: 5s
  http_server_write_timeout: 2m
  http_server_idle_timeout: 3m
  grpc_server_max_recv_msg_size: 16777216
  grpc_server_max_send_msg_size: 8388608
  grpc_server_max_concurrent_streams: 1000
  grpc_server_max_connection_idle: 1h
  grpc_server_max_connection_age: 2h
  grpc_server_max_connection_age_grace: 1m
  grpc_server_keepalive_time: 1h
  grpc_server_keepalive_timeout: 10s
  grpc_server_min_time_between_pings: 5s
  grpc_server_ping_without_stream_allowed: false
  grpc_server_num_workers: 4
  grpc_server_read_buffer_size: 65536
  grpc_server_write_buffer_size: 65536
  log_level: debug
  log_format: json
  http_path_prefix: /tempo/
`
	cfg, logs, err := loadArgs(t, doc, "-config.strict")
	require.NoError(t, err)
	require.NotContains(t, logs, "level=warn")
	require.NoError(t, cfg.Validate())
	require.Equal(t, ServerConfig{
		HTTPListenNetwork: "tcp", HTTPListenAddress: "0.0.0.0", HTTPListenPort: 3210, HTTPConnLimit: 50,
		GRPCListenNetwork: "tcp4", GRPCListenAddress: "127.0.0.1", GRPCListenPort: 9195, GRPCConnLimit: 60,
		RegisterInstrumentation: false, ReportGRPCCodesInInstrumentationLabel: true,
		GracefulShutdownTimeout: 45 * time.Second,
		HTTPServerReadTimeout:   31 * time.Second, HTTPServerReadHeaderTimeout: 5 * time.Second,
		HTTPServerWriteTimeout: 2 * time.Minute, HTTPServerIdleTimeout: 3 * time.Minute,
		GRPCServerMaxRecvMsgSize: 16 << 20, GRPCServerMaxSendMsgSize: 8 << 20, GRPCServerMaxConcurrentStreams: 1000,
		GRPCServerMaxConnectionIdle: time.Hour, GRPCServerMaxConnectionAge: 2 * time.Hour, GRPCServerMaxConnectionAgeGrace: time.Minute,
		GRPCServerKeepaliveTime: time.Hour, GRPCServerKeepaliveTimeout: 10 * time.Second,
		GRPCServerMinTimeBetweenPings: 5 * time.Second, GRPCServerPingWithoutStreamAllowed: false,
		GRPCServerNumWorkers: 4, GRPCServerReadBufferSize: 64 << 10, GRPCServerWriteBufferSize: 64 << 10,
		LogLevel: "debug", LogFormat: "json", PathPrefix: "/tempo/",
	}, cfg.Server)

	// Defaults: dskit's, Tempo's keepalive enforcement, Rubato's message
	// size (what its own clients send) and graceful timeout.
	cfg, _, err = loadArgs(t, "")
	require.NoError(t, err)
	d := cfg.Server
	require.Equal(t, []any{30 * time.Second, time.Duration(0), 30 * time.Second, 120 * time.Second, uint(100), 64 << 20, 10 * time.Second, true, true},
		[]any{d.HTTPServerReadTimeout, d.HTTPServerReadHeaderTimeout, d.HTTPServerWriteTimeout, d.HTTPServerIdleTimeout,
			d.GRPCServerMaxConcurrentStreams, d.GRPCServerMaxRecvMsgSize, d.GRPCServerMinTimeBetweenPings, d.GRPCServerPingWithoutStreamAllowed, d.RegisterInstrumentation})

	for _, bad := range []string{
		"server:\n  http_listen_network: udp\n",
		"server:\n  log_level: verbose\n",
		"server:\n  log_format: xml\n",
		"server:\n  grpc_server_max_recv_msg_size: 0\n",
		"server:\n  http_server_write_timeout: -1s\n",
		"server:\n  http_path_prefix: /a?b\n",
	} {
		cfg, _, err := loadArgs(t, bad)
		require.NoError(t, err)
		require.Error(t, cfg.Validate(), bad)
	}
}

func TestGRPCMaxMessageSize(t *testing.T) {
	s := startTestServers(t, "server:\n  grpc_server_max_recv_msg_size: 1024\n")
	for _, cc := range []*grpc.ClientConn{s.grpc, s.h2c} {
		c := healthpb.NewHealthClient(cc)
		_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{Service: strings.Repeat("x", 2000)})
		require.Equal(t, codes.ResourceExhausted, status.Code(err), err)
		_, err = c.Check(context.Background(), &healthpb.HealthCheckRequest{Service: strings.Repeat("x", 500)})
		require.NoError(t, err)
	}
}

func TestGRPCMaxConcurrentStreams(t *testing.T) {
	s := startTestServers(t, "server:\n  grpc_server_max_concurrent_streams: 1\n")
	c := healthpb.NewHealthClient(s.grpc)
	ctx, cancel := context.WithCancel(context.Background())
	st, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = st.Recv() // the stream holds the connection's one slot
	require.NoError(t, err)
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	_, err = c.Check(short, &healthpb.HealthCheckRequest{})
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), "a second stream waits for the first: %v", err)
	cancel()
	_, err = c.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
}

func TestHTTPTimeouts(t *testing.T) {
	s := startTestServers(t, "server:\n  http_server_read_timeout: 200ms\n  http_server_write_timeout: 200ms\n")
	// Write timeout: an answer later than it never arrives.
	_, _, err := get(t, s.http+"/test/sleep")
	require.Error(t, err)
	// Read timeout: a client that never finishes its headers is cut off
	// (the default, 30s, would outlast the read deadline below).
	conn, err := net.Dial("tcp", s.a.httpLis.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("GET /test/items/1 HTTP/1.1\r\nHost: x\r\n"))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = conn.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the server closed the connection")
	// A prompt request is served.
	code, _, err := get(t, s.http+"/test/items/1")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
}

func TestHTTPConnLimit(t *testing.T) {
	s := startTestServers(t, "server:\n  http_listen_conn_limit: 1\n")
	hold, err := net.Dial("tcp", s.a.httpLis.Addr().String())
	require.NoError(t, err)
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	_, err = client.Get(s.http + "/test/items/1")
	require.Error(t, err, "a second connection waits while the first holds the only slot")
	require.NoError(t, hold.Close())
	client.Timeout = 10 * time.Second
	resp, err := client.Get(s.http + "/test/items/1")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestHTTPPathPrefix(t *testing.T) {
	s := startTestServers(t, "server:\n  http_path_prefix: /tempo/\n")
	code, body, err := get(t, s.http+"/tempo/test/items/9")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "9", body)
	for _, path := range []string{"/test/items/9", "/tempox/test/items/9"} {
		code, _, err := get(t, s.http+path)
		require.NoError(t, err)
		require.Equal(t, http.StatusNotFound, code, path)
	}
	require.Equal(t, 1.0, metric(t, s.a.reg, "rubato_request_duration_seconds", map[string]string{"route": "test_items_id", "status_code": "200"}))
	// gRPC on the HTTP port is not under the prefix.
	_, err = healthpb.NewHealthClient(s.h2c).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
}

func TestRegisterInstrumentation(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			s := startTestServers(t, "", fmt.Sprintf("-server.register-instrumentation=%v", on))
			want := http.StatusNotFound
			if on {
				want = http.StatusOK
			}
			code, body, err := get(t, s.http+"/metrics")
			require.NoError(t, err)
			require.Equal(t, want, code)
			if on {
				require.Contains(t, body, "rubato_inflight_requests{method=\"GET\",route=\"metrics\"} 1")
			}
			code, _, err = get(t, s.admin+"/debug/pprof/")
			require.NoError(t, err)
			require.Equal(t, want, code)
		})
	}
}

// BenchmarkGRPCInterceptors is what instrumentation and recovery add to
// every gRPC call (the distributor's pushes to ingesters among them).
func BenchmarkGRPCInterceptors(b *testing.B) {
	k := newServerKit(false, log.NewNopLogger(), prometheus.NewRegistry())
	info := &grpc.UnaryServerInfo{FullMethod: "/tempopb.Pusher/PushBytesV2"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	recovering := func(ctx context.Context, req any) (any, error) { return k.unaryRecover(ctx, req, info, handler) }
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.unaryInstrument(ctx, nil, info, recovering); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHTTPMiddleware is what instrumentation and recovery add to
// every HTTP request (route matching included).
func BenchmarkHTTPMiddleware(b *testing.B) {
	k := newServerKit(false, log.NewNopLogger(), prometheus.NewRegistry())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/traces/{traceID}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	h := k.wrapMux(mux)
	req := httptest.NewRequest(http.MethodGet, "/api/traces/0123456789abcdef", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}
