package app

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// tempoClusterConfig is the cluster part of a Tempo config, as in Tempo's
// docker-compose and Helm examples.
const tempoClusterConfig = `target: ingester
ingester:
  lifecycler:
    id: ingester-1
    interface_names: [eth1]
    port: 9096
    ring:
      replication_factor: 3
      heartbeat_timeout: 30s
      kvstore:
        store: memberlist
ingester_client:
  remote_timeout: 3s
  pool_config:
    checkinterval: 5s
    healthcheckenabled: true
    healthchecktimeout: 500ms
memberlist:
  abort_if_cluster_join_fails: false
  bind_addr: [10.0.0.5]
  bind_port: 7947
  advertise_addr: 10.0.0.6
  advertise_port: 7948
  join_members:
    - dns+rubato-gossip-ring:7946
    - 10.0.0.7:7946
`

func TestTempoClusterKeysAreKnown(t *testing.T) {
	cfg, logs, err := loadArgs(t, tempoClusterConfig, "-config.strict")
	require.NoError(t, err)
	require.NotContains(t, logs, "level=warn")
	require.NoError(t, cfg.Validate())

	lc := cfg.Ingester.LifecyclerConfig
	require.Equal(t, "memberlist", lc.RingConfig.KVStore.Store)
	require.Equal(t, 3, lc.RingConfig.ReplicationFactor)
	require.Equal(t, 30*time.Second, lc.RingConfig.HeartbeatTimeout)
	require.Equal(t, []string{"eth1"}, lc.InfNames)
	require.Equal(t, "ingester-1", lc.ID)
	require.Equal(t, 3*time.Second, cfg.IngesterClient.RemoteTimeout)
	require.Equal(t, 5*time.Second, cfg.IngesterClient.PoolConfig.CheckInterval)
	require.Equal(t, 500*time.Millisecond, cfg.IngesterClient.PoolConfig.HealthCheckTimeout)
	ml := cfg.MemberlistKV
	require.Equal(t, []string{"dns+rubato-gossip-ring:7946", "10.0.0.7:7946"}, []string(ml.JoinMembers))
	require.Equal(t, []string{"10.0.0.5"}, []string(ml.TCPTransport.BindAddrs))
	require.Equal(t, 7947, ml.TCPTransport.BindPort)
	require.Equal(t, "10.0.0.6", ml.AdvertiseAddr)
	require.Equal(t, 7948, ml.AdvertisePort)

	// The bug: a configured port was overwritten, and an unset
	// address became 127.0.0.1 even in a cluster.
	a, err := New(cfg, nil)
	require.NoError(t, err)
	run := a.lifecyclerConfig()
	require.Equal(t, 9096, run.Port, "a configured port is advertised as is")
	require.Equal(t, "", run.Addr, "no address: dskit detects it from interface_names")
	require.Equal(t, 9096, cfg.Ingester.LifecyclerConfig.Port)
	require.Equal(t, "", cfg.Ingester.LifecyclerConfig.Addr, "the configuration is not rewritten")

	// Misspelt keys in the new blocks are still caught.
	_, _, err = loadArgs(t, "memberlist:\n  join_member: [a:1]\ningester_client:\n  remote_timout: 1s\n", "-config.strict")
	require.ErrorContains(t, err, "memberlist.join_member (line 2): unknown key")
	require.ErrorContains(t, err, "ingester_client.remote_timout (line 4): unknown key")
}

func TestAdvertiseAddr(t *testing.T) {
	for _, tc := range []struct{ listen, store, want string }{
		{"", "inmemory", "127.0.0.1"},          // single binary: the ring is in process
		{"0.0.0.0", "inmemory", "127.0.0.1"},   // same
		{"", "memberlist", ""},                 // cluster: detect from interfaces
		{"::", "consul", ""},                   // same
		{"10.1.2.3", "memberlist", "10.1.2.3"}, // listening on one address: that one
		{"127.0.0.1", "etcd", "127.0.0.1"},
		{"my-host", "memberlist", ""}, // a name, not an address: detect
	} {
		require.Equal(t, tc.want, advertiseAddr(tc.listen, tc.store), "listen %q store %q", tc.listen, tc.store)
	}
}

func TestSingleBinaryDefaultsAdvertiseLoopback(t *testing.T) {
	cfg, _ := load(t, "")
	a, err := New(cfg, nil)
	require.NoError(t, err)
	run := a.lifecyclerConfig()
	require.Equal(t, "inmemory", run.RingConfig.KVStore.Store)
	require.Equal(t, "127.0.0.1", run.Addr)
	require.Equal(t, 0, run.Port)
	require.Equal(t, cfg.Server.GRPCListenPort, run.ListenPort, "port 0 advertises the gRPC listen port")
}
