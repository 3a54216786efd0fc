package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/stretchr/testify/require"
)

// otelcolVersion is the Collector scripts/otelcol.sh builds; keep in sync.
const otelcolVersion = "v0.165.0"

// otelcolBinary finds the Collector built by scripts/otelcol.sh: $RUBATO_OTELCOL,
// else otelcol-rubato-<version> in ${RUBATO_CACHE:-$HOME/.cache/rubato}. When
// it is missing the test fails under CI=true and is skipped elsewhere.
func otelcolBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("RUBATO_OTELCOL")
	if bin == "" {
		cache := os.Getenv("RUBATO_CACHE")
		if cache == "" {
			home, _ := os.UserHomeDir()
			cache = filepath.Join(home, ".cache", "rubato")
		}
		bin = filepath.Join(cache, "otelcol-rubato-"+otelcolVersion)
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		msg := fmt.Sprintf("OpenTelemetry Collector binary %s not found: run scripts/otelcol.sh", bin)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// collectorOptions shape a Collector config.
type collectorOptions struct {
	Exporter  string // host:port of Rubato's OTLP gRPC receiver
	Receiver  int    // the Collector's OTLP gRPC port
	Metrics   int    // the Collector's own Prometheus metrics port
	BatchSize int    // send_batch_size and send_batch_max_size
}

// collectorConfig is the Kubernetes guides' pipeline: otlp receiver,
// memory_limiter then batch, the otlp gRPC exporter with sending_queue and
// retry_on_failure on. retry_on_failure's max_interval is lowered from
// 30 s to 5 s to keep the test short; max_elapsed_time is the default.
const collectorConfig = `
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{{.Receiver}}
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 512
    spike_limit_mib: 128
  batch:
    send_batch_size: {{.BatchSize}}
    send_batch_max_size: {{.BatchSize}}
    timeout: 200ms
exporters:
  otlp_grpc:
    endpoint: {{.Exporter}}
    tls:
      insecure: true
    sending_queue:
      enabled: true
      num_consumers: 4
      queue_size: 5000
    retry_on_failure:
      enabled: true
      initial_interval: 1s
      max_interval: 5s
      max_elapsed_time: 300s
service:
  telemetry:
    logs:
      level: info
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{.Metrics}}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp_grpc]
`

// otelcol is one running Collector process.
type otelcol struct {
	t    testing.TB
	opts collectorOptions
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

func startCollector(t *testing.T, bin string, opts collectorOptions) *otelcol {
	t.Helper()
	opts.Receiver, opts.Metrics = freePort(t), freePort(t)
	var buf bytes.Buffer
	require.NoError(t, template.Must(template.New("otelcol").Parse(collectorConfig)).Execute(&buf, opts))
	cfg := filepath.Join(t.TempDir(), "otelcol.yaml")
	require.NoError(t, os.WriteFile(cfg, buf.Bytes(), 0o644))
	c := &otelcol{t: t, opts: opts, logs: &syncBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(bin, "--config="+cfg)
	c.cmd.Stdout, c.cmd.Stderr = c.logs, c.logs
	require.NoError(t, c.cmd.Start())
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-c.done:
			t.Fatalf("collector exited during start-up:\n%s", c.logs.String())
		default:
		}
		conn, err := net.DialTimeout("tcp", c.receiverAddr(), time.Second)
		if err == nil {
			conn.Close()
			if _, err := c.metricsText(); err == nil {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector not listening after 30s:\n%s", c.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *otelcol) receiverAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.opts.Receiver) }

func (c *otelcol) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *otelcol) metricsText() (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", c.opts.Metrics))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("collector metrics: %s", resp.Status)
	}
	return string(b), nil
}

// metric sums the samples of a Collector counter or gauge (with or without
// the _total suffix the Prometheus exporter may add).
func (c *otelcol) metric(t testing.TB, name string) float64 {
	t.Helper()
	text, err := c.metricsText()
	require.NoError(t, err)
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		metricName := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			metricName = line[:i]
		}
		if metricName != name && metricName != name+"_total" {
			continue
		}
		var v float64
		_, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
		require.NoError(t, err, line)
		sum += v
	}
	return sum
}
