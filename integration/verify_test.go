package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigVerifyThroughTheBinary runs `rubato -config.verify` as users
// (and the Helm chart's checks) do: exit 0 and "config OK" for a good
// config, with its ports held by another process and no directory
// created; exit 1 naming the key for an unknown one, strict by default.
func TestConfigVerifyThroughTheBinary(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer lis.Close()
	port := lis.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	good := fmt.Sprintf(`server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %d
storage:
  trace:
    backend: s3
    s3:
      bucket: ${RUBATO_IT_BUCKET}
      endpoint: 127.0.0.1:1
      insecure: true
    wal:
      path: %s
`, port, port, filepath.Join(dir, "wal"))
	cfg := filepath.Join(dir, "rubato.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(good), 0o644))

	cmd := exec.Command(binary, "-config.file="+cfg, "-config.expand-env", "-config.verify")
	cmd.Env = append(os.Environ(), "RUBATO_IT_BUCKET=traces")
	out, err := cmd.Output()
	require.NoError(t, err, "verify failed: %s", out)
	require.Equal(t, "config OK\n", string(out))
	_, err = os.Stat(filepath.Join(dir, "wal"))
	require.True(t, os.IsNotExist(err), "verify created the WAL directory")

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("ingester:\n  trace_idle_perod: 5s\n"), 0o644))
	out2, err := runBinary(t, dir, "-config.file="+bad, "-config.verify")
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, out2)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, out2, "config invalid: ")
	require.Contains(t, out2, "ingester.trace_idle_perod (line 2): unknown key")
}
