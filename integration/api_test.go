package integration

import (
	"context"
	"encoding/json"
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
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/rubatodb/rubato/pkg/rubatopb"
)

func get(t testing.TB, url, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, body
}

func pushOTLP(t testing.TB, addr string, req *coltracepb.ExportTraceServiceRequest) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	resp, err := coltracepb.NewTraceServiceClient(conn).Export(context.Background(), req)
	require.NoError(t, err)
	require.Nil(t, resp.PartialSuccess)
}

// TestGrafanaAPIShapes pins what Grafana's Tempo datasource reads
// (CONTRACT.md §0, §1.3, §2).
func TestGrafanaAPIShapes(t *testing.T) {
	s := startServer(t, options{})
	req, ids := makeRequest(1, 3)
	pushOTLP(t, s.otlpGRPC(), req)
	id := fmt.Sprintf("%x", ids[0])
	missing := strings.Repeat("ab", 16)

	t.Run("echo", func(t *testing.T) {
		resp, body := get(t, s.url("/api/echo"), "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "echo", string(body))
	})
	t.Run("buildinfo reports a Tempo API version Grafana accepts", func(t *testing.T) {
		resp, body := get(t, s.url("/api/status/buildinfo"), "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var bi map[string]string
		require.NoError(t, json.Unmarshal(body, &bi))
		var major, minor int
		_, err := fmt.Sscanf(bi["version"], "%d.%d", &major, &minor)
		require.NoError(t, err)
		require.True(t, major > 2 || (major == 2 && minor >= 7), bi["version"])
	})
	t.Run("v2 protobuf found", func(t *testing.T) {
		resp, body := get(t, s.url("/api/v2/traces/"+id), "application/protobuf")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "application/protobuf", resp.Header.Get("Content-Type"))
		var r rubatopb.TraceByIDResponse
		require.NoError(t, proto.Unmarshal(body, &r))
		require.Equal(t, 3, countSpans(toTD(r.Trace)))
	})
	t.Run("v2 protobuf not found is 200 with field 1 present", func(t *testing.T) {
		resp, body := get(t, s.url("/api/v2/traces/"+missing), "application/protobuf")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, []byte{0x0a, 0x00}, body[:2], "field 1 (trace) is encoded even when empty")
		var r rubatopb.TraceByIDResponse
		require.NoError(t, proto.Unmarshal(body, &r))
		require.NotNil(t, r.Trace)
		require.Empty(t, r.Trace.ResourceSpans)
	})
	t.Run("v2 json", func(t *testing.T) {
		resp, body := get(t, s.url("/api/v2/traces/"+id), "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var m map[string]map[string][]json.RawMessage
		require.NoError(t, json.Unmarshal(body, &m))
		require.Len(t, m["trace"]["resourceSpans"], 1)
	})
	t.Run("v1 protobuf and 404", func(t *testing.T) {
		resp, body := get(t, s.url("/api/traces/"+id), "application/protobuf")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var tr rubatopb.Trace
		require.NoError(t, proto.Unmarshal(body, &tr))
		require.Equal(t, 3, countSpans(toTD(&tr)))
		resp, _ = get(t, s.url("/api/traces/"+missing), "application/protobuf")
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	})
	t.Run("v1 json has batches and base64 ids", func(t *testing.T) {
		resp, body := get(t, s.url("/api/traces/"+id), "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var m struct {
			Batches []struct {
				ScopeSpans []struct {
					Spans []struct {
						TraceID string `json:"traceId"`
					} `json:"spans"`
				} `json:"scopeSpans"`
			} `json:"batches"`
		}
		require.NoError(t, json.Unmarshal(body, &m))
		require.Len(t, m.Batches, 1)
		require.Len(t, m.Batches[0].ScopeSpans[0].Spans, 3)
		require.NotContains(t, m.Batches[0].ScopeSpans[0].Spans[0].TraceID, id, "Tempo's v1 JSON carries base64 IDs")
	})
	t.Run("short and mixed-case ids are left-padded", func(t *testing.T) {
		short := strings.TrimLeft(strings.ToUpper(id), "0")
		resp, _ := get(t, s.url("/api/traces/"+short), "application/protobuf")
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("bad ids and ranges are 400", func(t *testing.T) {
		for _, p := range []string{"/api/traces/xyz", "/api/traces/" + strings.Repeat("a", 33), "/api/v2/traces/" + id + "?start=abc", "/api/v2/traces/" + id + "?start=20&end=10"} {
			resp, _ := get(t, s.url(p), "application/protobuf")
			require.Equal(t, http.StatusBadRequest, resp.StatusCode, p)
		}
	})
	t.Run("start/end outside the trace's blocks still finds live data and filters blocks", func(t *testing.T) {
		now := time.Now().Unix()
		resp, _ := get(t, s.url(fmt.Sprintf("/api/traces/%s?start=%d&end=%d", id, now-600, now+600)), "application/protobuf")
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
	t.Run("metrics and ready", func(t *testing.T) {
		resp, body := get(t, s.url("/metrics"), "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		for _, m := range []string{"rubato_distributor_spans_received_total", "rubato_ingester_traces_created_total", "rubato_wal_appends_total", "rubato_receiver_accepted_spans_total"} {
			require.Contains(t, string(body), m)
		}
		resp, _ = get(t, s.url("/ready"), "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		resp, body = get(t, s.url("/status/config"), "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(body), "trace_idle_period")
	})
}

// TestShutdownEndpoint: /shutdown flushes everything to the backend before
// the ingester stops, so the data is readable after a restart without WAL.
func TestShutdownEndpoint(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h"})
	req, ids := makeRequest(5, 2)
	pushOTLP(t, s.otlpGRPC(), req)
	resp, err := http.Post(s.url("/shutdown"), "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	s.stop()
	require.NoError(t, os.RemoveAll(filepath.Join(s.dir, "wal")))
	s.start()
	for _, id := range ids {
		require.Equal(t, 2, countSpans(s.traceByID(t, id, "")))
	}
}

// TestTempoConfigStartsUnchanged runs the Tempo config from CONTRACT.md,
// byte for byte (fixed ports 3200, 4317, 4318, 9411, 14268; blocks under
// /tmp/tempo/blocks), pushes OTLP gRPC the way a Collector does, and reads
// the trace back.
func TestTempoConfigStartsUnchanged(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tempo.yaml")
	data, err := os.ReadFile("testdata/tempo-guide.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cfg, data, 0o644))
	t.Cleanup(func() { os.RemoveAll("/tmp/tempo/blocks") })
	// The guide's ports are fixed: another process on them would answer
	// this test's requests in place of the binary under test.
	for _, port := range []int{3200, 4317, 4318, 9411, 14268} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		require.NoError(t, err, "port %d is taken by another process; this test needs the Tempo guide's fixed ports", port)
		require.NoError(t, l.Close())
	}
	cmd := exec.Command(binary, "-config.file="+cfg)
	cmd.Dir = dir
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("did not stop on SIGTERM")
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:3200/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("exited: %v\n%s", err, logs.String())
		default:
		}
		require.True(t, time.Now().Before(deadline), "not ready:\n%s", logs.String())
		time.Sleep(50 * time.Millisecond)
	}
	req, ids := makeRequest(1, 4)
	pushOTLP(t, "127.0.0.1:4317", req)
	resp, body := get(t, fmt.Sprintf("http://127.0.0.1:3200/api/traces/%x", ids[0]), "application/protobuf")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var tr rubatopb.Trace
	require.NoError(t, proto.Unmarshal(body, &tr))
	require.Equal(t, 4, countSpans(toTD(&tr)))
	for _, port := range []int{4318, 9411, 14268} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		require.NoError(t, err, "receiver port %d listens", port)
		resp.Body.Close()
	}
}

func toTD(tr *rubatopb.Trace) *tracev1.TracesData {
	return &tracev1.TracesData{ResourceSpans: tr.GetResourceSpans()}
}
