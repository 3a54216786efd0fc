package app

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// runVerify writes the files (name to content) into a fresh directory,
// substitutes {{dir}} in them and in args, and runs Verify there.
func runVerify(t *testing.T, files map[string]string, args ...string) (code int, stdout, stderr string, dir string) {
	t.Helper()
	dir = t.TempDir()
	for name, content := range files {
		content = strings.ReplaceAll(content, "{{dir}}", dir)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "{{dir}}", dir)
	}
	var out, errOut bytes.Buffer
	code = Verify(args, &out, &errOut)
	return code, out.String(), errOut.String(), dir
}

const verifyBase = `
server:
  http_listen_port: %d
storage:
  trace:
    backend: local
    local:
      path: {{dir}}/blocks
    wal:
      path: {{dir}}/wal
`

func TestVerifyAcceptsAndStartsNothing(t *testing.T) {
	// A port held by someone else: start-up would fail on it, verify must
	// not try to listen.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer lis.Close()
	port := lis.Addr().(*net.TCPAddr).Port

	code, stdout, stderr, dir := runVerify(t, map[string]string{"c.yaml": fmt.Sprintf(verifyBase, port)},
		"-config.file={{dir}}/c.yaml", "-config.verify", "-server.http-listen-address=127.0.0.1")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "config OK\n", stdout)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "verify created files: %v", entries)
}

func TestVerifyTempoGuideConfig(t *testing.T) {
	code, stdout, stderr, _ := runVerify(t, map[string]string{"c.yaml": tempoGuideConfig}, "-config.verify", "-config.file={{dir}}/c.yaml")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "config OK\n", stdout)
}

func TestVerifyRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		args  []string
		want  []string
	}{
		{
			name:  "unknown key, strict even when told otherwise",
			files: map[string]string{"c.yaml": fmt.Sprintf(verifyBase, 3200) + "ingester:\n  trace_idle_perod: 10s\n"},
			args:  []string{"-config.strict=false"},
			want:  []string{"ingester.trace_idle_perod", "unknown key"},
		},
		{
			name:  "invalid value",
			files: map[string]string{"c.yaml": fmt.Sprintf(verifyBase, 3200) + "  \n"},
			args:  []string{"-storage.trace.backend=gcs"},
			want:  []string{`storage.trace.backend "gcs"`},
		},
		{
			name:  "s3 without bucket",
			files: map[string]string{"c.yaml": "storage:\n  trace:\n    backend: s3\n    s3:\n      endpoint: minio:9000\n"},
			want:  []string{"bucket"},
		},
		{
			name:  "bad YAML",
			files: map[string]string{"c.yaml": "server: [\n"},
			want:  []string{"c.yaml"},
		},
		{
			name:  "missing file",
			files: map[string]string{},
			want:  []string{"read config"},
		},
		{
			name:  "unexpanded env leaves a bad value",
			files: map[string]string{"c.yaml": "server:\n  http_listen_port: ${RUBATO_VERIFY_TEST_PORT}\n"},
			want:  []string{"line 2", "into int"},
		},
		{
			name: "overrides file with an unknown key",
			files: map[string]string{
				"c.yaml": fmt.Sprintf(verifyBase, 3200) + "overrides:\n  per_tenant_override_config: {{dir}}/o.yaml\n",
				"o.yaml": "overrides:\n  t1:\n    ingestion:\n      rate_limit_byts: 10\n",
			},
			want: []string{"per-tenant overrides", "rate_limit_byts", "unknown key"},
		},
		{
			name:  "overrides file missing",
			files: map[string]string{"c.yaml": fmt.Sprintf(verifyBase, 3200) + "overrides:\n  per_tenant_override_config: {{dir}}/o.yaml\n"},
			want:  []string{"per-tenant overrides", "o.yaml"},
		},
		{
			name:  "positional argument",
			files: map[string]string{"c.yaml": fmt.Sprintf(verifyBase, 3200)},
			args:  []string{"extra"},
			want:  []string{"positional argument"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-config.verify", "-config.file={{dir}}/c.yaml"}, tc.args...)
			code, stdout, stderr, _ := runVerify(t, tc.files, args...)
			require.Equal(t, 1, code)
			require.Empty(t, stdout)
			require.True(t, strings.HasPrefix(stderr, "config invalid: ") || strings.Contains(stderr, "\nconfig invalid: "), stderr)
			for _, w := range tc.want {
				require.Contains(t, stderr, w)
			}
		})
	}
}

func TestVerifyExpandEnvAndOverrides(t *testing.T) {
	t.Setenv("RUBATO_VERIFY_TEST_BUCKET", "traces")
	code, stdout, stderr, _ := runVerify(t, map[string]string{
		"c.yaml": `
overrides:
  per_tenant_override_config: {{dir}}/o.yaml
storage:
  trace:
    backend: s3
    s3:
      bucket: ${RUBATO_VERIFY_TEST_BUCKET}
      endpoint: ${RUBATO_VERIFY_TEST_ENDPOINT:-minio:9000}
      insecure: true
    wal:
      path: {{dir}}/wal
`,
		"o.yaml": "overrides:\n  t1:\n    ingestion:\n      rate_limit_bytes: 1000\n",
	}, "-config.verify", "-config.file={{dir}}/c.yaml", "-config.expand-env")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "config OK\n", stdout)

	// Without -config.expand-env the literal ${...} stays, and is no port.
	code, _, stderr, _ = runVerify(t, map[string]string{
		"c.yaml": "server:\n  http_listen_port: ${RUBATO_VERIFY_TEST_PORT:-3200}\n",
	}, "-config.verify", "-config.file={{dir}}/c.yaml")
	require.Equal(t, 1, code, "an unexpanded port passed verify: %s", stderr)
	code, _, stderr, _ = runVerify(t, map[string]string{
		"c.yaml": "server:\n  http_listen_port: ${RUBATO_VERIFY_TEST_PORT:-3200}\n",
	}, "-config.verify", "-config.file={{dir}}/c.yaml", "-config.expand-env")
	require.Equal(t, 0, code, stderr)
}

func TestVerifyRequested(t *testing.T) {
	for args, want := range map[string]bool{
		"-config.verify":                     true,
		"--config.verify":                    true,
		"-config.file=x -config.verify=true": true,
		"-config.verify=false":               false,
		"-config.verify=maybe":               true, // verify's flag parsing reports it
		"-config.file=x":                     false,
		"-- -config.verify":                  false,
	} {
		require.Equal(t, want, verifyRequested(strings.Fields(args)), args)
	}
}
