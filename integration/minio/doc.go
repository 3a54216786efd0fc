// Package minio starts a real MinIO server in Docker for tests, through
// testcontainers-go, and hands out buckets on it.
//
// Invariants:
//
//   - All traffic stays on loopback: the container runs with host networking
//     and MinIO listens on 127.0.0.1 only (API and console on free ports); no
//     port is published on a bridge. Start sets TESTCONTAINERS_RYUK_DISABLED=true
//     and TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 (when unset) before any
//     testcontainers call, so testcontainers never dials a gateway address
//     (this matters inside a container, where /.dockerenv exists).
//   - The image is the local rubato-test/minio image built by
//     scripts/minio-image.sh (no registry is reachable); it is never pulled.
//   - Without a Docker engine or without the image, Start skips the test with
//     a message naming the script to run; with CI=true it fails the test
//     instead, so CI can never pass by skipping.
//   - Start returns only once /minio/health/ready answers 200. The container
//     is removed in t.Cleanup.
package minio
