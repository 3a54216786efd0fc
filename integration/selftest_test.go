package integration

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSelfTestThroughTheBinary runs `rubato selftest` (the Helm chart's
// `helm test` pod) against a running instance: it passes; with
// multitenancy on it fails without a tenant (401 from the push) and
// passes with one; against a port nobody serves it fails.
func TestSelfTestThroughTheBinary(t *testing.T) {
	s := startServer(t, options{Multitenancy: true})
	args := []string{"selftest", "-otlp-http=http://" + s.otlpHTTP(), "-query=" + s.url(""), "-timeout=10s"}

	out, err := runBinary(t, s.dir, append(args, "-tenant=helm-test")...)
	require.NoError(t, err, out)
	require.Contains(t, out, "selftest OK: trace ")

	out, err = runBinary(t, s.dir, args...)
	require.Error(t, err, out)
	require.Contains(t, out, "selftest failed: push: 401")

	out, err = runBinary(t, s.dir, "selftest", fmt.Sprintf("-otlp-http=http://127.0.0.1:%d", freePort(t)), "-query="+s.url(""), "-timeout=2s")
	require.Error(t, err, out)
	require.Contains(t, out, "selftest failed: push: ")
}
