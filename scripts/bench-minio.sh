#!/usr/bin/env bash
# bench-minio.sh runs rubato-bench against a local MinIO (the test image, on
# 127.0.0.1 with host networking) with 20 and with 200 backend blocks.
#   scripts/bench-minio.sh [spans] [lookups] [searches]   (default 1000000 spans, 20000 lookups, no searches)
# With searches > 0 each search case of cmd/rubato-bench runs that many times
# after the lookups (p50, p99, bytes read and GETs per query, on MinIO).
# BLOCKS="20" limits the block counts run (default "20 200").
set -euo pipefail
cd "$(dirname "$0")/.."
spans="${1:-1000000}"
lookups="${2:-20000}"
searches="${3:-0}"
bash scripts/docker-up.sh
image=$(bash scripts/minio-image.sh)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
name="rubato-bench-minio-$$"
docker run -d --rm --name "$name" --network host \
	-e MINIO_ROOT_USER=minioadmin -e MINIO_ROOT_PASSWORD=minioadmin \
	"$image" server /data --address "127.0.0.1:$port" --console-address "127.0.0.1:$((port + 1))" >/dev/null
trap 'docker rm -f "$name" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 60); do
	curl -fsS "http://127.0.0.1:$port/minio/health/ready" >/dev/null 2>&1 && break
	sleep 1
done
for blocks in ${BLOCKS:-20 200}; do
	echo "== MinIO, $blocks blocks"
	go run ./cmd/rubato-bench -spans "$spans" -phases "$blocks" -lookups "$lookups" -searches "$searches" -s3.endpoint "127.0.0.1:$port"
done
