// Package integration runs the real rubato binary on 127.0.0.1 and talks to
// it with real clients (the OpenTelemetry SDK's exporters, raw OTLP gRPC and
// HTTP, OTLP/JSON, zipkin-go, jaeger-client-go, Jaeger agent UDP and api_v2
// gRPC), and, where the test is about object storage, against a real MinIO.
// TestImageWithMinIO builds the container image (scripts/rubato-image.sh)
// and runs it next to the MinIO container, both on the host network.
//
// cluster_test.go runs a cluster of processes of the one binary (three
// ingesters at replication factor 3, distributor, querier, compactors),
// its rings over memberlist gossip, or over the etcd scripts/kube.sh builds
// (TestClusterRingOverEtcd), or over a `consul agent -dev` scripts/consul.sh
// builds (consul_test.go, TestClusterRingOverConsul); either binary missing,
// its test skips, or fails under CI=true.
//
// netfault_test.go puts a Toxiproxy proxy (github.com/Shopify/toxiproxy/v2,
// run in process on 127.0.0.1) in front of each ingester of a cluster, so
// that the distributor's pushes and the querier's reads cross it, and
// injects latency, connection resets and partitions of one and of two
// ingesters under a retrying client: every write is acknowledged or
// refused retryably, none is acknowledged without a quorum, and every
// acknowledged trace is found exactly afterwards.
//
// Invariants of the harness: every listener is bound to 127.0.0.1 on a free
// port; each instance gets its own data directory; processes are stopped
// (or killed) by t.Cleanup, never left behind.
package integration
