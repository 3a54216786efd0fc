package integration

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSecondSignalExitsAtOnce: the first SIGTERM starts a graceful stop,
// which waits (server.graceful_shutdown_timeout, 30 s by default) for a
// client that is still sending its request; a second SIGTERM ends the
// process at once with status 1. What was acknowledged before is in the
// WAL and found after the restart.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	s := startServer(t, options{})
	req, ids := makeRequest(1, 3)
	pushOTLP(t, s.otlpGRPC(), req)

	// A slow client: headers sent, body still to come.
	c, err := net.Dial("tcp", s.otlpHTTP())
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\nab")
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond)

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.done:
		t.Fatalf("rubato stopped without waiting for the slow client:\n%s", s.logs.String())
	case <-time.After(1500 * time.Millisecond):
	}
	start := time.Now()
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("a second SIGTERM did not end rubato:\n%s", s.logs.String())
	}
	t.Logf("exited %v after the second signal", time.Since(start).Round(time.Millisecond))
	require.Equal(t, 1, s.cmd.ProcessState.ExitCode())
	require.True(t, strings.Contains(s.logs.String(), "second signal: exiting at once"), s.logs.String())

	s.start()
	require.Equal(t, 3, countSpans(s.traceByID(t, ids[0], "")))
}
