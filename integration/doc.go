// Package integration runs the real rubato binary on 127.0.0.1 and talks to
// it with real clients (the OpenTelemetry SDK's exporters, raw OTLP gRPC and
// HTTP, OTLP/JSON, zipkin-go, jaeger-client-go, Jaeger agent UDP and api_v2
// gRPC), and, where the test is about object storage, against a real MinIO.
// TestImageWithMinIO builds the container image (scripts/rubato-image.sh)
// and runs it next to the MinIO container, both on the host network.
//
// Invariants of the harness: every listener is bound to 127.0.0.1 on a free
// port; each instance gets its own data directory; processes are stopped
// (or killed) by t.Cleanup, never left behind.
package integration
