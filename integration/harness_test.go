package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rubatodb/rubato/integration/internal/freeport"
	"github.com/rubatodb/rubato/pkg/rubatopb"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rubato-it-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "rubato")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/rubato").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build rubato: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a TCP port free on 127.0.0.1, below the ephemeral range
// (freeport says why).
func freePort(t testing.TB) int { t.Helper(); return freeport.TCP(t) }

// freeUDPPort returns a UDP port free on 127.0.0.1, below the ephemeral
// range.
func freeUDPPort(t testing.TB) int { t.Helper(); return freeport.UDP(t) }

// ports of one instance. Every port is chosen, whether or not the config
// turns its receiver on.
type ports struct {
	HTTP, GRPC, OTLPGRPC, OTLPHTTP, Zipkin int
	// Jaeger: gRPC and Thrift HTTP are TCP, compact and binary are UDP.
	JaegerGRPC, JaegerThriftHTTP, JaegerCompact, JaegerBinary int
}

// options shape an instance's config.
type options struct {
	Multitenancy bool
	IdlePeriod   string // trace_idle_period
	Extra        string // YAML appended at the top level
	Storage      string // replaces the storage.trace block body
	Overrides    string // the overrides block body
	Ingester     string // extra keys for the ingester block, indented by two spaces
	// Jaeger adds the jaeger receiver with all four protocols on
	// Ports.Jaeger*.
	Jaeger bool
	// Receivers, when set, replaces the body of distributor.receivers. It
	// is itself a template over the instance's ports ({{.JaegerGRPC}}…),
	// indented by four spaces.
	Receivers string
	// GRPCPort, when set, is the gRPC port instead of a free one (a fault
	// proxy in front of it was started first).
	GRPCPort int
}

// server is one running rubato process.
type server struct {
	t     testing.TB
	dir   string
	cfg   string
	ports ports
	cmd   *exec.Cmd
	logs  *syncBuffer
	done  chan struct{}
}

const configTemplate = `
multitenancy_enabled: {{.Opts.Multitenancy}}
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {{.Ports.HTTP}}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {{.Ports.GRPC}}
  log_level: debug
distributor:
  receivers:
{{- if .Receivers}}
{{.Receivers}}
{{- else}}
    otlp:
      protocols:
        grpc:
          endpoint: 127.0.0.1:{{.Ports.OTLPGRPC}}
        http:
          endpoint: 127.0.0.1:{{.Ports.OTLPHTTP}}
    zipkin:
      endpoint: 127.0.0.1:{{.Ports.Zipkin}}
{{- if .Opts.Jaeger}}
    jaeger:
      protocols:
        grpc:
          endpoint: 127.0.0.1:{{.Ports.JaegerGRPC}}
        thrift_http:
          endpoint: 127.0.0.1:{{.Ports.JaegerThriftHTTP}}
        thrift_compact:
          endpoint: 127.0.0.1:{{.Ports.JaegerCompact}}
        thrift_binary:
          endpoint: 127.0.0.1:{{.Ports.JaegerBinary}}
{{- end}}
{{- end}}
ingester:
  trace_idle_period: {{.Opts.IdlePeriod}}
  flush_check_period: 100ms
  max_block_duration: 2s
{{- if .Opts.Ingester}}
{{.Opts.Ingester}}
{{- end}}
storage:
  trace:
{{- if .Opts.Storage}}
{{.Opts.Storage}}
{{- else}}
    backend: local
    local:
      path: {{.Dir}}/blocks
{{- end}}
    wal:
      path: {{.Dir}}/wal
    blocklist_poll: 500ms
{{- if .Opts.Overrides}}
overrides:
{{.Opts.Overrides}}
{{- end}}
{{.Opts.Extra}}
`

// startServer starts rubato with a fresh data directory.
func startServer(t testing.TB, opts options) *server {
	t.Helper()
	if opts.IdlePeriod == "" {
		opts.IdlePeriod = "1s"
	}
	s := &server{t: t, dir: t.TempDir(), ports: ports{
		HTTP: freePort(t), GRPC: freePort(t), OTLPGRPC: freePort(t), OTLPHTTP: freePort(t), Zipkin: freePort(t),
		JaegerGRPC: freePort(t), JaegerThriftHTTP: freePort(t), JaegerCompact: freeUDPPort(t), JaegerBinary: freeUDPPort(t),
	}}
	if opts.GRPCPort != 0 {
		s.ports.GRPC = opts.GRPCPort
	}
	var receivers bytes.Buffer
	if opts.Receivers != "" {
		require.NoError(t, template.Must(template.New("receivers").Parse(opts.Receivers)).Execute(&receivers, s.ports))
	}
	var buf bytes.Buffer
	require.NoError(t, template.Must(template.New("cfg").Parse(configTemplate)).Execute(&buf, map[string]any{
		"Opts": opts, "Ports": s.ports, "Dir": s.dir, "Receivers": strings.TrimRight(receivers.String(), "\n"),
	}))
	s.cfg = filepath.Join(s.dir, "rubato.yaml")
	require.NoError(t, os.WriteFile(s.cfg, buf.Bytes(), 0o644))
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *server) start() {
	s.t.Helper()
	if s.logs == nil {
		s.logs = &syncBuffer{}
	}
	_, _ = s.logs.Write([]byte("---- rubato starting ----\n"))
	s.cmd = exec.Command(binary, "-config.file="+s.cfg)
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	require.NoError(s.t, s.cmd.Start())
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	s.waitReady()
}

func (s *server) waitReady() {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.t.Fatalf("rubato exited during start-up:\n%s", s.logs.String())
		default:
		}
		resp, err := http.Get(s.url("/ready"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("rubato not ready after 30s:\n%s", s.logs.String())
}

// stop sends SIGTERM and waits; the process must exit cleanly in seconds.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Errorf("rubato did not stop within 15s of SIGTERM:\n%s", s.logs.String())
	}
}

// kill sends SIGKILL: no shutdown code runs.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

func (s *server) restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

func (s *server) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", s.ports.HTTP, path)
}

func (s *server) otlpGRPC() string { return fmt.Sprintf("127.0.0.1:%d", s.ports.OTLPGRPC) }
func (s *server) otlpHTTP() string { return fmt.Sprintf("127.0.0.1:%d", s.ports.OTLPHTTP) }

// traceByID reads a trace through GET /api/traces/{id} as protobuf; nil if
// the server answers 404. Every trace read is walked as Grafana's plugin
// walks it (grafanaWalk), so every receiver's round-trip test checks it.
func (s *server) traceByID(t testing.TB, id []byte, tenantID string) *tracev1.TracesData {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.url(fmt.Sprintf("/api/traces/%x", id)), nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "application/protobuf")
	if tenantID != "" {
		req.Header.Set("X-Scope-OrgID", tenantID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	var tr rubatopb.Trace
	require.NoError(t, proto.Unmarshal(body, &tr))
	td := &tracev1.TracesData{ResourceSpans: tr.ResourceSpans}
	grafanaWalk(t, td)
	return td
}

// flush asks the ingester to cut and upload everything.
func (s *server) flush(t testing.TB) {
	t.Helper()
	resp, err := http.Post(s.url("/flush"), "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}

// metric returns the summed value of a metric's samples whose label set
// contains every given label pair.
func (s *server) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(s.url("/metrics"))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var v float64
		_, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
		require.NoError(t, err)
		sum += v
	}
	return sum
}

func countSpans(td *tracev1.TracesData) int {
	n := 0
	for _, rs := range td.GetResourceSpans() {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runBinary runs rubato to completion (for start-up failures) with a
// deadline, returning its output.
func runBinary(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}
