#!/usr/bin/env bash
# test.sh runs Rubato's whole test suite on a fresh machine: it sets up what
# the tests need (a Docker engine and the locally built MinIO image for the
# object-storage tests), vets, runs every test, then runs each fuzz target
# briefly. Idempotent; safe to run again.
#
#   FUZZTIME=10s scripts/test.sh   # longer fuzzing (default 3s per target)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/docker-up.sh
bash scripts/minio-image.sh >/dev/null

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 -timeout 30m ./...

echo "== fuzz (${FUZZTIME:-3s} per target)"
bash scripts/fuzz.sh "${FUZZTIME:-3s}"
