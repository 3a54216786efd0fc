package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func do(t *testing.T, method, url string, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b), resp.Header
}

// TestStateChangingEndpoints: /flush and /shutdown take POST only, refuse
// cross-origin browser requests, and /ready tells the truth after a
// shutdown.
func TestStateChangingEndpoints(t *testing.T) {
	s := startServer(t, options{IdlePeriod: "1h"})
	req, ids := makeRequest(3, 2)
	pushOTLP(t, s.otlpGRPC(), req)

	for _, path := range []string{"/flush", "/shutdown"} {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			code, _, hdr := do(t, method, s.url(path), nil)
			require.Equal(t, http.StatusMethodNotAllowed, code, "%s %s", method, path)
			require.Contains(t, hdr.Get("Allow"), http.MethodPost, "%s %s", method, path)
		}
		// A cross-site form or fetch from a browser.
		for _, h := range []map[string]string{
			{"Sec-Fetch-Site": "cross-site"},
			{"Origin": "http://evil.example"},
		} {
			code, _, _ := do(t, http.MethodPost, s.url(path), h)
			require.Equal(t, http.StatusForbidden, code, "cross-origin POST %s with %v", path, h)
		}
	}
	// None of that stopped ingest.
	code, body, _ := do(t, http.MethodGet, s.url("/ready"), nil)
	require.Equal(t, http.StatusOK, code, body)
	pushOTLP(t, s.otlpGRPC(), req)

	code, _, _ = do(t, http.MethodPost, s.url("/flush"), nil)
	require.Equal(t, http.StatusNoContent, code)
	code, _, _ = do(t, http.MethodPost, s.url("/shutdown"), map[string]string{"Sec-Fetch-Site": "same-origin"})
	require.Equal(t, http.StatusNoContent, code)

	require.Eventually(t, func() bool {
		code, body, _ := do(t, http.MethodGet, s.url("/ready"), nil)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "the ingester was shut down")
	}, 10*time.Second, 20*time.Millisecond, "/ready must say the ingester was shut down")
	_, body, _ = do(t, http.MethodGet, s.url("/ready"), nil)
	require.NotContains(t, body, "starting")

	conn, err := grpc.NewClient(s.otlpGRPC(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	_, err = coltracepb.NewTraceServiceClient(conn).Export(context.Background(), req)
	require.Equal(t, codes.Unavailable, status.Code(err), "pushes after a shutdown: %v", err)
	// Reads still work: the shutdown flushed everything to the backend.
	for _, id := range ids {
		require.Equal(t, 2, countSpans(s.traceByID(t, id, "")), "pushed twice, stored once per span")
	}
}

// TestAdminListenAddress: with server.admin_listen_address set, /flush,
// /shutdown and pprof move there and are gone from the HTTP port.
func TestAdminListenAddress(t *testing.T) {
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base, _ := startWithFlags(t, map[string]string{"server.admin-listen-address": admin})
	for _, path := range []string{"/flush", "/shutdown"} {
		code, _, _ := do(t, http.MethodPost, base+path, nil)
		require.Equal(t, http.StatusNotFound, code, "POST %s on the HTTP port", path)
	}
	code, _, _ := do(t, http.MethodGet, base+"/debug/pprof/", nil)
	require.Equal(t, http.StatusNotFound, code, "pprof on the HTTP port")
	code, _, _ = do(t, http.MethodGet, "http://"+admin+"/debug/pprof/", nil)
	require.Equal(t, http.StatusOK, code)
	code, _, _ = do(t, http.MethodGet, "http://"+admin+"/shutdown", nil)
	require.Equal(t, http.StatusMethodNotAllowed, code)
	code, _, _ = do(t, http.MethodPost, "http://"+admin+"/flush", nil)
	require.Equal(t, http.StatusNoContent, code)
	code, _, _ = do(t, http.MethodPost, "http://"+admin+"/shutdown", nil)
	require.Equal(t, http.StatusNoContent, code)
	require.Eventually(t, func() bool {
		code, body, _ := do(t, http.MethodGet, base+"/ready", nil)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "shut down")
	}, 10*time.Second, 20*time.Millisecond)
}
