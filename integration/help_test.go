package integration

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/rubatodb/rubato/cmd/rubato/app"
)

// helpDefaults parses `rubato -help`: flag name to its printed default,
// "" when none is printed (the flag package omits zero values).
func helpDefaults(t *testing.T, out string) map[string]string {
	t.Helper()
	flagLine := regexp.MustCompile(`^  -(\S+)`)
	def := regexp.MustCompile(`\(default (.*)\)$`)
	got := map[string]string{}
	var name string
	for _, line := range strings.Split(out, "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			name = m[1]
			got[name] = ""
			continue
		}
		if m := def.FindStringSubmatch(line); m != nil && name != "" {
			v := m[1]
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			got[name] = v
		}
	}
	return got
}

// lookupPath walks a /status/config document along a dotted path.
func lookupPath(n *yaml.Node, path string) *yaml.Node {
	if n.Kind == yaml.DocumentNode {
		n = n.Content[0]
	}
	for _, k := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// sameDefault compares a printed default with a /status/config value.
func sameDefault(printed string, n *yaml.Node) bool {
	switch n.Kind {
	case yaml.SequenceNode:
		var items []string
		for _, c := range n.Content {
			items = append(items, c.Value)
		}
		return printed == strings.Join(items, ",") || printed == "["+strings.Join(items, " ")+"]" ||
			(printed == "" && len(items) == 0) || (printed == "[]" && len(items) == 0)
	case yaml.ScalarNode:
		v := n.Value
		if n.Tag == "!!null" {
			v = ""
		}
		if printed == "" {
			return v == "" || v == "0" || v == "false" || v == "0s"
		}
		return printed == v
	}
	return false
}

// TestHelpShowsTheDefaultsTheBinaryRuns runs `rubato -help` (exit 0) and
// the binary itself with nothing but addresses and paths set, and checks
// that every flag's printed default is the value /status/config shows.
func TestHelpShowsTheDefaultsTheBinaryRuns(t *testing.T) {
	out, err := runBinary(t, t.TempDir(), "-help")
	require.NoError(t, err, "-help must exit 0:\n%s", out)
	printed := helpDefaults(t, out)
	require.Greater(t, len(printed), 100, out)
	// The three: defaults set after registration used to print
	// dskit's values.
	require.Equal(t, "inmemory", printed["ingester.store"])
	require.Equal(t, "1", printed["ingester.distributor.replication-factor"])
	require.Equal(t, "", printed["ingester.min-ready-duration"], "0 prints no default")

	base, set := startWithFlags(t, nil)
	grpcPort := set["server.grpc-listen-port"]
	resp, err := http.Get(base + "/status/config")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	var running yaml.Node
	require.NoError(t, yaml.Unmarshal(body, &running))

	compared := 0
	for name, path := range app.FlagPaths() {
		if _, ok := set[name]; ok {
			continue
		}
		def, ok := printed[name]
		require.True(t, ok, "flag %s missing from -help", name)
		n := lookupPath(&running, path)
		require.NotNil(t, n, "%s (flag %s) missing from /status/config:\n%s", path, name, body)
		if n.Value == "<redacted>" {
			continue
		}
		require.True(t, sameDefault(def, n), "flag -%s: -help prints default %q, the binary runs with %s: %q", name, def, path, n.Value)
		compared++
	}
	require.Greater(t, compared, 100, "most flags compared")

	// ingester.lifecycler.port 0 (and address unset) advertises the gRPC
	// port actually listened on, on loopback for the in-process ring; the
	// configuration itself is not rewritten.
	resp, err = http.Get(base + "/ingester/ring")
	require.NoError(t, err)
	ringPage, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Contains(t, string(ringPage), "127.0.0.1:"+grpcPort)
}

// TestUnknownKeysThroughTheBinary: the typo is named with its path
// in the log of a running binary, and -config.strict refuses to start on it.
func TestUnknownKeysThroughTheBinary(t *testing.T) {
	s := startServer(t, options{Overrides: "  defaults:\n    ingestion:\n      rate_limt_bytes: 1000"})
	require.Contains(t, s.logs.String(), "key=overrides.defaults.ingestion.rate_limt_bytes")
	s.stop()

	out, err := runBinary(t, s.dir, "-config.file="+s.cfg, "-config.strict")
	require.Error(t, err, "started with -config.strict and an unknown key:\n%s", out)
	require.Contains(t, out, "overrides.defaults.ingestion.rate_limt_bytes")
	require.Contains(t, out, "unknown key")
}

// startWithFlags runs the binary with no config file, only the flags that
// keep it on 127.0.0.1 and in a temporary directory, plus extra; it returns
// the HTTP base URL and every flag it set.
func startWithFlags(t *testing.T, extra map[string]string) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	httpPort, grpcPort := freePort(t), freePort(t)
	set := map[string]string{
		"server.http-listen-address":               "127.0.0.1",
		"server.http-listen-port":                  fmt.Sprint(httpPort),
		"server.grpc-listen-address":               "127.0.0.1",
		"server.grpc-listen-port":                  fmt.Sprint(grpcPort),
		"distributor.receivers.otlp.grpc.endpoint": fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"distributor.receivers.otlp.http.endpoint": fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"storage.trace.local.path":                 filepath.Join(dir, "blocks"),
		"storage.trace.wal.path":                   filepath.Join(dir, "wal"),
	}
	for k, v := range extra {
		set[k] = v
	}
	var args []string
	for k, v := range set {
		args = append(args, "-"+k+"="+v)
	}
	logs := &syncBuffer{}
	cmd := exec.Command(binary, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, logs, logs
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	require.Eventually(t, func() bool {
		select {
		case <-done:
			t.Fatalf("rubato exited:\n%s", logs.String())
		default:
		}
		resp, err := http.Get(base + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "not ready:\n%s", logs.String())
	return base, set
}
