package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/ring"
	"github.com/stretchr/testify/require"
)

// consulVersion is the Consul scripts/consul.sh builds (its CONSUL_VERSION).
const consulVersion = "v1.16.2"

// TestClusterRingOverConsul: the ingester and compactor rings kept in
// Consul (kvstore store: consul, dskit's client) instead of gossip, against
// a `consul agent -dev` that scripts/consul.sh builds: the rings form, the
// ring keys are in Consul's KV store holding the three ingesters, and the
// rings carry writes and reads.
func TestClusterRingOverConsul(t *testing.T) {
	consulURL := startConsul(t)

	c := startCluster(t, clusterOptions{KVStore: fmt.Sprintf("store: consul\nconsul:\n  host: %s", strings.TrimPrefix(consulURL, "http://"))})
	// The rings are keys in Consul, under dskit's default prefix
	// collectors/: the ingesters' ring and the compactors'.
	var keys []string
	consulGet(t, consulURL+"/v1/kv/?keys", &keys)
	sort.Strings(keys)
	require.Subset(t, keys, []string{"collectors/compactor", "collectors/ring"}, "ring keys in Consul")
	// The ingester ring's value is the ring itself (dskit's ring codec):
	// the three ingesters, ACTIVE.
	resp, err := http.Get(consulURL + "/v1/kv/collectors/ring?raw")
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
	v, err := ring.GetCodec().Decode(raw)
	require.NoError(t, err)
	desc := v.(*ring.Desc)
	for i := range c.ingesters {
		id := fmt.Sprintf("ingester-%d", i)
		require.Contains(t, desc.Ingesters, id, "ring in Consul")
		require.Equal(t, ring.ACTIVE, desc.Ingesters[id].State, "%s in the ring in Consul", id)
	}

	l := startLoad(t, c.distributor, 2)
	waitAcked(t, l, 50)
	c.requireAllExact(t, l.stop(t), "ring in Consul")
}

// startConsul starts `consul agent -dev` on 127.0.0.1, every port free
// (DNS off), its data in a temporary directory, waits until it has a
// leader and returns its HTTP API's URL. t.Cleanup kills it.
func startConsul(t *testing.T) string {
	t.Helper()
	bin := consulBinary(t)
	httpPort := freePort(t)
	cmd := exec.Command(bin, "agent", "-dev",
		"-bind=127.0.0.1", "-client=127.0.0.1",
		"-data-dir="+filepath.Join(t.TempDir(), "consul"),
		fmt.Sprintf("-http-port=%d", httpPort),
		fmt.Sprintf("-server-port=%d", freePort(t)),
		fmt.Sprintf("-grpc-port=%d", freePort(t)),
		// Serf gossips over TCP and UDP on the one port.
		fmt.Sprintf("-serf-lan-port=%d", freeTCPUDPPort(t)),
		fmt.Sprintf("-serf-wan-port=%d", freeTCPUDPPort(t)),
		"-dns-port=-1", "-grpc-tls-port=-1", "-https-port=-1",
		"-log-level=warn")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	require.Eventually(t, func() bool {
		var leader string
		return consulTryGet(url+"/v1/status/leader", &leader) == nil && leader != ""
	}, time.Minute, 100*time.Millisecond, "consul has no leader:\n%s", logs)
	return url
}

// consulGet decodes the JSON answer to GET url into v.
func consulGet(t *testing.T, url string, v any) {
	t.Helper()
	require.NoError(t, consulTryGet(url, v))
}

func consulTryGet(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// freeTCPUDPPort returns a port free on 127.0.0.1 for both TCP and UDP.
func freeTCPUDPPort(t *testing.T) int {
	t.Helper()
	for {
		p := freePort(t)
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			c.Close()
			return p
		}
	}
}

// consulBinary is the consul scripts/consul.sh builds ($RUBATO_CONSUL to
// use another).
func consulBinary(t *testing.T) string {
	return cachedTool(t, "RUBATO_CONSUL", "consul-"+consulVersion+"/consul", "scripts/consul.sh")
}
